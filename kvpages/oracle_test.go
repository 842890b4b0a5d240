package kvpages

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// The oracles below are written from the description in kv-compress.md §1.3 and §3 (the reference's
// ref_schedule_cache_evictions, ref_schedule_t1_cache_moves and ref_execute_cache_moves): slow and
// simple on purpose.

// refHead is one head ranked the obvious way: every live slot with its value (+Inf when it may not go),
// stable-sorted by value, ties by logical index.
type refHead struct {
	val []float64
	idx []int
	a   int // hanging KVs
	n   int // blocks
}

func refRank(hs HeadSlots, c, nextPos, protect, sinks, b int, byPos bool) refHead {
	r := refHead{n: (c + b - 1) / b}
	r.a = c % b
	if r.a == 0 {
		r.a = b
	}
	for i := range c {
		v := float64(hs.Metric[i])
		if byPos {
			v = float64(hs.Pos[i])
		}
		p := int(hs.Pos[i])
		if p > nextPos-1-protect || p < sinks {
			v = math.Inf(1)
		}
		r.val = append(r.val, v)
		r.idx = append(r.idx, i)
	}
	order := make([]int, len(r.val))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return r.val[order[x]] < r.val[order[y]] })
	val, idx := make([]float64, len(order)), make([]int, len(order))
	for k, o := range order {
		val[k], idx[k] = r.val[o], r.idx[o]
	}
	r.val, r.idx = val, idx
	return r
}

// cost of evicting e blocks: the largest value among the (e-1)*b+a cheapest KVs (val is ascending).
func (r refHead) cost(e, b int) float64 {
	k := (e-1)*b + r.a
	if e < 1 || e > r.n || k > len(r.val) {
		return math.Inf(1)
	}
	return r.val[k-1]
}

// refScheduleEvictions: repeatedly evict the globally cheapest next block over all heads (lowest head
// index on ties), excess times or until no head has a finite next block. A head keeps at least floor
// blocks (Options.Floor; 0: no floor).
func refScheduleEvictions(heads []refHead, excess, b, floor int) []int {
	cnt := make([]int, len(heads))
	for range excess {
		best, bestCost := -1, math.Inf(1)
		for hd, r := range heads {
			if r.n-cnt[hd] <= floor {
				continue
			}
			if c := r.cost(cnt[hd]+1, b); c < bestCost {
				best, bestCost = hd, c
			}
		}
		if best < 0 {
			break
		}
		cnt[best]++
	}
	return cnt
}

// refUniform: every head keeps k blocks, or as few as its unevictable KVs allow.
func refUniform(heads []refHead, k, b int) []int {
	cnt := make([]int, len(heads))
	for hd, r := range heads {
		for e := 1; e <= r.n-k; e++ {
			if math.IsInf(r.cost(e, b), 1) {
				break
			}
			cnt[hd] = e
		}
	}
	return cnt
}

// refEvicted: the logical indices evicted with e blocks, ascending.
func (r refHead) evicted(e, b int) []int {
	if e == 0 {
		return nil
	}
	ev := slices.Clone(r.idx[:(e-1)*b+r.a])
	slices.Sort(ev)
	return ev
}

// refScheduleMoves is ref_schedule_t1_cache_moves for one head: walk sources down from ctx-1, skipping
// evicted ones, and fill the lowest unfilled hole until the hole is not below the source. Moves are
// (src, dst) global slot ids.
func refScheduleMoves(table []int32, c, b int, evicted []int) []int32 {
	isEv := map[int]bool{}
	for _, i := range evicted {
		isEv[i] = true
	}
	var moves []int32
	next := 0 // next hole
	for src := c - 1; src >= 0 && next < len(evicted); src-- {
		if isEv[src] {
			continue
		}
		if evicted[next] >= src {
			break
		}
		g := func(i int) int32 { return table[i/b]*int32(b) + int32(i%b) }
		moves = append(moves, g(src), g(evicted[next]))
		next++
	}
	return moves
}

// refScheduleMovesPaired states the same compaction differently: retained indices >= the new context,
// highest first, paired with the evicted indices below it, lowest first.
func refScheduleMovesPaired(table []int32, c, b int, evicted []int) ([]int32, error) {
	newCtx := c - len(evicted)
	isEv := map[int]bool{}
	for _, i := range evicted {
		isEv[i] = true
	}
	var srcs, holes []int
	for i := c - 1; i >= newCtx; i-- {
		if !isEv[i] {
			srcs = append(srcs, i)
		}
	}
	for _, i := range evicted {
		if i < newCtx {
			holes = append(holes, i)
		}
	}
	if len(srcs) != len(holes) {
		return nil, fmt.Errorf("%d sources for %d holes", len(srcs), len(holes))
	}
	var moves []int32
	for k := range srcs {
		moves = append(moves, table[srcs[k]/b]*int32(b)+int32(srcs[k]%b), table[holes[k]/b]*int32(b)+int32(holes[k]%b))
	}
	return moves, nil
}

var testBlockSizes = []int{1, 2, 4, 16, 32}

// randomCase builds a pool with one or more sequences of random shape, lengths and metrics.
type randCase struct {
	sim   *sim
	opts  Options
	seqs  []*Seq
	slots [][]HeadSlots
}

// refProtect is the protected window of a sequence of length next: Protect, or when larger the recency
// share of the per-head budget C or the metric buffer of the policy's metric (10 for the per-query means),
// the larger of the two at most C minus the sinks; window and full protect only Protect.
func refProtect(o Options, next int) int {
	if o.Policy == PolicyWindow || o.Policy == PolicyFull {
		return o.Protect
	}
	c := o.Budget.MaxCacheTokens
	if o.Budget.Rate != 0 {
		p := min(next, o.Protect+o.Sinks)
		c = p + int(math.Ceil(float64(next-p)/o.Budget.Rate))
	}
	buf := 0
	m := o.Metric
	if m == MetricDefault && o.Policy != PolicyH2O {
		m = MetricL1Avg
	}
	if m == MetricL1Avg || m == MetricL2Avg {
		buf = 10
	}
	share := int(math.Floor(o.Recent * float64(c)))
	return max(o.Protect, min(max(share, buf), c-o.Sinks))
}

// refFloor is the fewest blocks kvcompress leaves a head of a sequence of length next: its protected
// positions and sinks, plus Floor of the rest of the per-head budget C, in whole blocks.
func refFloor(o Options, next int) int {
	if o.Floor == 0 {
		return 0
	}
	c := o.Budget.MaxCacheTokens
	if o.Budget.Rate != 0 {
		p := min(next, o.Protect+o.Sinks)
		c = p + int(math.Ceil(float64(next-p)/o.Budget.Rate))
	}
	p := min(c, refProtect(o, next)+o.Sinks)
	keep := p + int(math.Floor(o.Floor*float64(c-p)))
	return (keep + o.BlockSize - 1) / o.BlockSize
}

func newRandCase(t testing.TB, rng *rand.Rand, policy Policy) *randCase {
	b := testBlockSizes[rng.IntN(len(testBlockSizes))]
	layers, heads := 1+rng.IntN(3), 1+rng.IntN(3)
	nseq := 1 + rng.IntN(2)
	maxLen := 1 + rng.IntN(6*b+40)
	if rng.IntN(6) == 0 {
		maxLen = 1 + rng.IntN(900) // long heads take the radix-sort path
	}
	opts := Options{Policy: policy, BlockSize: b, Protect: rng.IntN(12), Sinks: rng.IntN(4)}
	if rng.IntN(4) == 0 {
		opts.Protect = rng.IntN(40)
	}
	switch rng.IntN(4) {
	case 0:
		opts.Recent = rng.Float64()
	case 1:
		opts.Recent = []float64{DefaultRecent, 1}[rng.IntN(2)]
	}
	if policy == PolicyKVCompress && rng.IntN(3) == 0 {
		opts.Floor = []float64{rng.Float64(), 0.2, 1}[rng.IntN(3)]
	}
	if rng.IntN(3) == 0 {
		opts.Budget.Rate = 1 + 7*rng.Float64()
	} else {
		minTok := ceilDiv(opts.Protect+opts.Sinks, b) * b
		opts.Budget.MaxCacheTokens = max(1, minTok-b+1) + rng.IntN(maxLen+b)
	}
	var blocks int
	ctxs := make([][]int, nseq)
	nexts := make([]int, nseq)
	for si := range nseq {
		nexts[si] = 1 + rng.IntN(maxLen)
		ctxs[si] = make([]int, layers*heads)
		for hd := range ctxs[si] {
			switch rng.IntN(4) {
			case 0:
				ctxs[si][hd] = nexts[si]
			case 1:
				ctxs[si][hd] = 0
			default:
				ctxs[si][hd] = rng.IntN(nexts[si] + 1)
			}
			blocks += ceilDiv(ctxs[si][hd], b)
		}
	}
	rc := &randCase{sim: newSim(t, blocks+1+rng.IntN(4), b), opts: opts}
	// Shuffle the free list so block ids are not in table order.
	fl := rc.sim.pool.free
	rng.Shuffle(len(fl), func(i, j int) { fl[i], fl[j] = fl[j], fl[i] })
	gen := metricGen(rng, rng.IntN(4))
	for si := range nseq {
		s := rc.sim.makeSeq(t, rng, layers, heads, nexts[si], ctxs[si], gen)
		rc.seqs = append(rc.seqs, s)
		rc.slots = append(rc.slots, rc.sim.read(t, s))
	}
	return rc
}

func (rc *randCase) input() []SeqSlots {
	in := make([]SeqSlots, len(rc.seqs))
	for i := range rc.seqs {
		in[i] = SeqSlots{Seq: rc.seqs[i], Slots: rc.slots[i]}
	}
	return in
}

// TestPlanMatchesOracles compares the planner with the oracles on random metrics, lengths, block sizes,
// protected windows and sinks, for KV-Compress and the baselines.
func TestPlanMatchesOracles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	policies := []Policy{PolicyKVCompress, PolicyUniform, PolicyWindow, PolicyH2O}
	evictedSome := map[Policy]int{}
	for iter := range 1500 {
		pol := policies[iter%len(policies)]
		rc := newRandCase(t, rng, pol)
		pl, err := NewPlanner(rc.opts)
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		plan, err := pl.Plan(rc.input())
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		o := rc.opts
		b := o.BlockSize
		for si, s := range rc.seqs {
			heads := make([]refHead, len(s.Tables))
			for hd := range heads {
				heads[hd] = refRank(rc.slots[si][hd], s.Ctx[hd], s.NextPos, refProtect(o, s.NextPos), o.Sinks, b, pol == PolicyWindow)
			}
			var want []int
			if pol == PolicyKVCompress {
				want = refScheduleEvictions(heads, max(0, s.Blocks()-o.BudgetBlocks(s, Budget{})), b, refFloor(o, s.NextPos))
			} else {
				want = refUniform(heads, ceilDiv(o.budgetTokens(o.Budget, s.NextPos), b), b)
			}
			sp := plan.Seqs[si]
			for hd, r := range heads {
				hp := sp.Heads[hd]
				where := fmt.Sprintf("iter %d %s b=%d protect=%d sinks=%d floor=%g seq %d head %d ctx %d", iter, pol, b, o.Protect, o.Sinks, o.Floor, si, hd, s.Ctx[hd])
				if hp.EvictedBlocks != want[hd] {
					t.Fatalf("%s: evicted %d blocks, oracle %d (all heads: oracle %v)", where, hp.EvictedBlocks, want[hd], want)
				}
				if want[hd] > 0 {
					evictedSome[pol]++
				}
				wantEv := r.evicted(want[hd], b)
				if !slices.Equal(toInts(hp.Evicted), wantEv) {
					t.Fatalf("%s: evicted %v, oracle %v", where, hp.Evicted, wantEv)
				}
				wantMoves := refScheduleMoves(s.Tables[hd], s.Ctx[hd], b, wantEv)
				paired, err := refScheduleMovesPaired(s.Tables[hd], s.Ctx[hd], b, wantEv)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if !slices.Equal(wantMoves, paired) {
					t.Fatalf("%s: the two move oracles disagree: %v vs %v", where, wantMoves, paired)
				}
				got := plan.Moves[2*hp.MoveOff : 2*(hp.MoveOff+hp.MoveN)]
				if !slices.Equal(got, wantMoves) && !(len(got) == 0 && len(wantMoves) == 0) {
					t.Fatalf("%s: moves %v, oracle %v", where, got, wantMoves)
				}
				wantCtx := s.Ctx[hd]
				if want[hd] > 0 {
					wantCtx = s.Ctx[hd] - len(wantEv)
				}
				if hp.NewCtx != wantCtx {
					t.Fatalf("%s: new ctx %d, oracle %d", where, hp.NewCtx, wantCtx)
				}
			}
		}
	}
	for _, pol := range policies {
		if evictedSome[pol] < 100 {
			t.Errorf("%s: only %d heads evicted anything; the random cases are too easy", pol, evictedSome[pol])
		}
	}
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// TestPlanMatchesOraclesLarge: long heads, where the histogram cut and the threshold bucket matter,
// including metrics that all fall in one bucket.
func TestPlanMatchesOraclesLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	gens := []func() float32{
		func() float32 { return rng.Float32() * rng.Float32() * rng.Float32() },
		func() float32 { return 1 + rng.Float32()*1e-3 }, // one bucket
		func() float32 { return float32(rng.IntN(5)) },
	}
	for iter := range 12 {
		pol := []Policy{PolicyKVCompress, PolicyUniform, PolicyWindow}[iter%3]
		b := []int{16, 4, 32, 1}[iter%4]
		const layers, heads = 2, 2
		next := 3000 + rng.IntN(2000)
		opts := Options{Policy: pol, BlockSize: b, Protect: 32, Sinks: iter % 3, Budget: Budget{MaxCacheTokens: 64 + rng.IntN(next)}}
		sm := newSim(t, layers*heads*ceilDiv(next, b)+1, b)
		ctx := make([]int, layers*heads)
		for hd := range ctx {
			ctx[hd] = next - rng.IntN(next/2)
		}
		s := sm.makeSeq(t, rng, layers, heads, next, ctx, gens[iter%len(gens)])
		slots := sm.read(t, s)
		pl, err := NewPlanner(opts)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pl.Plan([]SeqSlots{{Seq: s, Slots: slots}})
		if err != nil {
			t.Fatal(err)
		}
		refs := make([]refHead, len(ctx))
		for hd := range refs {
			refs[hd] = refRank(slots[hd], ctx[hd], next, opts.Protect, opts.Sinks, b, pol == PolicyWindow)
		}
		var want []int
		if pol == PolicyKVCompress {
			want = refScheduleEvictions(refs, opts.Excess(s, Budget{}), b, 0)
		} else {
			want = refUniform(refs, ceilDiv(opts.Budget.MaxCacheTokens, b), b)
		}
		for hd, hp := range plan.Seqs[0].Heads {
			wantEv := refs[hd].evicted(want[hd], b)
			if hp.EvictedBlocks != want[hd] || !slices.Equal(toInts(hp.Evicted), wantEv) {
				t.Fatalf("iter %d %s b=%d head %d: evicted %d blocks (%d KVs), oracle %d blocks (%d KVs)",
					iter, pol, b, hd, hp.EvictedBlocks, len(hp.Evicted), want[hd], len(wantEv))
			}
			if got, w := plan.Moves[2*hp.MoveOff:2*(hp.MoveOff+hp.MoveN)], refScheduleMoves(s.Tables[hd], ctx[hd], b, wantEv); !slices.Equal(got, w) && len(got)+len(w) > 0 {
				t.Fatalf("iter %d head %d: moves differ from the oracle", iter, hd)
			}
		}
	}
}
