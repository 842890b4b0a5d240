package cpu

import (
	"math"
	"sort"
	"unsafe"

	"kvc/engine"
)

// fastWindowMetric is WindowMetric on the fast backend: K is read in place from the pool by the block
// kernels (attn_kernels.go), scores and exp(s - max) are f32, the probabilities and their sums f64 as in
// the reference, scratch comes from the worker pool and each (sequence, KV head) is one job.
// A row's scores stop at its last visible slot (a causal prompt row sees only the slots before it), so a
// prompt of n rows costs about half the n x ctx scores the reference computes.
func (c *Backend) fastWindowMetric(qq []float32, p *KVPool, seqs, tables, pos []int32, w engine.WindowSpec, qHeads, kvHeads int, scale float32) {
	d, r := p.headDim, qHeads/kvHeads
	jobs := w.NSeqs * kvHeads
	maxCtx, work := 0, 0
	for j := 0; j < jobs; j++ {
		ctx, n := max(int(seqs[4*j+1]), 0), max(int(seqs[4*j+3]), 0)
		maxCtx = max(maxCtx, ctx)
		work += n * ctx * (d + 8) * r
	}
	if maxCtx == 0 {
		return // no slot to add to
	}
	// Per part (in float64 units): scores (f32), the slots (ints), the group's sums, the slots' positions
	// and their suffix minima (int32s), their prefix maxima, the scaled query (f32), and r per-head sums
	// when Pool7 needs each head's own before the max.
	heads := 0
	if w.Pool7 {
		heads = r
	}
	c.pool.rows(jobs, work, func(part, lo, hi int) {
		s := c.pool.scratchFor(part, (5+heads)*maxCtx+d)
		for job := lo; job < hi; job++ {
			p.windowJob(qq, seqs, tables, pos, w, job, qHeads, kvHeads, scale, s, maxCtx, heads)
		}
	})
}

// windowJob adds the window metric of one (sequence, KV head): job = seq*kvHeads + kh.
func (p *KVPool) windowJob(qq []float32, seqs, tables, pos []int32, w engine.WindowSpec, job, qHeads, kvHeads int,
	scale float32, s []float64, maxCtx, heads int) {
	kh := job % kvHeads
	off, ctx, first, n := int(seqs[job*4]), max(int(seqs[job*4+1]), 0), int(seqs[job*4+2]), int(seqs[job*4+3])
	d, r := p.headDim, qHeads/kvHeads
	sc := f32s(s, ctx)
	slots := unsafe.Slice((*int)(unsafe.Pointer(&s[maxCtx])), ctx) // an int fits in a float64's bytes
	group := s[2*maxCtx : 2*maxCtx+ctx]
	clear(group)
	ps := unsafe.Slice((*int32)(unsafe.Pointer(&s[3*maxCtx])), 4*maxCtx)
	// lpos: the slots' positions; suf[i], pre[i]: the lowest of lpos[i:], the highest of lpos[:i+1].
	lpos, suf, pre := ps[:ctx], ps[maxCtx:maxCtx+ctx], ps[2*maxCtx:2*maxCtx+ctx]
	qs := f32s(s[5*maxCtx:], d)
	var sh [][]float64 // Pool7: each head's sums
	for h := 0; h < heads; h++ {
		sh = append(sh, s[(5+h)*maxCtx+d:(5+h)*maxCtx+d+ctx])
		clear(sh[h])
	}
	p.listSlots("WindowMetric", tables, off, slots)
	for i, sl := range slots {
		lpos[i] = p.Pos[sl]
	}
	for i := ctx - 1; i >= 0; i-- {
		suf[i] = lpos[i]
		if i+1 < ctx {
			suf[i] = min(suf[i], suf[i+1])
		}
	}
	for i := range pre {
		pre[i] = lpos[i]
		if i > 0 {
			pre[i] = max(pre[i], pre[i-1])
		}
	}
	hidden := float32(math.Inf(-1))
	buf := int32(w.Buffer)
	for row := first; row < first+n; row++ {
		qpos := pos[row]
		// The scores end at the row's last visible slot (the first i whose suffix is all hidden); slots
		// before all (the first i with a hidden slot up to it) are visible, so that loop needs no position
		// test (addRowProbs does the same for the metric buffer).
		vis := sort.Search(ctx, func(i int) bool { return suf[i] > qpos })
		if vis == 0 {
			continue // no visible slot: no metric (as the reference)
		}
		lim := qpos - buf // slots above it are inside the metric buffer (and the hidden ones too)
		all := sort.Search(vis, func(i int) bool { return pre[i] > qpos })
		for h := kh * r; h < (kh+1)*r; h++ {
			qo := (row*qHeads + h) * d
			for e, x := range qq[qo : qo+d] {
				qs[e] = x * scale
			}
			sv := sc[:vis]
			p.blockScores(qs, slots, sv)
			m := hidden
			for _, x := range sv[:all] {
				if x > m { // not max(): its NaN and signed-zero cases cost a branch per slot here
					m = x
				}
			}
			for i := all; i < vis; i++ {
				if lpos[i] > qpos {
					sv[i] = hidden // exp gives 0
				} else if sv[i] > m {
					m = sv[i]
				}
			}
			acc := group
			if heads > 0 {
				acc = sh[h-kh*r]
			}
			addRowProbs(acc, sv, lpos, pre, lim, 1/float64(expShift(sv, m)), w.Squared)
		}
	}
	for _, v := range sh {
		addMaxPool7(group, v)
	}
	for i, sl := range slots {
		p.Metric[sl] += float32(group[i])
	}
}
