package kvpages

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSeq is one sequence of 32 layers x 8 KV heads x n tokens with random metrics, as the engine
// would read it back after prefill.
func benchSeq(b testing.TB, n, bs int) (*Pool, *Seq, []HeadSlots) {
	const layers, heads = 32, 8
	pool, err := NewPool(layers*heads*ceilDiv(n, bs), bs)
	if err != nil {
		b.Fatal(err)
	}
	s := NewSeq(layers, heads)
	if _, err := s.Append(pool, n); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	metric := make([]float32, s.Blocks()*bs)
	pos := make([]int32, len(metric))
	off := 0
	for hd := range s.Tables {
		perm := rng.Perm(n) // positions in shuffled order, as after earlier compactions
		for i := range len(s.Tables[hd]) * bs {
			if i < n {
				metric[off+i] = rng.Float32() * rng.Float32()
				pos[off+i] = int32(perm[i])
			}
		}
		off += len(s.Tables[hd]) * bs
	}
	slots, err := s.SplitSlots(bs, metric, pos)
	if err != nil {
		b.Fatal(err)
	}
	return pool, s, slots
}

// BenchmarkPlan plans one sequence of 32 layers x 8 KV heads x 8k tokens (b = 16): the first
// compression after prefill down to 1024 tokens per head on average (8x), and a continual-compression
// round that gives back 1% of the blocks.
func BenchmarkPlan(b *testing.B) {
	const n, bs = 8192, 16
	for _, c := range []struct {
		name   string
		pol    Policy
		budget int
	}{
		{"kvcompress-8x", PolicyKVCompress, 1024},
		{"kvcompress-1pct", PolicyKVCompress, n - n/100},
		{"uniform-8x", PolicyUniform, 1024},
		{"window-8x", PolicyWindow, 1024},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, s, slots := benchSeq(b, n, bs)
			pl, err := NewPlanner(Options{Policy: c.pol, BlockSize: bs, Protect: 32, Budget: Budget{MaxCacheTokens: c.budget}})
			if err != nil {
				b.Fatal(err)
			}
			in := []SeqSlots{{Seq: s, Slots: slots}}
			var plan *Plan
			b.ReportAllocs()
			cpu0, n := processCPU(), 0
			for b.Loop() {
				if plan, err = pl.Plan(in); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/op")
			}
			b.ReportMetric(float64(plan.FreedBlocks()), "freed-blocks")
			b.ReportMetric(float64(len(plan.Moves)/2), "moves")
		})
	}
}

func BenchmarkSortRanks(b *testing.B) {
	for _, n := range []int{1024, 8192} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			src := make([]uint64, n)
			for i := range src {
				src[i] = uint64(metricKey(rng.Float32()))<<32 | uint64(i)
			}
			a, tmp := make([]uint64, n), make([]uint64, n)
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				copy(a, src)
				sortRanks(a, tmp)
			}
		})
	}
}
