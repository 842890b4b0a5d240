package kvpages

import (
	"math"
	"math/rand/v2"
	"testing"
)

// sim is a host stand-in for the device's slot arrays: the metric and token position of every global
// slot (the position plays the role of K and V: a move that loses a KV loses its position).
type sim struct {
	b      int
	pool   *Pool
	metric []float32
	pos    []int32
}

func newSim(t testing.TB, blocks, b int) *sim {
	t.Helper()
	p, err := NewPool(blocks, b)
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{b: b, pool: p, metric: make([]float32, blocks*b), pos: make([]int32, blocks*b)}
	for i := range s.pos {
		s.pos[i] = -1
		s.metric[i] = float32(math.NaN()) // never-written slots must never be read as live
	}
	return s
}

func (s *sim) slot(seq *Seq, hd, i int) int {
	return int(seq.Tables[hd][i/s.b])*s.b + i%s.b
}

// appendTokens appends n tokens to every head of seq, writing positions and metrics from gen.
func (s *sim) appendTokens(t testing.TB, seq *Seq, n int, gen func() float32) {
	t.Helper()
	base := seq.NextPos
	slots, err := seq.Append(s.pool, n)
	if err != nil {
		t.Fatal(err)
	}
	for l := range seq.Layers {
		for j := range n {
			for h := range seq.KVHeads {
				id := slots[(l*n+j)*seq.KVHeads+h]
				s.pos[id] = int32(base + j)
				s.metric[id] = gen()
			}
		}
	}
}

// read returns the slots of seq as the engine would read them back (SlotBlocks, then SplitSlots).
func (s *sim) read(t testing.TB, seq *Seq) []HeadSlots {
	t.Helper()
	blocks := seq.SlotBlocks()
	m := make([]float32, 0, len(blocks)*s.b)
	p := make([]int32, 0, len(blocks)*s.b)
	for _, id := range blocks {
		lo := int(id) * s.b
		m = append(m, s.metric[lo:lo+s.b]...)
		p = append(p, s.pos[lo:lo+s.b]...)
	}
	hs, err := seq.SplitSlots(s.b, m, p)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// refExecuteMoves is the oracle of execute_cache_moves: copy metric and position of each source to its
// destination. It checks that no destination is also a source, which lets the device run them in
// parallel.
func (s *sim) refExecuteMoves(t testing.TB, moves []int32) {
	t.Helper()
	srcs := map[int32]bool{}
	for i := 0; i < len(moves); i += 2 {
		srcs[moves[i]] = true
	}
	dsts := map[int32]bool{}
	for i := 0; i < len(moves); i += 2 {
		src, dst := moves[i], moves[i+1]
		if srcs[dst] {
			t.Fatalf("move %d: destination %d is also a source", i/2, dst)
		}
		if dsts[dst] {
			t.Fatalf("move %d: destination %d written twice", i/2, dst)
		}
		dsts[dst] = true
		s.metric[dst] = s.metric[src]
		s.pos[dst] = s.pos[src]
	}
}

// makeSeq builds a sequence whose heads hold ctx[hd] slots with distinct positions drawn from
// [0, nextPos) in shuffled order (as after compactions), always including the most recent ones, and
// fills the empty tail of each last block with garbage that must be ignored.
func (s *sim) makeSeq(t testing.TB, rng *rand.Rand, layers, heads, nextPos int, ctx []int, gen func() float32) *Seq {
	t.Helper()
	seq := NewSeq(layers, heads)
	seq.NextPos = nextPos
	for hd, c := range ctx {
		for range ceilDiv(c, s.b) {
			id, err := s.pool.Alloc()
			if err != nil {
				t.Fatal(err)
			}
			seq.Tables[hd] = append(seq.Tables[hd], id)
		}
		seq.Ctx[hd] = c
		// Recent positions are kept with higher probability, like a compressed cache.
		perm := rng.Perm(nextPos)
		recent := min(c, rng.IntN(c+1), 40)
		chosen := make([]int32, 0, c)
		used := map[int]bool{}
		for p := nextPos - 1; p >= nextPos-recent; p-- {
			chosen = append(chosen, int32(p))
			used[p] = true
		}
		for _, p := range perm {
			if len(chosen) == c {
				break
			}
			if !used[p] {
				chosen = append(chosen, int32(p))
			}
		}
		rng.Shuffle(len(chosen), func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] })
		for i := range ceilDiv(c, s.b) * s.b {
			id := s.slot(seq, hd, i)
			if i < c {
				s.pos[id] = chosen[i]
				s.metric[id] = gen()
			} else {
				s.pos[id] = int32(rng.IntN(3*nextPos+3) - 2) // garbage, may be out of range
				s.metric[id] = float32(math.NaN())
			}
		}
	}
	return seq
}

// metricGen returns a metric generator: continuous, heavily tied, with signed zeros and infinities, or
// one ulp apart.
func metricGen(rng *rand.Rand, kind int) func() float32 {
	switch kind {
	case 0:
		return func() float32 { return rng.Float32() }
	case 1:
		return func() float32 { return float32(rng.IntN(4)) }
	case 3: // keys one ulp apart: ties and near-ties at the selection threshold
		return func() float32 { return math.Float32frombits(math.Float32bits(0.75) + uint32(rng.IntN(3))) }
	default:
		return func() float32 {
			switch rng.IntN(12) {
			case 0:
				return float32(math.Copysign(0, -1))
			case 1:
				return float32(math.Inf(-1))
			case 2:
				return float32(math.Inf(1))
			case 3:
				return -rng.Float32()
			}
			return float32(rng.IntN(3))
		}
	}
}
