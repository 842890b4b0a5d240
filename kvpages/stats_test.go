package kvpages

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestStatsAccounting(t *testing.T) {
	const b, layers, heads = 4, 2, 3
	sm := newSim(t, 200, b)
	rng := rand.New(rand.NewPCG(5, 5))
	s1, s2 := NewSeq(layers, heads), NewSeq(layers, heads)
	sm.appendTokens(t, s1, 30, func() float32 { return rng.Float32() })
	sm.appendTokens(t, s2, 9, func() float32 { return rng.Float32() })
	bb := BlockBytes(b, 64, 2)
	if bb != 4*(2*64*2+8) {
		t.Fatalf("BlockBytes = %d", bb)
	}
	var led Ledger
	st, err := CollectStats(sm.pool, []*Seq{s1, s2}, bb, led)
	if err != nil {
		t.Fatal(err)
	}
	if st.BlocksInUse != 6*8+6*3 || st.BytesInUse != int64(st.BlocksInUse)*bb || st.KeptKVs() != 6*39 || st.FullKVs != 6*39 {
		t.Fatalf("before: %+v", st)
	}
	pl, _ := NewPlanner(Options{Policy: PolicyKVCompress, BlockSize: b, Protect: 4, Budget: Budget{MaxCacheTokens: 8}})
	plan, err := pl.Plan([]SeqSlots{{Seq: s1, Slots: sm.read(t, s1)}, {Seq: s2, Slots: sm.read(t, s2)}})
	if err != nil {
		t.Fatal(err)
	}
	sm.refExecuteMoves(t, plan.Moves)
	freed, err := plan.Apply(sm.pool)
	if err != nil {
		t.Fatal(err)
	}
	led.Add(plan)
	st, err = CollectStats(sm.pool, []*Seq{s1, s2}, bb, led)
	if err != nil {
		t.Fatal(err)
	}
	// Both sequences end at 2 blocks per head on average: 12 blocks each.
	if st.BlocksInUse != 24 || st.BytesInUse != 24*bb || led.FreedBlocks != freed || freed != 66-24 {
		t.Fatalf("after: in use %d, bytes %d, freed %d (ledger %d)", st.BlocksInUse, st.BytesInUse, freed, led.FreedBlocks)
	}
	kept := 0
	for hd := range s1.Ctx {
		if st.Kept[hd] != s1.Ctx[hd]+s2.Ctx[hd] {
			t.Fatalf("kept[%d] = %d, want %d", hd, st.Kept[hd], s1.Ctx[hd]+s2.Ctx[hd])
		}
		kept += st.Kept[hd]
	}
	if led.EvictedKVs != 6*39-kept || st.KeptKVs() != kept {
		t.Fatalf("evicted %d + kept %d != %d", led.EvictedKVs, kept, 6*39)
	}
	tab := st.Table()
	for _, want := range []string{"24/200 blocks in use", "layer", "h2", "1 rounds", "blocks freed"} {
		if !strings.Contains(tab, want) {
			t.Errorf("stats table lacks %q:\n%s", want, tab)
		}
	}
	if n := strings.Count(tab, "\n"); n != 2+1+layers {
		t.Errorf("stats table has %d lines, want %d:\n%s", n, 3+layers, tab)
	}
	if _, err := CollectStats(sm.pool, []*Seq{s1, NewSeq(1, 1)}, bb, led); err == nil {
		t.Error("stats over sequences of different shapes accepted")
	}
}
