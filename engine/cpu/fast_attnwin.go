package cpu

import (
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"kvc/engine"
)

// winSums holds one chunk of a window's rows' sums: acc[h*stride+i] is query head h's (of the KV group)
// sum over the chunk's rows of f(p) for the head's logical slot i, f as engine.WindowSpec. lpos[i] is slot
// i's position and pre[i] the highest of lpos[:i+1], so that the slots before the first pre[i] above a
// row's limit all add without a test (a causal prompt: every slot but the buffer's).
type winSums struct {
	acc       []float64
	stride    int
	lpos, pre []int32
	buf       int32
	squared   bool
}

// add adds one query head's row: e are its exp(score - max) over its first len(e) slots, sum their sum.
func (w *winSums) add(at int, e []float32, qpos int32, sum float64) {
	addRowProbs(w.acc[at:at+len(e)], e, w.lpos, w.pre, qpos-w.buf, 1/sum, w.squared)
}

// addRowProbs adds a row's probabilities e[i]*inv (squared with squared) to acc[i] for the slots i at or
// below position lim (the row's position less the metric buffer; hidden slots are above it and their e is
// 0). lpos are the slots' positions and pre[i] the highest of lpos[:i+1], so that the slots before the
// first pre[i] above lim all add without a test (a causal prompt: every slot but the buffer's).
func addRowProbs(acc []float64, e []float32, lpos, pre []int32, lim int32, inv float64, squared bool) {
	n := len(e)
	in := sort.Search(n, func(i int) bool { return pre[i] > lim })
	a, lpos := acc[:n], lpos[:n]
	if squared {
		for i, x := range e[:in] {
			pr := float64(x) * inv
			a[i] += pr * pr
		}
		for i := in; i < n; i++ {
			if lpos[i] <= lim {
				pr := float64(e[i]) * inv
				a[i] += pr * pr
			}
		}
		return
	}
	for i, x := range e[:in] {
		a[i] += float64(x) * inv
	}
	for i := in; i < n; i++ {
		if lpos[i] <= lim {
			a[i] += float64(e[i]) * inv
		}
	}
}

// addMaxPool7 adds to group[i] the largest of sums[i-3 .. i+3] (Pool7's max-pool, kernel 7).
func addMaxPool7(group, sums []float64) {
	n := len(sums)
	for i := range sums {
		m := sums[i]
		for j := max(0, i-3); j <= min(n-1, i+3); j++ {
			m = max(m, sums[j])
		}
		group[i] += m
	}
}

// fusedWindow is the fused op's reusable lists (Backend.fused).
type fusedWindow struct {
	mu    sync.Mutex
	inWin []bool
	units []winUnit
	jobs  []winJob
	acc   []float64
}

// winJob is a chunk of a window unit's rows [lo, hi), or with unit -1 the plain row lo's KV head hi, or with
// unit -2 KV head hi of every metric row.
type winJob struct{ unit, ch, lo, hi int }

// winUnit is one (window, KV head) of a fused call: its rows are split into chunks of consecutive rows,
// each with its own r x ctx sums at acc + chunk*r*ctx, so that the chunks can run on any threads and the
// last one to finish adds the unit's metric.
type winUnit struct {
	off, ctx, first, n, kh int
	chunks, acc            int
	left                   atomic.Int32 // chunks not yet finished
}

// fusedAttentionWindow is Attention (rows below metricRows adding metric mode with buffer buf) followed by
// WindowMetric w as one op: a window row adds its probabilities to the window's sums as its attention
// computes them, where WindowMetric would compute every score and softmax of the row again (about half the
// attention's work per row). It applies when every window row reads the window's own head cache (offset and
// context, as the engine's passes lay them out), no row is in two windows, and no window row collects a
// metric or shares a head cache with a row that does (a continuous-batching pass: decode rows first, then
// prompt chunks); it returns false, having done nothing, when it does not.
func (c *Backend) fusedAttentionWindow(o, qq []float32, p *KVPool, heads, tables, pos []int32, rows, metricRows, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode, buf int32, w engine.WindowSpec) bool {
	if mode == engine.MetricNone {
		metricRows = 0
	}
	seqs := i32(w.Seqs)
	d, r := p.headDim, qHeads/kvHeads
	// The call's lists live in the backend (reused: a prefill allocates nothing per layer), one call at a time.
	fw := &c.fused
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.inWin = grow(fw.inWin, rows*kvHeads)
	inWin := fw.inWin
	clear(inWin)
	if cap(fw.units) < w.NSeqs*kvHeads {
		fw.units = make([]winUnit, 0, w.NSeqs*kvHeads)
	}
	units := fw.units[:0]
	active := 0
	for j := 0; j < w.NSeqs*kvHeads; j++ {
		off, ctx, first, n := int(seqs[4*j]), int(seqs[4*j+1]), int(seqs[4*j+2]), int(seqs[4*j+3])
		if ctx <= 0 || n <= 0 {
			continue // no slot or no row: WindowMetric adds nothing
		}
		if first < metricRows || first+n > rows {
			return false
		}
		kh := j % kvHeads
		// A metric row adds to its slots as it goes, a window unit when its last chunk ends, on any threads:
		// they must not share slots.
		for row := 0; row < metricRows; row++ {
			if int(heads[2*(row*kvHeads+kh)]) == off {
				return false
			}
		}
		for row := first; row < first+n; row++ {
			h := row*kvHeads + kh
			if int(heads[2*h]) != off || int(heads[2*h+1]) != ctx || inWin[h] {
				return false
			}
			inWin[h] = true
		}
		units = append(units, winUnit{off: off, ctx: ctx, first: first, n: n, kh: kh})
		active++
	}
	maxCtx, work := 0, 0
	for j := 0; j < rows*kvHeads; j++ {
		ctx := max(int(heads[2*j+1]), 0)
		maxCtx = max(maxCtx, ctx)
		work += ctx * d * 2 * r
	}
	// Chunks: about 4 jobs per thread in all, so that the dynamic pick below evens out the threads; more
	// chunks cost only their sums' reduction (r x ctx adds each).
	threads := c.pool.n
	if work < serialWork {
		threads = 1
	}
	jobs := fw.jobs[:0]
	// The metric rows, one job per KV head that walks them in order, as fastAttention does: rows sharing a
	// head cache add to its slots on one thread. First, as they are the longest jobs.
	for kh := 0; metricRows > 0 && kh < kvHeads; kh++ {
		jobs = append(jobs, winJob{-2, 0, 0, kh})
	}
	nacc := 0
	for u := range units {
		un := &units[u]
		k := 1
		if threads > 1 {
			k = min(un.n, (4*threads+active-1)/active)
		}
		un.chunks, un.acc = k, nacc
		un.left.Store(int32(k))
		nacc += k * r * un.ctx
		// Equal work per chunk: a causal row sees about ctx - (last position - its position) slots.
		last, total := pos[un.first+un.n-1], 0
		wt := func(row int) int { return max(1, un.ctx-int(last-pos[row])) }
		for row := un.first; row < un.first+un.n; row++ {
			total += wt(row)
		}
		lo, cum := un.first, 0
		for ch := 0; ch < k; ch++ {
			hi := lo
			for hi < un.first+un.n && (ch == k-1 || cum*k < total*(ch+1)) {
				cum += wt(hi)
				hi++
			}
			hi = max(hi, min(lo+1, un.first+un.n)) // at least a row while rows are left
			jobs = append(jobs, winJob{u, ch, lo, hi})
			lo = hi
		}
	}
	// The other rows, a KV head at a time: consecutive jobs read the same K and V.
	for kh := 0; kh < kvHeads; kh++ {
		for row := metricRows; row < rows; row++ {
			if !inWin[row*kvHeads+kh] {
				jobs = append(jobs, winJob{-1, 0, row, kh})
			}
		}
	}
	fw.jobs = jobs
	fw.acc = grow(fw.acc, nacc)
	acc := fw.acc // each chunk clears its own sums
	var next atomic.Int64
	c.pool.run(min(threads, len(jobs)), func(part int) {
		s := c.pool.scratchFor(part, 4*maxCtx+d)
		prob, metric, accv := s[:maxCtx], s[maxCtx:2*maxCtx], s[3*maxCtx:3*maxCtx+d]
		slots := unsafe.Slice((*int)(unsafe.Pointer(&s[2*maxCtx])), maxCtx) // an int fits in a float64's bytes
		ps := unsafe.Slice((*int32)(unsafe.Pointer(&s[3*maxCtx+d])), 2*maxCtx)
		for {
			j := int(next.Add(1)) - 1
			if j >= len(jobs) {
				return
			}
			jb := jobs[j]
			switch jb.unit {
			case -1:
				p.attendRow(o, qq, heads, tables, pos, jb.lo, jb.hi, qHeads, kvHeads, scale, engine.MetricNone, 0, prob, metric, accv, slots, nil)
				continue
			case -2:
				for row := 0; row < metricRows; row++ {
					p.attendRow(o, qq, heads, tables, pos, row, jb.hi, qHeads, kvHeads, scale, mode, buf, prob, metric, accv, slots, nil)
				}
				continue
			}
			un := &units[jb.unit]
			size := r * un.ctx
			ws := &winSums{acc: acc[un.acc+jb.ch*size : un.acc+(jb.ch+1)*size], stride: un.ctx,
				lpos: ps[:un.ctx], pre: ps[maxCtx : maxCtx+un.ctx], buf: int32(w.Buffer), squared: w.Squared}
			p.listSlots("Attention", tables, un.off, slots[:un.ctx])
			for i, sl := range slots[:un.ctx] {
				ws.lpos[i] = p.Pos[sl]
				ws.pre[i] = ws.lpos[i]
				if i > 0 {
					ws.pre[i] = max(ws.pre[i], ws.pre[i-1])
				}
			}
			clear(ws.acc)
			for row := jb.lo; row < jb.hi; row++ {
				p.attendRow(o, qq, heads, tables, pos, row, un.kh, qHeads, kvHeads, scale, engine.MetricNone, 0, prob, metric, accv, slots, ws)
			}
			if un.left.Add(-1) == 0 {
				p.addWindowSums(un, acc, r, w.Pool7, tables, metric, slots)
			}
		}
	})
	return true
}

// addWindowSums adds a finished unit's metric: each head's sums over the chunks (in chunk order), max-pooled
// with Pool7, summed over the group's heads in order, as the reference adds them. group and slots are
// scratch of at least ctx.
func (p *KVPool) addWindowSums(un *winUnit, acc []float64, r int, pool7 bool, tables []int32, group []float64, slots []int) {
	ctx, size := un.ctx, r*un.ctx
	group, slots = group[:ctx], slots[:ctx]
	clear(group)
	for h := 0; h < r; h++ {
		sh := acc[un.acc+h*ctx : un.acc+(h+1)*ctx]
		for ch := 1; ch < un.chunks; ch++ {
			for i, x := range acc[un.acc+ch*size+h*ctx : un.acc+ch*size+(h+1)*ctx] {
				sh[i] += x
			}
		}
		if !pool7 {
			for i, x := range sh {
				group[i] += x
			}
			continue
		}
		addMaxPool7(group, sh)
	}
	p.listSlots("WindowMetric", tables, un.off, slots)
	for i, s := range slots {
		p.Metric[s] += float32(group[i])
	}
}
