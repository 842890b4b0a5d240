package engine_test

import (
	"math"
	"testing"

	"kvc/engine"
	"kvc/kvpages"
)

// On the real model, the batched short-context scores equal scoring each short context alone, the tokens
// with no more context than the short one score the same both ways, and the key tokens meet both
// thresholds.
func TestKeyTokensOnModel(t *testing.T) {
	e := engineFor(t, kvpages.PolicyKVCompress, 16)
	text := append([]int{1}, generateCompressed(t, e, nil, []int{1}, 150)...)
	o := engine.KeyTokenOptions{Short: 12, MinGain: 0.5, MinLogProb: -3}
	ks, err := e.KeyTokens(text, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Full) != len(text)-1 || len(ks.Short) != len(text)-1 {
		t.Fatalf("%d full and %d short scores for %d tokens", len(ks.Full), len(ks.Short), len(text))
	}
	for i := 1; i <= o.Short+1; i++ {
		if ks.Short[i-1] != ks.Full[i-1] {
			t.Fatalf("token %d has its whole context in the short one, scores %v vs %v", i, ks.Short[i-1], ks.Full[i-1])
		}
	}
	for _, i := range []int{o.Short + 2, 60, len(text) - 1} {
		ctx := append([]int{text[0]}, text[i-o.Short:i+1]...)
		r, err := e.PerplexityChunked(ctx, nil, len(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ks.Short[i-1], -r.TokenNLL[len(r.TokenNLL)-1]; math.Abs(got-want) > 1e-5 {
			t.Fatalf("token %d: batched short-context log-prob %v, alone %v", i, got, want)
		}
	}
	for _, i := range ks.Index {
		if ks.Full[i-1] < o.MinLogProb || ks.Full[i-1]-ks.Short[i-1] < o.MinGain {
			t.Fatalf("key token %d: full %v short %v", i, ks.Full[i-1], ks.Short[i-1])
		}
	}
	if e.Pool.InUse() != 0 {
		t.Fatalf("%d blocks still in use after key-token selection", e.Pool.InUse())
	}
	t.Logf("%d key tokens of %d", len(ks.Index), len(text)-1)
}
