package cpu

import (
	"math"
	"unsafe"

	"kvc/engine"
)

// fastAttention is Attention without its copies: K and V are read in place from the pool (scores and the
// weighted V sum by the SIMD kernels) and the probabilities live in per-worker scratch, so a step
// allocates nothing and its work grows with the tokens attended, never with the pool.
func (c *Backend) fastAttention(o, qq []float32, p *KVPool, heads, tables, pos []int32, rows, metricRows, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode, buf int32) {
	d := p.headDim
	maxCtx, work := 0, 0
	for j := 0; j < rows*kvHeads; j++ {
		ctx := max(int(heads[2*j+1]), 0)
		maxCtx = max(maxCtx, ctx)
		work += ctx * d * 2 * (qHeads / kvHeads)
	}
	// With a metric, one job per KV head walks the rows in order, so that rows sharing slots add to them
	// on one thread; without, each (row, KV head) is a job.
	jobs := rows * kvHeads
	if mode != engine.MetricNone {
		jobs = kvHeads
	}
	c.pool.rows(jobs, work, func(part, lo, hi int) {
		s := c.pool.scratchFor(part, 3*maxCtx+d)
		prob, metric, acc := s[:maxCtx], s[maxCtx:2*maxCtx], s[3*maxCtx:]
		slots := unsafe.Slice((*int)(unsafe.Pointer(&s[2*maxCtx])), maxCtx) // an int fits in a float64's bytes
		for job := lo; job < hi; job++ {
			if mode == engine.MetricNone {
				p.attendRow(o, qq, heads, tables, pos, job/kvHeads, job%kvHeads, qHeads, kvHeads, scale, engine.MetricNone, 0, prob, metric, acc, slots, nil)
				continue
			}
			for row := 0; row < rows; row++ {
				m := mode
				if row >= metricRows {
					m = engine.MetricNone
				}
				p.attendRow(o, qq, heads, tables, pos, row, job, qHeads, kvHeads, scale, m, buf, prob, metric, acc, slots, nil)
			}
		}
	})
}

// attendRow computes the r query heads of (row, KV head kh) and, with a metric mode, adds to the metric of
// the slots at least buf positions below the row (engine.AttnHeads.MetricBuffer).
// A head's slots are whole runs of consecutive rows in its blocks, so the block kernels (attn_kernels.go)
// take a block of K or V rows per call: the scores, exp(score - max) with its sum, and the weighted sum of V
// are f32; the normalisation's reciprocal and the metric are f64, as in the reference.
// With win non-nil the row is also a window row (fast_attnwin.go): each query head adds its probabilities to
// its own sums in win.
func (p *KVPool) attendRow(o, qq []float32, heads, tables, pos []int32, row, kh, qHeads, kvHeads int, scale float32,
	mode engine.MetricMode, buf int32, score, metric []float64, acc64 []float64, slots []int, win *winSums) {
	j := row*kvHeads + kh
	off, ctx := int(heads[2*j]), max(int(heads[2*j+1]), 0)
	qpos := pos[row]
	d, r, bs := p.headDim, qHeads/kvHeads, p.blockSize
	sc := f32s(score, ctx)
	acc := f32s(acc64, d)
	metric, slots = metric[:ctx], slots[:ctx]
	p.listSlots("Attention", tables, off, slots) // once for the head's r query heads
	// A prompt row's trailing slots past its position (the rest of its chunk) are hidden: its scores, exp
	// and V sums stop before them, so a row's work and bits depend only on the slots it sees, as a decode
	// row's do.
	for ctx > 0 && p.Pos[slots[ctx-1]] > qpos {
		ctx--
	}
	metric, slots = metric[:ctx], slots[:ctx]
	sc = sc[:ctx]
	if mode != engine.MetricNone {
		clear(metric)
	}
	f16 := p.typ == engine.KVF16
	hidden := float32(math.Inf(-1))
	for h := kh * r; h < (kh+1)*r; h++ {
		qo := (row*qHeads + h) * d
		q := qq[qo : qo+d]
		p.blockScores(q, slots, sc)
		m, seen := hidden, false
		for i, s := range slots {
			if p.Pos[s] > qpos {
				sc[i] = hidden // exp gives 0
				continue
			}
			sc[i] *= scale
			m, seen = max(m, sc[i]), true
		}
		if !seen {
			clear(o[qo : qo+d]) // no visible slot: zeros
			continue
		}
		sum := float64(expShift(sc, m))
		clear(acc)
		for b := 0; b*bs < ctx; b++ {
			lo, hi := b*bs, min(ctx, (b+1)*bs)
			s0, s1 := slots[lo]*d, (slots[lo]+hi-lo)*d
			if f16 {
				sumRowsF16(sc[lo:hi], p.v16[s0:s1], acc)
			} else {
				sumRowsF32(sc[lo:hi], p.v32[s0:s1], acc)
			}
		}
		inv := float32(1 / sum)
		for e, x := range acc {
			o[qo+e] = x * inv
		}
		if win != nil {
			win.add((h-kh*r)*win.stride, sc, qpos, sum)
		}
		switch mode {
		case engine.MetricSquared:
			for i, e := range sc[:ctx] {
				if p.Pos[slots[i]] > qpos-buf {
					continue
				}
				pr := float64(e) / sum
				metric[i] += pr * pr
			}
		case engine.MetricPlain:
			for i, e := range sc[:ctx] {
				if p.Pos[slots[i]] > qpos-buf {
					continue // inside the metric buffer (and hidden slots, whose e is 0)
				}
				metric[i] += float64(e) / sum
			}
		}
	}
	if mode != engine.MetricNone {
		for i, s := range slots {
			p.Metric[s] += float32(metric[i])
		}
	}
}

// blockScores sets sc[i] = q . K row slots[i] for i < len(sc), one kernel call per block: a block's slots
// are consecutive rows (slots in logical order, as attendRow and windowJob list them).
func (p *KVPool) blockScores(q []float32, slots []int, sc []float32) {
	d, bs, n := p.headDim, p.blockSize, len(sc)
	for b := 0; b*bs < n; b++ {
		lo, hi := b*bs, min(n, (b+1)*bs)
		s0, s1 := slots[lo]*d, (slots[lo]+hi-lo)*d
		if p.typ == engine.KVF16 {
			scoresF16(q, p.k16[s0:s1], sc[lo:hi])
		} else {
			scoresF32(q, p.k32[s0:s1], sc[lo:hi])
		}
	}
}

// listSlots sets slots[i] to the pool slot of the head's logical slot i, for i < len(slots), a block at a
// time (slotOf checks every block id): a block's slots are consecutive rows, as blockScores needs.
func (p *KVPool) listSlots(op string, tables []int32, off int, slots []int) {
	bs := p.blockSize
	for b := 0; b*bs < len(slots); b++ {
		s0 := p.slotOf(op, tables, off, b*bs)
		for i := b * bs; i < min(len(slots), (b+1)*bs); i++ {
			slots[i] = s0 + i - b*bs
		}
	}
}
