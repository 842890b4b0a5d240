package cpu

import (
	"math"
	"unsafe"

	"kvc/engine"
)

// fastAttention is Attention's arithmetic, operation for operation (so the same bits), without its
// copies: K and V are read in place from the pool and the probabilities live in per-worker scratch, so a
// step allocates nothing and its work grows with the tokens attended, never with the pool.
func (c *Backend) fastAttention(o, qq []float32, p *KVPool, heads, tables, pos []int32, rows, metricRows, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) {
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
				p.attendRow(o, qq, heads, tables, pos, job/kvHeads, job%kvHeads, qHeads, kvHeads, scale, engine.MetricNone, prob, metric, acc, slots)
				continue
			}
			for row := 0; row < rows; row++ {
				m := mode
				if row >= metricRows {
					m = engine.MetricNone
				}
				p.attendRow(o, qq, heads, tables, pos, row, job, qHeads, kvHeads, scale, m, prob, metric, acc, slots)
			}
		}
	})
}

// attendRow computes the r query heads of (row, KV head kh) and, with a metric mode, adds to the metric.
func (p *KVPool) attendRow(o, qq []float32, heads, tables, pos []int32, row, kh, qHeads, kvHeads int, scale float32,
	mode engine.MetricMode, prob, metric, acc []float64, slots []int) {
	j := row*kvHeads + kh
	off, ctx := int(heads[2*j]), max(int(heads[2*j+1]), 0)
	qpos := pos[row]
	d, r, bs := p.headDim, qHeads/kvHeads, p.blockSize
	prob, metric, slots = prob[:ctx], metric[:ctx], slots[:ctx]
	// The head's slots in logical order, once for its r query heads (slotOf checks every block id).
	for b := 0; b*bs < ctx; b++ {
		s0 := p.slotOf("Attention", tables, off, b*bs)
		for i := b * bs; i < min(ctx, (b+1)*bs); i++ {
			slots[i] = s0 + i - b*bs
		}
	}
	if mode != engine.MetricNone {
		for i := range metric {
			metric[i] = 0
		}
	}
	f16 := p.typ == engine.KVF16
	if f16 {
		luts()
	}
	for h := kh * r; h < (kh+1)*r; h++ {
		qo := (row*qHeads + h) * d
		q := qq[qo : qo+d]
		for e := range acc {
			acc[e] = 0
		}
		// softmaxRow's arithmetic
		m := math.Inf(-1)
		for i, s := range slots {
			prob[i] = math.Inf(-1)
			if p.Pos[s] > qpos {
				continue
			}
			var dot float64
			if f16 {
				k := p.k16[s*d : (s+1)*d]
				for e, x := range q {
					dot += float64(x) * float64(f16LUT[k[e]])
				}
			} else {
				k := p.k32[s*d : (s+1)*d]
				for e, x := range q {
					dot += float64(x) * float64(k[e])
				}
			}
			prob[i] = dot * float64(scale)
			m = math.Max(m, prob[i])
		}
		if !math.IsInf(m, -1) {
			var sum float64
			for i := range prob {
				prob[i] = math.Exp(prob[i] - m)
				sum += prob[i]
			}
			for i := range prob {
				prob[i] /= sum
			}
			for i, pr := range prob {
				if pr == 0 {
					continue
				}
				s := slots[i]
				if f16 {
					v := p.v16[s*d : (s+1)*d]
					for e := range acc {
						acc[e] += pr * float64(f16LUT[v[e]])
					}
				} else {
					v := p.v32[s*d : (s+1)*d]
					for e := range acc {
						acc[e] += pr * float64(v[e])
					}
				}
				switch mode {
				case engine.MetricSquared:
					metric[i] += pr * pr
				case engine.MetricPlain:
					metric[i] += pr
				}
			}
		}
		for e, x := range acc {
			o[qo+e] = float32(x)
		}
	}
	if mode != engine.MetricNone {
		for i, s := range slots {
			p.Metric[s] += float32(metric[i])
		}
	}
}
