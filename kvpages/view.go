package kvpages

import (
	"fmt"
	"slices"
)

// HeadView is one (layer, KV head)'s cache at one moment, in the head's logical slot order: logical slot i
// lives in block Blocks[i/b] at offset i%b and holds the KV of position Pos[i].
type HeadView struct {
	Pos    []int32
	Metric []float32
	Blocks []int32
}

// CacheView is a read-only copy of one sequence's cache state: what kvc-view draws and `kvc run --kv-map`
// writes. It owns its slices; later eviction rounds do not change it.
type CacheView struct {
	Layers, KVHeads int
	BlockSize       int
	NextPos         int // positions 0..NextPos-1 have been written; the rest of a head's positions were evicted
	Policy          Policy
	Budget          Budget
	Protect, Sinks  int
	Heads           []HeadView // [layer*KVHeads + kvHead]
	BlocksInUse     int        // the pool's, all holders
	BlocksTotal     int
	BlockBytes      int64
	Ledger          Ledger
}

// NewCacheView copies s's tables and the live part of its slot read-back (slots from s.SplitSlots) with
// the pool's use and the eviction options in force.
func NewCacheView(pool *Pool, s *Seq, slots []HeadSlots, opts Options, blockBytes int64, l Ledger) (*CacheView, error) {
	b := pool.BlockSize()
	if err := checkShape(0, s, slots, b); err != nil {
		return nil, err
	}
	v := &CacheView{Layers: s.Layers, KVHeads: s.KVHeads, BlockSize: b, NextPos: s.NextPos, Policy: opts.Policy,
		Budget: opts.Budget, Protect: opts.Protect, Sinks: opts.Sinks, Heads: make([]HeadView, len(s.Tables)),
		BlocksInUse: pool.InUse(), BlocksTotal: pool.Blocks(), BlockBytes: blockBytes, Ledger: l}
	for hd, hs := range slots {
		c := s.Ctx[hd]
		for i := range c {
			if p := hs.Pos[i]; p < 0 || int(p) >= s.NextPos {
				return nil, fmt.Errorf("kvpages: view: layer %d head %d slot %d: position %d outside [0, %d)", hd/s.KVHeads, hd%s.KVHeads, i, p, s.NextPos)
			}
		}
		v.Heads[hd] = HeadView{Pos: slices.Clone(hs.Pos[:c]), Metric: slices.Clone(hs.Metric[:c]), Blocks: slices.Clone(s.Tables[hd])}
	}
	return v, nil
}

// Protected reports whether position p is in the protected window (never evicted at this length).
func (v *CacheView) Protected(p int) bool { return v.Protect > 0 && p > v.NextPos-1-v.Protect }

// Sink reports whether position p is an attention sink.
func (v *CacheView) Sink(p int) bool { return p < v.Sinks }

// Kept is the number of KVs head hd keeps.
func (v *CacheView) Kept(hd int) int { return len(v.Heads[hd].Pos) }

// KeptKVs is the total over all heads.
func (v *CacheView) KeptKVs() int {
	n := 0
	for hd := range v.Heads {
		n += v.Kept(hd)
	}
	return n
}

// FullKVs is what a full cache would hold: every position in every head.
func (v *CacheView) FullKVs() int { return v.NextPos * len(v.Heads) }

// Rate is the compression rate, full-cache KVs / kept KVs (1 when nothing is kept yet).
func (v *CacheView) Rate() float64 {
	if k := v.KeptKVs(); k > 0 {
		return float64(v.FullKVs()) / float64(k)
	}
	return 1
}

// SeqBlocks is the number of blocks the sequence holds.
func (v *CacheView) SeqBlocks() int {
	n := 0
	for _, h := range v.Heads {
		n += len(h.Blocks)
	}
	return n
}

// BytesFreed is the device memory eviction has given back to the pool so far.
func (v *CacheView) BytesFreed() int64 { return int64(v.Ledger.FreedBlocks) * v.BlockBytes }

// BudgetString describes the budget for titles: "C=64/head", "rate 4x", or "none".
func (v *CacheView) BudgetString() string {
	switch {
	case v.Policy == PolicyFull:
		return "none"
	case v.Budget.MaxCacheTokens != 0:
		return fmt.Sprintf("C=%d/head", v.Budget.MaxCacheTokens)
	case v.Budget.Rate != 0:
		return fmt.Sprintf("rate %gx", v.Budget.Rate)
	}
	return "none"
}

// KeptAt returns, for head hd, a slice over positions 0..NextPos-1 holding the logical slot index of the
// KV kept at each position, or -1 where that position was evicted.
func (v *CacheView) KeptAt(hd int) []int {
	out := make([]int, v.NextPos)
	for i := range out {
		out[i] = -1
	}
	for i, p := range v.Heads[hd].Pos {
		out[p] = i
	}
	return out
}

// FormatBytes writes n in B, KiB, MiB or GiB, as the stats table does.
func FormatBytes(n int64) string { return fmtBytes(n) }
