package kvpages

import (
	"math/bits"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// How a round ranks slots without sorting whole heads. Every evictable slot (live, not protected, not a
// sink, metric not +Inf) gets a 64-bit entry key<<32 | logical index, so entries order by (key, index)
// and are all distinct. One pass per head stores the entries in logical order and counts them in a
// histogram of histBuckets buckets of the key's top bits. A head that gives up r KVs loses every entry
// of the buckets below the one holding its r-th smallest entry, plus the lowest entries of that bucket:
// only that one bucket needs sorting. KV-Compress's global choice likewise needs only the bucket J that
// holds the excess-th cheapest block score: blocks whose score falls below J are taken, blocks above it
// are not, and the ones inside are ranked from J's sorted entries.

// histBuckets is the histogram resolution: a metric key's top 11 bits are its sign, its exponent and 2
// mantissa bits, so one bucket spans a factor of at most 1.25 in value.
const histBuckets = 2048

// keyPosInf is metricKey(+Inf).
const keyPosInf = 0xff800000

// headRanks is one head's evictable slots.
type headRanks struct {
	keys    []uint64 // entries in logical order
	cum     []int32  // cum[j]: entries in buckets <= j
	sorted  []uint64 // scratch for one sorted bucket (as long as keys)
	sortedJ int      // the bucket sorted in sorted[:sortedN], -1 if none
	sortedN int
	a       int // hanging KVs of the last block
	nb      int // blocks the head can give back: its finite block scores
}

// below is the number of entries in buckets < j.
func (r *headRanks) below(j int) int {
	if j <= 0 {
		return 0
	}
	return int(r.cum[j-1])
}

// blocksWithin is how many block scores of a head with a hanging KVs fall among its k cheapest entries
// (block e's score is its ((e-1)*b+a)-th cheapest entry).
func blocksWithin(k, a, b int) int {
	if k < a {
		return 0
	}
	return (k-a)/b + 1
}

// keyHeads makes each head's entries and histogram (in parallel over heads), checking every live slot
// on the way (see badSlot); si names the sequence in errors, protect is its protected window (protectFor).
func (pl *Planner) keyHeads(si int, s *Seq, slots []HeadSlots, protect int) ([]headRanks, error) {
	o := pl.opts
	b := o.BlockSize
	nh := len(slots)
	total, maxCtx := 0, 0
	offs := make([]int, nh+1)
	for hd := range slots {
		offs[hd] = total
		total += s.Ctx[hd]
		maxCtx = max(maxCtx, s.Ctx[hd])
	}
	offs[nh] = total
	if cap(pl.keys) < total {
		pl.keys = make([]uint64, total)
		pl.sorted = make([]uint64, total)
	}
	if cap(pl.hist) < nh*histBuckets {
		pl.hist = make([]int32, nh*histBuckets)
	}
	w := runtime.GOMAXPROCS(0)
	if len(pl.scratch) < w {
		pl.scratch = make([][]uint64, w)
	}
	for i := range pl.scratch {
		if cap(pl.scratch[i]) < maxCtx {
			pl.scratch[i] = make([]uint64, maxCtx)
		}
	}
	thr := s.NextPos - 1 - protect // pos > thr is protected
	byPos := o.Policy == PolicyWindow
	pl.shift = 32 + 21 // bucket = top 11 bits of the key
	if byPos {
		pl.shift = 32 + uint(max(0, bits.Len(uint(s.NextPos))-11))
	}
	shift := pl.shift
	ranks := make([]headRanks, nh)
	errs := make([]error, nh)
	next := uint32(s.NextPos)
	parallelFor(nh, func(_, hd int) {
		c := s.Ctx[hd]
		keys := pl.keys[offs[hd]:offs[hd]:offs[hd+1]]
		cum := pl.hist[hd*histBuckets : (hd+1)*histBuckets : (hd+1)*histBuckets]
		clear(cum)
		m, pos := slots[hd].Metric[:c], slots[hd].Pos[:c]
		for i, p := range pos {
			mi := m[i]
			if uint32(p) >= next || mi != mi {
				errs[hd] = badSlot(si, s, hd, i, mi, p)
				return
			}
			if int(p) > thr || int(p) < o.Sinks {
				continue
			}
			var k uint32
			if byPos {
				k = uint32(p)
			} else if k = metricKey(mi); k >= keyPosInf {
				continue // +Inf: may not go
			}
			v := uint64(k)<<32 | uint64(i)
			cum[v>>shift]++
			keys = append(keys, v)
		}
		for j := 1; j < histBuckets; j++ {
			cum[j] += cum[j-1]
		}
		r := &ranks[hd]
		*r = headRanks{keys: keys, cum: cum, sorted: pl.sorted[offs[hd]:offs[hd+1]], sortedJ: -1, a: c % b}
		if r.a == 0 {
			r.a = b
		}
		if c > 0 {
			r.nb = blocksWithin(len(keys), r.a, b)
		}
	})
	return ranks, firstErr(errs)
}

// sortBucket sorts the head's entries of bucket j into r.sorted and returns them.
func (pl *Planner) sortBucket(r *headRanks, j int, scratch []uint64) []uint64 {
	if r.sortedJ == j {
		return r.sorted[:r.sortedN]
	}
	out := r.sorted[:0]
	for _, v := range r.keys {
		if int(v>>pl.shift) == j {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return out
	}
	res := sortRanks(out, scratch[:len(out)])
	if &res[0] != &out[0] {
		copy(out, res)
	}
	r.sortedJ, r.sortedN = j, len(out)
	return out
}

// selectGlobal takes the excess cheapest block scores over all heads, ordered by (score, head, e), and
// writes each head's count. Per head the scores are non-decreasing in e, so the selection is a prefix
// of each head's list. J is the lowest bucket below which the heads hold at least excess block scores;
// the score T of the last block taken lies in J, found by binary search over J's key range (the blocks
// cheaper than a key: per head, those below J plus a binary search among those inside J). Every block
// below T is taken, then the blocks equal to T in (head, e) order.
func (pl *Planner) selectGlobal(ranks []headRanks, excess int, counts []int) {
	b := pl.opts.BlockSize
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
	within := func(j int) int { // block scores in buckets <= j
		n := 0
		for hd := range ranks {
			r := &ranks[hd]
			n += min(r.nb, blocksWithin(int(r.cum[j]), r.a, b))
		}
		return n
	}
	J := sort.Search(histBuckets, func(j int) bool { return within(j) >= excess })
	// Per head: the blocks scored below J (taken), and the sorted entries of J for the blocks inside it.
	sure := make([]int, len(ranks))
	inJ := make([]int, len(ranks))
	sortedJ := make([][]uint64, len(ranks))
	parallelFor(len(ranks), func(w, hd int) {
		r := &ranks[hd]
		sure[hd] = min(r.nb, blocksWithin(r.below(J), r.a, b))
		inJ[hd] = min(r.nb, blocksWithin(int(r.cum[J]), r.a, b)) - sure[hd]
		if inJ[hd] > 0 {
			sortedJ[hd] = pl.sortBucket(r, J, pl.scratch[w])
		}
	})
	// score of the i-th block of head hd inside J (0-based): its ((e-1)*b+a)-th entry, e = sure+1+i.
	score := func(hd, i int) uint64 {
		r := &ranks[hd]
		q := (sure[hd]+i)*b + r.a - 1
		return sortedJ[hd][q-r.below(J)] >> 32
	}
	cheaperIn := func(hd int, t uint64) int { // blocks of hd inside J scored < t
		return sort.Search(inJ[hd], func(i int) bool { return score(hd, i) >= t })
	}
	cheaper := func(t uint64) int {
		n := 0
		for hd := range ranks {
			n += sure[hd] + cheaperIn(hd, t)
		}
		return n
	}
	ks := pl.shift - 32
	lo, hi := uint64(J)<<ks, uint64(J+1)<<ks // cheaper(lo) < excess <= cheaper(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if cheaper(mid) < excess {
			lo = mid
		} else {
			hi = mid
		}
	}
	// lo is the excess-th cheapest score.
	left := excess
	for hd := range ranks {
		counts[hd] = sure[hd] + cheaperIn(hd, lo)
		left -= counts[hd]
	}
	for hd := range ranks {
		if left == 0 {
			break
		}
		eq := min(sure[hd]+cheaperIn(hd, lo+1)-counts[hd], left)
		counts[hd] += eq
		left -= eq
	}
}

// compact fills in each head's evicted set, new context, freed blocks and moves, and appends the moves
// to the plan.
func (pl *Planner) compact(plan *Plan, sp *SeqPlan, ranks []headRanks, counts []int) {
	b := pl.opts.BlockSize
	s := sp.Seq
	evOff := make([]int, len(counts)+1)
	fOff := make([]int, len(counts)+1)
	for hd, e := range counts {
		evOff[hd+1] = evOff[hd]
		if e > 0 {
			evOff[hd+1] += (e-1)*b + ranks[hd].a
		}
		fOff[hd+1] = fOff[hd] + e
	}
	if evOff[len(counts)] == 0 {
		return
	}
	evicted := make([]int32, evOff[len(counts)])
	free := make([]int32, fOff[len(counts)])
	// Pass 1: each head's evicted entries, in logical order: the need cheapest, i.e. those up to the
	// need-th cheapest (the pivot, found in its sorted bucket); the move count is the number of holes
	// below the new ctx.
	parallelFor(len(counts), func(w, hd int) {
		e := counts[hd]
		if e == 0 {
			return
		}
		r := &ranks[hd]
		t := s.Tables[hd]
		lo, hi := evOff[hd], evOff[hd+1]
		need := hi - lo
		j := sort.Search(histBuckets, func(j int) bool { return int(r.cum[j]) >= need })
		pivot := pl.sortBucket(r, j, pl.scratch[w])[need-r.below(j)-1]
		hp := &sp.Heads[hd]
		hp.EvictedBlocks = e
		hp.NewCtx = (len(t) - e) * b
		ev := evicted[lo:lo:hi]
		for _, v := range r.keys {
			if v <= pivot {
				ev = append(ev, int32(uint32(v)))
				if int(uint32(v)) < hp.NewCtx {
					hp.MoveN++
				}
			}
		}
		hp.Evicted = ev
		hp.Free = free[fOff[hd]:fOff[hd+1]:fOff[hd+1]]
		copy(hp.Free, t[len(t)-e:])
	})
	n := len(plan.Moves) / 2
	for hd := range sp.Heads {
		sp.Heads[hd].MoveOff = n
		n += sp.Heads[hd].MoveN
	}
	plan.Moves = append(plan.Moves, make([]int32, 2*n-len(plan.Moves))...)
	// Pass 2: fill the holes from the tail: sources from ctx-1 down, skipping evicted slots, into the
	// lowest unfilled hole, until the hole is not below the source (exactly MoveN times).
	parallelFor(len(counts), func(_, hd int) {
		hp := &sp.Heads[hd]
		if hp.MoveN == 0 {
			return
		}
		t := s.Tables[hd]
		ev := hp.Evicted
		mv := plan.Moves[2*hp.MoveOff : 2*(hp.MoveOff+hp.MoveN)]
		src, top := int32(hp.OldCtx-1), len(ev)-1
		for k, hole := range ev[:hp.MoveN] {
			for top >= 0 && ev[top] == src {
				src--
				top--
			}
			mv[2*k] = t[src/int32(b)]*int32(b) + src%int32(b)
			mv[2*k+1] = t[hole/int32(b)]*int32(b) + hole%int32(b)
			src--
		}
	})
}

// parallelFor runs f(worker, i) for i in 0..n-1 on up to GOMAXPROCS goroutines; worker < GOMAXPROCS.
func parallelFor(n int, f func(w, i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		for i := range n {
			f(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(k, i)
			}
		})
	}
	wg.Wait()
}
