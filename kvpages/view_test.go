package kvpages

import (
	"strings"
	"testing"
)

func TestCacheView(t *testing.T) {
	const b = 4
	pool, err := NewPool(16, b)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSeq(1, 2)
	if _, err := s.Append(pool, 6); err != nil {
		t.Fatal(err)
	}
	// Head 1 keeps positions 5, 1, 4 (compacted order); head 0 keeps all six.
	s.Ctx[1] = 3
	pool.Release(s.Tables[1][1])
	s.Tables[1] = s.Tables[1][:1]
	slots := []HeadSlots{
		{Metric: []float32{1, 2, 3, 4, 5, 6, 0, 0}, Pos: []int32{0, 1, 2, 3, 4, 5, -1, -1}},
		{Metric: []float32{9, 8, 7, 0}, Pos: []int32{5, 1, 4, -1}},
	}
	opts := Options{Policy: PolicyKVCompress, BlockSize: b, Budget: Budget{MaxCacheTokens: 4}, Protect: 2, Sinks: 1}
	v, err := NewCacheView(pool, s, slots, opts, 100, Ledger{Rounds: 1, FreedBlocks: 1})
	if err != nil {
		t.Fatal(err)
	}
	slots[1].Pos[0] = 0 // the view owns its copy
	if got := v.KeptAt(1); len(got) != 6 || got[5] != 0 || got[1] != 1 || got[4] != 2 || got[0] != -1 || got[2] != -1 {
		t.Fatalf("KeptAt(1) = %v", got)
	}
	if v.KeptKVs() != 9 || v.FullKVs() != 12 || v.Rate() != 12.0/9 || v.SeqBlocks() != 3 || v.BlocksInUse != 3 || v.BytesFreed() != 100 {
		t.Fatalf("totals: kept %d full %d rate %g blocks %d pool %d freed %d", v.KeptKVs(), v.FullKVs(), v.Rate(), v.SeqBlocks(), v.BlocksInUse, v.BytesFreed())
	}
	if !v.Sink(0) || v.Sink(1) || !v.Protected(5) || !v.Protected(4) || v.Protected(3) {
		t.Fatal("sink/protected flags wrong")
	}
	if v.BudgetString() != "C=4/head" {
		t.Fatalf("budget %q", v.BudgetString())
	}
	slots[1].Pos[0] = 6 // beyond NextPos
	if _, err := NewCacheView(pool, s, slots, opts, 100, Ledger{}); err == nil || !strings.Contains(err.Error(), "position 6") {
		t.Fatalf("bad position: err %v", err)
	}
}
