package kvpages

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// kv is what a live slot holds, as the host-side simulation sees it.
type kv struct {
	pos    int32
	metric uint32 // bits, so -0, +0 and infinities compare exactly
}

type headSnap struct {
	live   []kv // by logical index
	blocks int
}

func snapshot(sm *sim, s *Seq) []headSnap {
	out := make([]headSnap, len(s.Tables))
	for hd := range s.Tables {
		out[hd].blocks = len(s.Tables[hd])
		for i := range s.Ctx[hd] {
			id := sm.slot(s, hd, i)
			out[hd].live = append(out[hd].live, kv{sm.pos[id], math.Float32bits(sm.metric[id])})
		}
	}
	return out
}

// runRound plans, executes the moves on the simulated device, applies, and checks every invariant.
func runRound(t *testing.T, where string, sm *sim, opts Options, in []SeqSlots) *Plan {
	t.Helper()
	fail := func(f string, a ...any) { t.Helper(); t.Fatalf("%s: %s", where, fmt.Sprintf(f, a...)) }
	pl, err := NewPlanner(opts)
	if err != nil {
		fail("%v", err)
	}
	before := make([][]headSnap, len(in))
	for si, x := range in {
		before[si] = snapshot(sm, x.Seq)
	}
	freeBefore := sm.pool.Free()
	plan, err := pl.Plan(in)
	if err != nil {
		fail("%v", err)
	}
	sm.refExecuteMoves(t, plan.Moves)
	freed, err := plan.Apply(sm.pool)
	if err != nil {
		fail("apply: %v", err)
	}
	if freed != plan.FreedBlocks() || sm.pool.Free() != freeBefore+freed {
		fail("freed %d, plan says %d, pool free %d -> %d", freed, plan.FreedBlocks(), freeBefore, sm.pool.Free())
	}
	if _, err := plan.Apply(sm.pool); err == nil {
		fail("second Apply of the same plan succeeded")
	}
	checkOwnership(t, where, sm.pool, seqsOf(in))
	b := opts.BlockSize
	for si, x := range in {
		s, sp := x.Seq, plan.Seqs[si]
		thr := s.NextPos - 1 - refProtect(opts, s.NextPos)
		exhausted := true
		for hd, hp := range sp.Heads {
			w := fmt.Sprintf("seq %d head %d", si, hd)
			old := before[si][hd]
			c := len(old.live)
			a := c % b
			if a == 0 {
				a = b
			}
			e := hp.EvictedBlocks
			if len(hp.Free) != e {
				fail("%s: %d blocks freed for %d evicted blocks", w, len(hp.Free), e)
			}
			if e > 0 && (len(hp.Evicted) != (e-1)*b+a || len(hp.Evicted)+b-a != e*b) {
				fail("%s: %d KVs evicted for %d blocks (ctx %d, b %d)", w, len(hp.Evicted), e, c, b)
			}
			if e == 0 && len(hp.Evicted) != 0 {
				fail("%s: KVs evicted without freeing a block", w)
			}
			if s.Ctx[hd] != c-len(hp.Evicted) || len(s.Tables[hd]) != old.blocks-e || len(s.Tables[hd]) != ceilDiv(s.Ctx[hd], b) {
				fail("%s: ctx %d in %d blocks after evicting %d of %d (%d blocks)", w, s.Ctx[hd], len(s.Tables[hd]), len(hp.Evicted), c, old.blocks)
			}
			if e > 0 && s.Ctx[hd]%b != 0 {
				fail("%s: ctx %d not block-aligned after compaction", w, s.Ctx[hd])
			}
			// Evicted: distinct, ascending, live, never protected or a sink.
			isEv := map[int]bool{}
			for k, i := range hp.Evicted {
				if k > 0 && i <= hp.Evicted[k-1] || int(i) >= c {
					fail("%s: evicted indices %v not ascending within ctx %d", w, hp.Evicted, c)
				}
				if p := old.live[i].pos; int(p) > thr || int(p) < opts.Sinks {
					fail("%s: evicted slot %d at protected position %d", w, i, p)
				}
				isEv[int(i)] = true
			}
			// The evicted KVs rank lowest among the evictable ones of their head.
			var maxEv, minKeep float64 = math.Inf(-1), math.Inf(1)
			for i, v := range old.live {
				r := float64(math.Float32frombits(v.metric))
				if opts.Policy == PolicyWindow {
					r = float64(v.pos)
				}
				if isEv[i] {
					maxEv = math.Max(maxEv, r)
				} else if int(v.pos) <= thr && int(v.pos) >= opts.Sinks {
					minKeep = math.Min(minKeep, r)
				}
			}
			if maxEv > minKeep {
				fail("%s: evicted a KV ranked %g while keeping one ranked %g", w, maxEv, minKeep)
			}
			// After the moves, the first ctx slots hold exactly the retained KVs; those already below the
			// new ctx did not move.
			var want, got []kv
			for i, v := range old.live {
				if !isEv[i] {
					want = append(want, v)
					if i < s.Ctx[hd] {
						id := sm.slot(s, hd, i)
						if (kv{sm.pos[id], math.Float32bits(sm.metric[id])}) != v {
							fail("%s: retained slot %d changed", w, i)
						}
					}
				}
			}
			for i := range s.Ctx[hd] {
				id := sm.slot(s, hd, i)
				got = append(got, kv{sm.pos[id], math.Float32bits(sm.metric[id])})
			}
			cmp := func(x, y kv) int { return int(x.pos) - int(y.pos) }
			slices.SortFunc(want, cmp)
			slices.SortFunc(got, cmp)
			if !slices.Equal(want, got) {
				fail("%s: after compaction the head holds %v, want %v", w, got, want)
			}
			// Could this head give back another block?
			evictable := 0
			for i, v := range old.live {
				if !isEv[i] && int(v.pos) <= thr && int(v.pos) >= opts.Sinks &&
					(opts.Policy == PolicyWindow || !math.IsInf(float64(math.Float32frombits(v.metric)), 1)) {
					evictable++
				}
			}
			need := a // KVs the next block would cost: the hanging ones, or a whole block after compaction
			if e > 0 {
				need = b
			}
			canMore := s.Ctx[hd] > 0 && evictable >= need
			if canMore {
				exhausted = false
			}
			if opts.Policy != PolicyKVCompress && opts.Policy != PolicyFull {
				k := ceilDiv(opts.budgetTokens(opts.Budget, s.NextPos), b)
				if len(s.Tables[hd]) > k && canMore {
					fail("%s: %s keeps %d blocks > %d per head while it could evict more", w, opts.Policy, len(s.Tables[hd]), k)
				}
				if e > 0 && len(s.Tables[hd]) < k {
					fail("%s: %s evicted down to %d blocks, below %d per head", w, opts.Policy, len(s.Tables[hd]), k)
				}
			}
			if opts.Policy == PolicyFull && e > 0 {
				fail("%s: full policy evicted", w)
			}
		}
		if opts.Policy == PolicyKVCompress {
			if s.Blocks() > sp.BudgetBlocks && !exhausted {
				fail("seq %d: %d blocks > budget %d while heads could evict more", si, s.Blocks(), sp.BudgetBlocks)
			}
			if got := sumFreed(sp); got > sp.Excess || (got < sp.Excess && !exhausted) {
				fail("seq %d: freed %d blocks for an excess of %d", si, got, sp.Excess)
			}
		}
	}
	return plan
}

func sumFreed(sp SeqPlan) int {
	n := 0
	for _, h := range sp.Heads {
		n += h.EvictedBlocks
	}
	return n
}

func seqsOf(in []SeqSlots) []*Seq {
	out := make([]*Seq, len(in))
	for i := range in {
		out[i] = in[i].Seq
	}
	return out
}

// checkOwnership: no block is in two tables or twice in one, every table block is in use in the pool,
// and the pool's use equals the blocks the sequences hold.
func checkOwnership(t *testing.T, where string, p *Pool, seqs []*Seq) {
	t.Helper()
	seen := map[int32]bool{}
	n := 0
	for si, s := range seqs {
		for hd, tb := range s.Tables {
			for _, id := range tb {
				if seen[id] {
					t.Fatalf("%s: block %d owned twice (seq %d head %d)", where, id, si, hd)
				}
				if !p.owned[id] {
					t.Fatalf("%s: seq %d head %d holds block %d that the pool has free", where, si, hd, id)
				}
				seen[id] = true
				n++
			}
		}
	}
	if p.InUse() != n {
		t.Fatalf("%s: pool has %d blocks in use, sequences hold %d", where, p.InUse(), n)
	}
}

// TestPlanProperties runs every policy on random cases and checks the invariants of each round.
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	policies := []Policy{PolicyKVCompress, PolicyUniform, PolicyWindow, PolicyH2O, PolicyFull}
	evicted := map[Policy]int{}
	for iter := range 1500 {
		pol := policies[iter%len(policies)]
		rc := newRandCase(t, rng, pol)
		where := fmt.Sprintf("iter %d %s b=%d protect=%d recent=%g floor=%g sinks=%d budget=%+v", iter, pol, rc.opts.BlockSize, rc.opts.Protect, rc.opts.Recent, rc.opts.Floor, rc.opts.Sinks, rc.opts.Budget)
		plan := runRound(t, where, rc.sim, rc.opts, rc.input())
		evicted[pol] += plan.EvictedKVs()
	}
	t.Logf("KVs evicted per policy: %v", evicted)
	for _, pol := range policies[:4] {
		if evicted[pol] == 0 {
			t.Errorf("%s never evicted anything", pol)
		}
	}
}

// TestBudgetMetWithFiniteMetrics: with finite metrics and distinct positions per head, KV-Compress and
// the baselines always get down to the budget (validation guarantees the protected KVs fit).
func TestBudgetMetWithFiniteMetrics(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := range 600 {
		pol := []Policy{PolicyKVCompress, PolicyUniform, PolicyWindow, PolicyH2O}[iter%4]
		b := testBlockSizes[rng.IntN(len(testBlockSizes))]
		opts := Options{Policy: pol, BlockSize: b, Protect: rng.IntN(20), Sinks: rng.IntN(3)}
		opts.Budget.MaxCacheTokens = max(1, opts.Protect+opts.Sinks) + rng.IntN(3*b)
		if iter%3 == 0 {
			opts.Budget = Budget{Rate: 1 + 10*rng.Float64()}
		}
		if iter%5 < 2 {
			opts.Recent = []float64{DefaultRecent, 1, rng.Float64()}[rng.IntN(3)]
		}
		if pol == PolicyKVCompress && iter%3 != 1 {
			opts.Floor = []float64{0.2, 1, rng.Float64()}[rng.IntN(3)]
		}
		layers, heads := 1+rng.IntN(3), 1+rng.IntN(4)
		next := 1 + rng.IntN(8*b+50)
		sm := newSim(t, layers*heads*ceilDiv(next, b)+2, b)
		ctx := make([]int, layers*heads)
		for hd := range ctx {
			ctx[hd] = next - rng.IntN(min(next, 2*b)+1)
		}
		s := sm.makeSeq(t, rng, layers, heads, next, ctx, metricGen(rng, rng.IntN(2)))
		where := fmt.Sprintf("iter %d %s b=%d protect=%d recent=%g floor=%g sinks=%d budget %+v", iter, pol, b, opts.Protect, opts.Recent, opts.Floor, opts.Sinks, opts.Budget)
		plan := runRound(t, where, sm, opts, []SeqSlots{{Seq: s, Slots: sm.read(t, s)}})
		if s.Blocks() > plan.Seqs[0].BudgetBlocks {
			t.Fatalf("%s: %d blocks after compression, budget %d", where, s.Blocks(), plan.Seqs[0].BudgetBlocks)
		}
	}
}

// TestWindowKeepsRecent: the window policy keeps the newest positions and the sinks.
func TestWindowKeepsRecent(t *testing.T) {
	const b, layers, heads, n = 4, 2, 2, 50
	sm := newSim(t, 64, b)
	s := NewSeq(layers, heads)
	rng := rand.New(rand.NewPCG(1, 1))
	sm.appendTokens(t, s, n, func() float32 { return rng.Float32() })
	opts := Options{Policy: PolicyWindow, BlockSize: b, Protect: 5, Sinks: 2, Budget: Budget{MaxCacheTokens: 16}}
	runRound(t, "window", sm, opts, []SeqSlots{{Seq: s, Slots: sm.read(t, s)}})
	for hd := range s.Tables {
		if s.Ctx[hd] != 16 {
			t.Fatalf("head %d: ctx %d, want 16", hd, s.Ctx[hd])
		}
		var got []int
		for i := range s.Ctx[hd] {
			got = append(got, int(sm.pos[sm.slot(s, hd, i)]))
		}
		slices.Sort(got)
		want := []int{0, 1}
		for p := n - 14; p < n; p++ {
			want = append(want, p)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("head %d keeps positions %v, want %v", hd, got, want)
		}
	}
}
