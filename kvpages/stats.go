package kvpages

import (
	"fmt"
	"strings"
)

// BlockBytes is the device memory of one block: b slots of K[headDim] and V[headDim] at kvBytes per
// element (2 for f16, 4 for f32), a float32 metric and an int32 position per slot. It equals the
// engine's KVPool.BlockBytes for the same shape.
func BlockBytes(blockSize, headDim, kvBytes int) int64 {
	return int64(blockSize) * (2*int64(headDim)*int64(kvBytes) + 4 + 4)
}

// Ledger accumulates what eviction rounds did.
type Ledger struct {
	Rounds      int
	EvictedKVs  int
	FreedBlocks int
	Moves       int
}

// Add records an applied plan.
func (l *Ledger) Add(p *Plan) {
	l.Rounds++
	l.EvictedKVs += p.EvictedKVs()
	l.FreedBlocks += p.FreedBlocks()
	l.Moves += len(p.Moves) / 2
}

// Stats is the cache's accounting at one moment. Bytes in use are blocks in use times block bytes:
// eviction frees whole blocks, so kept KVs and bytes shrink together.
type Stats struct {
	Layers, KVHeads int
	Seqs            int
	Kept            []int // [layer*KVHeads + kvHead] KVs kept, summed over the sequences
	FullKVs         int   // KVs a full cache would hold: sum over sequences of NextPos*layers*kvHeads
	BlocksInUse     int   // the pool's blocks in use (all holders, not only these sequences)
	BlocksTotal     int
	BlockBytes      int64
	BytesInUse      int64
	Ledger          Ledger
}

// CollectStats sums the sequences' kept KVs per (layer, KV head) and reads the pool's use. All sequences
// must have the same shape.
func CollectStats(pool *Pool, seqs []*Seq, blockBytes int64, l Ledger) (Stats, error) {
	st := Stats{Seqs: len(seqs), BlocksInUse: pool.InUse(), BlocksTotal: pool.Blocks(), BlockBytes: blockBytes, Ledger: l}
	st.BytesInUse = int64(st.BlocksInUse) * blockBytes
	for i, s := range seqs {
		if i == 0 {
			st.Layers, st.KVHeads = s.Layers, s.KVHeads
			st.Kept = make([]int, s.Layers*s.KVHeads)
		}
		if s.Layers != st.Layers || s.KVHeads != st.KVHeads || len(s.Ctx) != len(st.Kept) {
			return Stats{}, fmt.Errorf("kvpages: stats: seq %d has %d layers x %d KV heads (%d contexts), seq 0 has %d x %d",
				i, s.Layers, s.KVHeads, len(s.Ctx), st.Layers, st.KVHeads)
		}
		for hd, c := range s.Ctx {
			st.Kept[hd] += c
		}
		st.FullKVs += s.NextPos * s.Layers * s.KVHeads
	}
	return st, nil
}

// KeptKVs is the total of Kept.
func (st Stats) KeptKVs() int {
	n := 0
	for _, k := range st.Kept {
		n += k
	}
	return n
}

// Table renders the stats for `kvc run --stats`: a summary line, then one row per layer with the KVs
// kept by each KV head.
func (st Stats) Table() string {
	var sb strings.Builder
	kept := st.KeptKVs()
	ratio := 0.0
	if kept > 0 {
		ratio = float64(st.FullKVs) / float64(kept)
	}
	fmt.Fprintf(&sb, "kv cache: %d/%d blocks in use, %s of %s; %d seqs keep %d of %d KVs (%.2fx)\n",
		st.BlocksInUse, st.BlocksTotal, fmtBytes(st.BytesInUse), fmtBytes(int64(st.BlocksTotal)*st.BlockBytes),
		st.Seqs, kept, st.FullKVs, ratio)
	fmt.Fprintf(&sb, "evictions: %d rounds, %d KVs, %d blocks freed (%s), %d moves\n",
		st.Ledger.Rounds, st.Ledger.EvictedKVs, st.Ledger.FreedBlocks, fmtBytes(int64(st.Ledger.FreedBlocks)*st.BlockBytes), st.Ledger.Moves)
	if st.Layers == 0 {
		return sb.String()
	}
	w := 1
	for _, k := range st.Kept {
		w = max(w, len(fmt.Sprint(k)))
	}
	w = max(w, len(fmt.Sprint(st.KVHeads-1))+1)
	fmt.Fprintf(&sb, "%5s", "layer")
	for h := range st.KVHeads {
		fmt.Fprintf(&sb, " %*s", w, fmt.Sprintf("h%d", h))
	}
	sb.WriteByte('\n')
	for l := range st.Layers {
		fmt.Fprintf(&sb, "%5d", l)
		for h := range st.KVHeads {
			fmt.Fprintf(&sb, " %*d", w, st.Kept[l*st.KVHeads+h])
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
