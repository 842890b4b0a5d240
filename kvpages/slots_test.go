package kvpages

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPlanRejectsBadInput(t *testing.T) {
	const b = 4
	sm := newSim(t, 100, b)
	s := NewSeq(2, 2)
	sm.appendTokens(t, s, 10, func() float32 { return 1 })
	pl, err := NewPlanner(Options{Policy: PolicyKVCompress, BlockSize: b, Protect: 2, Budget: Budget{MaxCacheTokens: 4}})
	if err != nil {
		t.Fatal(err)
	}
	good := func() []HeadSlots {
		hs := sm.read(t, s)
		for i := range hs { // detach from the shared read-back buffer
			hs[i] = HeadSlots{Metric: append([]float32(nil), hs[i].Metric...), Pos: append([]int32(nil), hs[i].Pos...)}
		}
		return hs
	}
	cases := []struct {
		name string
		in   func() []SeqSlots
		want string
	}{
		{"too few heads", func() []SeqSlots { return []SeqSlots{{Seq: s, Slots: good()[:3]}} }, "head slot read-backs"},
		{"short metric", func() []SeqSlots {
			hs := good()
			hs[1].Metric = hs[1].Metric[:5]
			return []SeqSlots{{Seq: s, Slots: hs}}
		}, "layer 0 head 1: 5 metrics"},
		{"NaN metric", func() []SeqSlots {
			hs := good()
			hs[2].Metric[3] = float32(math.NaN())
			return []SeqSlots{{Seq: s, Slots: hs}}
		}, "layer 1 head 0 slot 3: metric is NaN"},
		{"unwritten slot", func() []SeqSlots {
			hs := good()
			hs[3].Pos[9] = -1
			return []SeqSlots{{Seq: s, Slots: hs}}
		}, "slot 9: position -1"},
		{"future position", func() []SeqSlots {
			hs := good()
			hs[0].Pos[0] = 10
			return []SeqSlots{{Seq: s, Slots: hs}}
		}, "position 10 outside [0, 10)"},
		{"twice", func() []SeqSlots { return []SeqSlots{{Seq: s, Slots: good()}, {Seq: s, Slots: good()}} }, "appears twice"},
		{"nil seq", func() []SeqSlots { return []SeqSlots{{}} }, "no sequence"},
		{"NaN in a sequence within budget", func() []SeqSlots {
			hs := good()
			hs[1].Metric[2] = float32(math.NaN())
			return []SeqSlots{{Seq: s, Slots: hs, Budget: Budget{MaxCacheTokens: 100}}}
		}, "layer 0 head 1 slot 2: metric is NaN"},
		{"bad budget", func() []SeqSlots { return []SeqSlots{{Seq: s, Slots: good(), Budget: Budget{Rate: 0.1}}} }, "rate"},
	}
	for _, c := range cases {
		_, err := pl.Plan(c.in())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// A table longer than the context needs is rejected too.
	extra, _ := sm.pool.Alloc()
	s.Tables[0] = append(s.Tables[0], extra)
	hs := good()
	if _, err := pl.Plan([]SeqSlots{{Seq: s, Slots: hs}}); err == nil || !strings.Contains(err.Error(), "table has 4") {
		t.Errorf("over-long table: %v", err)
	}
	// Garbage in the empty tail of the last block is ignored.
	s.Tables[0] = s.Tables[0][:3]
	sm.pool.Release(extra)
	hs = good()
	for hd := range hs {
		hs[hd].Metric[11] = float32(math.NaN())
		hs[hd].Pos[11] = -7
	}
	if _, err := pl.Plan([]SeqSlots{{Seq: s, Slots: hs}}); err != nil {
		t.Errorf("garbage beyond ctx rejected: %v", err)
	}
	if _, err := s.SplitSlots(b, make([]float32, 3), make([]int32, 3)); err == nil {
		t.Error("SplitSlots accepted a short read-back")
	}
}

// FuzzPlan drives the planner with arbitrary shapes, options and metrics: it must either return an
// error or a plan that keeps every invariant.
func FuzzPlan(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint8(4), uint8(2), uint16(30))
	f.Add(uint64(2), uint8(1), uint8(0), uint8(0), uint16(1))
	f.Add(uint64(3), uint8(4), uint8(40), uint8(3), uint16(0))
	f.Add(uint64(4), uint8(3), uint8(1), uint8(1), uint16(500))
	f.Fuzz(func(t *testing.T, seed uint64, polB, protect, sinks uint8, budget uint16) {
		rng := rand.New(rand.NewPCG(seed, 99))
		pol := Policy(polB % 5)
		b := testBlockSizes[int(polB/5)%len(testBlockSizes)]
		opts := Options{Policy: pol, BlockSize: b, Protect: int(protect % 64), Sinks: int(sinks % 8), Budget: Budget{MaxCacheTokens: int(budget)}}
		if budget%7 == 3 {
			opts.Budget = Budget{Rate: float64(budget%50) / 5}
		}
		if opts.Validate() != nil {
			return
		}
		layers, heads := 1+rng.IntN(2), 1+rng.IntN(3)
		next := 1 + rng.IntN(5*b+60)
		sm := newSim(t, layers*heads*ceilDiv(next, b)+1, b)
		ctx := make([]int, layers*heads)
		for hd := range ctx {
			ctx[hd] = rng.IntN(next + 1)
		}
		s := sm.makeSeq(t, rng, layers, heads, next, ctx, metricGen(rng, int(seed%4)))
		runRound(t, fmt.Sprintf("seed %d %s b=%d", seed, pol, b), sm, opts, []SeqSlots{{Seq: s, Slots: sm.read(t, s)}})
	})
}
