package kvpages

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// Planner plans eviction rounds under fixed Options. It keeps scratch memory between rounds, so one
// Planner must not be used by two goroutines at once.
type Planner struct {
	opts     Options
	ranks    []uint64 // per-head sorted evictable slots, all heads of a sequence back to back
	ranksTmp []uint64
	mask     []bool
	hist     []int32 // per head, histBuckets cumulative counts of slot keys
}

// NewPlanner validates opts (see Options.Validate) and returns a planner.
func NewPlanner(opts Options) (*Planner, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Planner{opts: opts}, nil
}

// Options returns the planner's options.
func (pl *Planner) Options() Options { return pl.opts }

// Candidate is a sequence the engine might compress this round.
type Candidate struct {
	Seq         *Seq
	Budget      Budget // zero value: Options.Budget
	RoundsSince int    // rounds since this sequence was last compressed (or since it was admitted)
}

// Select picks the candidates to plan this round, before the engine reads any metrics back: those that
// are over budget, most rounds since their last compression first (ties in input order), added while
// the sum of their slots (blocks*b) stays within MaxKVPerRound. The first one is always taken, so a
// sequence larger than the cap is still compressed. It returns indices into cands.
func (pl *Planner) Select(cands []Candidate) ([]int, error) {
	var idx []int
	for i, c := range cands {
		if c.Seq == nil {
			return nil, fmt.Errorf("kvpages: candidate %d has no sequence", i)
		}
		if c.Budget.set() {
			if err := pl.opts.checkBudget(c.Budget); err != nil {
				return nil, fmt.Errorf("candidate %d: %w", i, err)
			}
		}
		if pl.needsWork(c.Seq, c.Budget) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return cands[idx[a]].RoundsSince > cands[idx[b]].RoundsSince })
	if pl.opts.MaxKVPerRound == 0 {
		return idx, nil
	}
	total := 0
	for n, i := range idx {
		kv := cands[i].Seq.Blocks() * pl.opts.BlockSize
		if n > 0 && total+kv > pl.opts.MaxKVPerRound {
			return idx[:n], nil
		}
		total += kv
	}
	return idx, nil
}

// needsWork says whether planning s can evict anything under its budget.
func (pl *Planner) needsWork(s *Seq, b Budget) bool {
	switch pl.opts.Policy {
	case PolicyFull:
		return false
	case PolicyKVCompress:
		return pl.opts.Excess(s, b) > 0
	}
	k := pl.headBlocks(s, b)
	for _, t := range s.Tables {
		if len(t) > k {
			return true
		}
	}
	return false
}

// headBlocks is the per-head block count of the baselines: ceil(C/b).
func (pl *Planner) headBlocks(s *Seq, b Budget) int {
	if !b.set() {
		b = pl.opts.Budget
	}
	return ceilDiv(pl.opts.budgetTokens(b, s.NextPos), pl.opts.BlockSize)
}

// SeqSlots is one sequence to plan, with its slots as read back from the device.
type SeqSlots struct {
	Seq    *Seq
	Slots  []HeadSlots // [layer*KVHeads + kvHead]; may be nil for PolicyFull
	Budget Budget      // zero value: Options.Budget
}

// Plan is one eviction round. The engine copies Moves on the device (Backend.CopyMoves), then calls
// Apply to shrink the tables and return the freed blocks to the pool.
type Plan struct {
	Policy    Policy
	BlockSize int
	Seqs      []SeqPlan
	// Moves are (src, dst) global slot ids (block*b + offset), flattened: the argument of CopyMoves. No
	// destination is a source, and each head's moves stay inside that head's blocks.
	Moves   []int32
	applied bool
}

// SeqPlan is one sequence's part of a Plan.
type SeqPlan struct {
	Seq          *Seq
	BudgetBlocks int // blocks the sequence may keep
	Excess       int // E_s: blocks in use - budget, before capping at the evictable blocks
	Heads        []HeadPlan
}

// HeadPlan is one (layer, KV head)'s part of a Plan. Heads that evict nothing have EvictedBlocks 0,
// NewCtx = OldCtx and no moves.
type HeadPlan struct {
	OldCtx, OldBlocks int
	EvictedBlocks     int     // e_h: tail blocks freed
	Evicted           []int32 // logical indices evicted, ascending: (e_h-1)*b + a of them, a = OldCtx%b (b if 0)
	NewCtx            int     // (OldBlocks - e_h)*b when e_h > 0
	Free              []int32 // the last e_h entries of the table, freed by Apply
	MoveOff, MoveN    int     // this head's moves are Plan.Moves[2*MoveOff : 2*(MoveOff+MoveN)]
}

// EvictedKVs is the number of KVs the plan evicts.
func (p *Plan) EvictedKVs() int {
	n := 0
	for _, s := range p.Seqs {
		for _, h := range s.Heads {
			n += len(h.Evicted)
		}
	}
	return n
}

// FreedBlocks is the number of blocks Apply returns to the pool.
func (p *Plan) FreedBlocks() int {
	n := 0
	for _, s := range p.Seqs {
		for _, h := range s.Heads {
			n += len(h.Free)
		}
	}
	return n
}

// headRanks is one head's evictable slots sorted by (key, logical index).
type headRanks struct {
	sorted []uint64 // key<<32 | logical index
	nb     int      // finite block scores: blocks the head can give back
	a      int      // hanging KVs of the last block
	off    int      // start of this head's ctx-long region in the planner's scratch
}

// blockKey is the score of evicting e blocks (1-based): the largest key among the KVs evicted.
func (r *headRanks) blockKey(e, b int) uint32 { return uint32(r.sorted[(e-1)*b+r.a-1] >> 32) }

// Plan plans one round for the given sequences (normally those Select picked). Sequences with nothing to
// evict get a SeqPlan whose heads evict nothing.
func (pl *Planner) Plan(in []SeqSlots) (*Plan, error) {
	o := pl.opts
	b := o.BlockSize
	seen := make(map[*Seq]bool, len(in))
	for si, x := range in {
		if x.Seq == nil {
			return nil, fmt.Errorf("kvpages: seq %d: no sequence", si)
		}
		if seen[x.Seq] {
			return nil, fmt.Errorf("kvpages: seq %d: sequence appears twice in one plan", si)
		}
		seen[x.Seq] = true
		if x.Budget.set() {
			if err := o.checkBudget(x.Budget); err != nil {
				return nil, fmt.Errorf("seq %d: %w", si, err)
			}
		}
		if o.Policy == PolicyFull {
			continue
		}
		if err := checkSlots(si, x.Seq, x.Slots, b); err != nil {
			return nil, err
		}
	}
	plan := &Plan{Policy: o.Policy, BlockSize: b, Seqs: make([]SeqPlan, len(in))}
	for si, x := range in {
		s := x.Seq
		sp := &plan.Seqs[si]
		*sp = SeqPlan{Seq: s, BudgetBlocks: o.BudgetBlocks(s, x.Budget), Heads: make([]HeadPlan, len(s.Tables))}
		sp.Excess = max(0, s.Blocks()-sp.BudgetBlocks)
		for hd := range sp.Heads {
			sp.Heads[hd] = HeadPlan{OldCtx: s.Ctx[hd], OldBlocks: len(s.Tables[hd]), NewCtx: s.Ctx[hd]}
		}
		if !pl.needsWork(s, x.Budget) {
			continue
		}
		counts := make([]int, len(s.Tables))
		if o.Policy == PolicyKVCompress {
			ranks := pl.rankHeads(s, x.Slots, sp.Excess)
			selectGlobal(ranks, sp.Excess, b, counts)
			pl.compact(plan, sp, ranks, counts)
		} else {
			k := pl.headBlocks(s, x.Budget)
			ranks := pl.rankHeads(s, x.Slots, k)
			for hd := range ranks {
				counts[hd] = min(max(0, len(s.Tables[hd])-k), ranks[hd].nb)
			}
			pl.compact(plan, sp, ranks, counts)
		}
	}
	return plan, nil
}

// histBuckets is the resolution of the pre-sort histogram: a metric key's top 11 bits are its sign, its
// exponent and 2 mantissa bits, so one bucket spans a factor of at most 1.25 in value.
const histBuckets = 2048

// blocksWithin is how many block scores of a head with a hanging KVs fall among its k cheapest KVs.
func blocksWithin(k, a, b int) int {
	if k < a {
		return 0
	}
	return (k-a)/b + 1
}

// rankHeads sorts the evictable slots (live, not protected, not a sink, metric not +Inf) of each head
// that a round can reach. A first pass keys the slots and counts them in a per-head histogram of the
// keys' top bits; from it a cutoff bucket is chosen that provably contains every block the round can
// take (for KV-Compress: the lowest bucket below which the heads together hold excess block scores;
// for the baselines: per head, the bucket of the last KV the head must give up). Only slots up to the
// cutoff are sorted, which makes continual rounds that free a few blocks cheap. want is the excess for
// KV-Compress and the per-head block count k for the baselines.
func (pl *Planner) rankHeads(s *Seq, slots []HeadSlots, want int) []headRanks {
	o := pl.opts
	b := o.BlockSize
	nh := len(slots)
	total := 0
	offs := make([]int, nh+1)
	for hd := range slots {
		offs[hd] = total
		total += s.Ctx[hd]
	}
	offs[nh] = total
	if cap(pl.ranks) < total {
		pl.ranks = make([]uint64, total)
		pl.ranksTmp = make([]uint64, total)
	}
	if cap(pl.hist) < nh*histBuckets {
		pl.hist = make([]int32, nh*histBuckets)
	}
	ranks := make([]headRanks, nh)
	thr := s.NextPos - 1 - o.Protect // pos > thr is protected
	byPos := o.Policy == PolicyWindow
	shift := uint(32 + 21) // bucket = top 11 bits of the key
	if byPos {
		shift = 32 + uint(max(0, bits.Len(uint(s.NextPos))-11))
	}
	parallelFor(nh, func(hd int) {
		c := s.Ctx[hd]
		buf := pl.ranks[offs[hd]:offs[hd]:offs[hd+1]]
		hist := pl.hist[hd*histBuckets : (hd+1)*histBuckets]
		clear(hist)
		m, pos := slots[hd].Metric[:c], slots[hd].Pos[:c]
		for i, p := range pos {
			if int(p) > thr || int(p) < o.Sinks {
				continue
			}
			var k uint32
			if byPos {
				k = uint32(p)
			} else {
				if math.IsInf(float64(m[i]), 1) {
					continue
				}
				k = metricKey(m[i])
			}
			v := uint64(k)<<32 | uint64(i)
			hist[v>>shift]++
			buf = append(buf, v)
		}
		for j := 1; j < histBuckets; j++ {
			hist[j] += hist[j-1] // cumulative: slots in buckets <= j
		}
		r := &ranks[hd]
		r.off = offs[hd]
		r.sorted = buf
		r.a = c % b
		if r.a == 0 {
			r.a = b
		}
		if c > 0 {
			r.nb = blocksWithin(len(buf), r.a, b)
		}
	})
	cut := make([]int, nh) // per head: the last bucket to sort
	if o.Policy == PolicyKVCompress {
		within := func(j int) int {
			n := 0
			for hd := range ranks {
				n += blocksWithin(int(pl.hist[hd*histBuckets+j]), ranks[hd].a, b)
			}
			return n
		}
		j := sort.Search(histBuckets, func(j int) bool { return within(j) >= want })
		for hd := range cut {
			cut[hd] = min(j, histBuckets-1)
		}
	} else {
		for hd := range ranks {
			r := &ranks[hd]
			e := min(max(0, len(s.Tables[hd])-want), r.nb)
			if e == 0 {
				cut[hd] = -1
				continue
			}
			need := int32((e-1)*b + r.a)
			h := pl.hist[hd*histBuckets : (hd+1)*histBuckets]
			cut[hd] = sort.Search(histBuckets, func(j int) bool { return h[j] >= need })
		}
	}
	parallelFor(nh, func(hd int) {
		r := &ranks[hd]
		buf := r.sorted
		if j := cut[hd]; j < histBuckets-1 {
			n := 0
			for _, v := range buf {
				if int(v>>shift) <= j {
					buf[n] = v
					n++
				}
			}
			buf = buf[:n]
		}
		r.sorted = sortRanks(buf, pl.ranksTmp[offs[hd]:offs[hd+1]])
		r.nb = min(r.nb, blocksWithin(len(r.sorted), r.a, b))
	})
	return ranks
}

// selectGlobal takes the excess cheapest block scores over all heads, ordered by (score, head, e), and
// writes each head's count. Per head the scores are non-decreasing in e, so the selection is a prefix
// of every head's list: it binary-searches the score T of the last block taken (the number of blocks
// cheaper than a key is a sum of per-head binary searches), takes every block below T, then the blocks
// equal to T in (head, e) order.
func selectGlobal(ranks []headRanks, excess, b int, counts []int) {
	total := 0
	for hd := range ranks {
		total += ranks[hd].nb
	}
	if excess >= total {
		for hd := range ranks {
			counts[hd] = ranks[hd].nb
		}
		return
	}
	if excess <= 0 {
		return
	}
	below := func(hd int, t uint64) int { // blocks of head hd whose score is < t
		r := &ranks[hd]
		return sort.Search(r.nb, func(i int) bool { return uint64(r.blockKey(i+1, b)) >= t })
	}
	cheaper := func(t uint64) int {
		n := 0
		for hd := range ranks {
			n += below(hd, t)
		}
		return n
	}
	// The largest t with fewer than excess blocks below it is the excess-th smallest score.
	lo, hi := uint64(0), uint64(1)<<32 // cheaper(lo) < excess <= cheaper(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if cheaper(mid) < excess {
			lo = mid
		} else {
			hi = mid
		}
	}
	left := excess
	for hd := range ranks {
		counts[hd] = below(hd, lo)
		left -= counts[hd]
	}
	for hd := range ranks {
		if left == 0 {
			break
		}
		eq := min(below(hd, lo+1)-counts[hd], left)
		counts[hd] += eq
		left -= eq
	}
}

// compact fills in each head's evicted set, moves, new context and freed blocks, and appends the moves
// to the plan.
func (pl *Planner) compact(plan *Plan, sp *SeqPlan, ranks []headRanks, counts []int) {
	b := pl.opts.BlockSize
	s := sp.Seq
	evOff := make([]int, len(counts)+1)
	for hd, e := range counts {
		evOff[hd+1] = evOff[hd]
		if e > 0 {
			evOff[hd+1] += (e-1)*b + ranks[hd].a
		}
	}
	nEv := evOff[len(counts)]
	if nEv == 0 {
		return
	}
	fOff := make([]int, len(counts)+1)
	for hd, e := range counts {
		fOff[hd+1] = fOff[hd] + e
	}
	free := make([]int32, fOff[len(counts)])
	evicted := make([]int32, nEv)
	moves := make([]int32, 2*nEv) // at most one move per evicted KV
	if cap(pl.mask) < len(pl.ranks) {
		pl.mask = make([]bool, len(pl.ranks))
	}
	moveN := make([]int, len(counts))
	parallelFor(len(counts), func(hd int) {
		e := counts[hd]
		if e == 0 {
			return
		}
		c, t := s.Ctx[hd], s.Tables[hd]
		lo, hi := evOff[hd], evOff[hd+1]
		mask := pl.mask[ranks[hd].off : ranks[hd].off+c]
		clear(mask)
		for _, v := range ranks[hd].sorted[:hi-lo] {
			mask[uint32(v)] = true
		}
		ev := evicted[lo:hi:hi]
		n := 0
		for i, m := range mask {
			if m {
				ev[n] = int32(i)
				n++
			}
		}
		mv := moves[2*lo : 2*hi]
		nm := 0
		src := c - 1
		for _, hole := range ev {
			for src >= 0 && mask[src] {
				src--
			}
			if int(hole) >= src {
				break
			}
			mv[2*nm] = t[src/b]*int32(b) + int32(src%b)
			mv[2*nm+1] = t[int(hole)/b]*int32(b) + hole%int32(b)
			nm++
			src--
		}
		moveN[hd] = nm
		hp := &sp.Heads[hd]
		hp.EvictedBlocks = e
		hp.Evicted = ev
		hp.NewCtx = (len(t) - e) * b
		hp.Free = free[fOff[hd]:fOff[hd+1]:fOff[hd+1]]
		copy(hp.Free, t[len(t)-e:])
	})
	for hd := range counts {
		hp := &sp.Heads[hd]
		if counts[hd] == 0 {
			continue
		}
		hp.MoveOff = len(plan.Moves) / 2
		hp.MoveN = moveN[hd]
		lo := evOff[hd]
		plan.Moves = append(plan.Moves, moves[2*lo:2*(lo+moveN[hd])]...)
	}
}

// parallelFor runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallelFor(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// ErrPlanStale is returned by Apply when a sequence changed between planning and applying.
var ErrPlanStale = errors.New("kvpages: plan is stale")

// Apply shrinks every planned head to its new context, drops the freed tail blocks from its table and
// releases them to the pool. Call it after the engine has executed Moves on the device. It checks the
// whole plan first and changes nothing when a sequence no longer matches it. It returns the blocks freed.
func (p *Plan) Apply(pool *Pool) (int, error) {
	if p.applied {
		return 0, fmt.Errorf("kvpages: plan applied twice")
	}
	if pool.BlockSize() != p.BlockSize {
		return 0, fmt.Errorf("kvpages: plan for block size %d applied to a pool of block size %d", p.BlockSize, pool.BlockSize())
	}
	for si, sp := range p.Seqs {
		s := sp.Seq
		if len(s.Tables) != len(sp.Heads) {
			return 0, fmt.Errorf("%w: seq %d has %d heads, planned %d", ErrPlanStale, si, len(s.Tables), len(sp.Heads))
		}
		for hd, hp := range sp.Heads {
			if hp.EvictedBlocks == 0 {
				continue
			}
			if s.Ctx[hd] != hp.OldCtx || len(s.Tables[hd]) != hp.OldBlocks {
				return 0, fmt.Errorf("%w: seq %d head %d has context %d in %d blocks, planned for %d in %d",
					ErrPlanStale, si, hd, s.Ctx[hd], len(s.Tables[hd]), hp.OldCtx, hp.OldBlocks)
			}
			for _, id := range hp.Free {
				if id < 0 || int(id) >= pool.Blocks() || !pool.owned[id] {
					return 0, fmt.Errorf("%w: seq %d head %d frees block %d that the pool does not hold as in use", ErrPlanStale, si, hd, id)
				}
			}
		}
	}
	freed := 0
	for _, sp := range p.Seqs {
		s := sp.Seq
		for hd, hp := range sp.Heads {
			if hp.EvictedBlocks == 0 {
				continue
			}
			for _, id := range hp.Free {
				pool.Release(id)
			}
			freed += len(hp.Free)
			s.Tables[hd] = s.Tables[hd][:hp.OldBlocks-hp.EvictedBlocks]
			s.Ctx[hd] = hp.NewCtx
		}
	}
	p.applied = true
	return freed, nil
}
