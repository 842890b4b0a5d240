package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// copyModel is a fake model over a vocabulary of 16 whose next token depends on a token far back: it
// predicts the token lag positions back with probability 0.9 when the context reaches that far, and
// otherwise the local rule "7 is followed by 8" (also 0.9), else the uniform distribution.
type copyModel struct{ lag int }

const fakeVocab = 16

func (m copyModel) logProb(ctx []int, next int) float64 {
	guess := -1
	switch {
	case len(ctx) > m.lag:
		guess = ctx[len(ctx)-m.lag]
	case ctx[len(ctx)-1] == 7:
		guess = 8
	}
	if guess < 0 {
		return math.Log(1.0 / fakeVocab)
	}
	if next == guess {
		return math.Log(0.9)
	}
	return math.Log(0.1 / (fakeVocab - 1))
}

func (m copyModel) prefixLogProbs(tokens []int) ([]float64, error) {
	out := make([]float64, len(tokens)-1)
	for i := 1; i < len(tokens); i++ {
		out[i-1] = m.logProb(tokens[:i], tokens[i])
	}
	return out, nil
}

func (m copyModel) nextLogProbs(ctxs [][]int, next []int) ([]float64, error) {
	out := make([]float64, len(ctxs))
	for j, c := range ctxs {
		out[j] = m.logProb(c, next[j])
	}
	return out, nil
}

// The key tokens are exactly the ones the far-back copy predicts correctly: not those the local rule
// predicts (no gain), not those the copy gets wrong (the full model does not predict them), not those
// whose full context is no longer than the short one.
func TestKeyTokensNeedFarContext(t *testing.T) {
	const lag, short = 20, 8
	rng := rand.New(rand.NewPCG(3, 4))
	toks := []int{1}
	for len(toks) < 200 {
		switch {
		case toks[len(toks)-1] == 7:
			toks = append(toks, 8)
		case len(toks) > lag && rng.IntN(2) == 0:
			toks = append(toks, toks[len(toks)-lag])
		default:
			toks = append(toks, 2+rng.IntN(fakeVocab-2))
		}
	}
	m := copyModel{lag: lag}
	ks, err := selectKeyTokens(m, toks, KeyTokenOptions{Short: short, MinGain: 1, MinLogProb: -1})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := lag + 1; i < len(toks); i++ {
		local := toks[i-1] == 7 && toks[i] == 8 // the short context predicts it as well
		if toks[i] == toks[i-lag] && !local {
			want = append(want, i)
		}
	}
	if len(want) < 20 {
		t.Fatalf("constructed text has only %d far-copied tokens", len(want))
	}
	if len(ks.Index) != len(want) {
		t.Fatalf("selected %d key tokens %v, want %d %v", len(ks.Index), ks.Index, len(want), want)
	}
	for k := range want {
		if ks.Index[k] != want[k] {
			t.Fatalf("key token %d is %d, want %d (selected %v)", k, ks.Index[k], want[k], ks.Index)
		}
	}
	// Scoring: a result whose NLL is 1 on the key tokens and 5 elsewhere scores exactly 1 on them.
	r := PerplexityResult{TokenNLL: make([]float64, len(toks)-1)}
	for i := range r.TokenNLL {
		r.TokenNLL[i] = 5
	}
	for _, i := range want {
		r.TokenNLL[i-1] = 1
	}
	if err := ks.Score(&r); err != nil {
		t.Fatal(err)
	}
	if r.KeyTokens != len(want) || r.KeyNLL != 1 || r.KeyPPL != math.E {
		t.Fatalf("scored %d key tokens, nll %v ppl %v", r.KeyTokens, r.KeyNLL, r.KeyPPL)
	}
}

func TestKeyTokenOptionsRejected(t *testing.T) {
	for _, o := range []KeyTokenOptions{
		{Short: 0, MinGain: 2, MinLogProb: -2},
		{Short: 98, MinGain: 2, MinLogProb: -2}, // a 100-token text: no token sees more than 97 + t_0
		{Short: 8, MinGain: 0, MinLogProb: -2},
		{Short: 8, MinGain: math.NaN(), MinLogProb: -2},
		{Short: 8, MinGain: 2, MinLogProb: 0.5},
		{Short: 8, MinGain: 2, MinLogProb: math.Inf(-1)},
	} {
		if err := o.Validate(100); err == nil {
			t.Errorf("%+v accepted for a 100-token text", o)
		}
	}
	if err := (KeyTokenOptions{Short: 97, MinGain: 2, MinLogProb: -2}).Validate(100); err != nil {
		t.Errorf("short context 97 of a 100-token text rejected: %v", err)
	}
}
