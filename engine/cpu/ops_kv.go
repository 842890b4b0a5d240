package cpu

import (
	"fmt"
	"math"
	"sync"

	"kvc/engine"
	"kvc/model"
)

// KVPool is the paged cache in host memory. K and V are [blocks*blockSize][headDim], stored as f32 or as
// IEEE half (rounded to nearest even on write), Metric and Pos are per slot.
type KVPool struct {
	blocks, blockSize, headDim int
	typ                        engine.KVType
	k32, v32                   []float32 // KVF32
	k16, v16                   []uint16  // KVF16
	Metric                     []float32 // [slot]
	Pos                        []int32   // [slot]
}

func (p *KVPool) Blocks() int         { return p.blocks }
func (p *KVPool) BlockSize() int      { return p.blockSize }
func (p *KVPool) HeadDim() int        { return p.headDim }
func (p *KVPool) Type() engine.KVType { return p.typ }
func (p *KVPool) Slots() int          { return p.blocks * p.blockSize }
func (p *KVPool) BlockBytes() int64 {
	return int64(p.blockSize) * (2*int64(p.headDim)*kvElemBytes(p.typ) + 8)
}
func kvElemBytes(t engine.KVType) int64 {
	if t == engine.KVF16 {
		return 2
	}
	return 4
}

// K returns slot's key as f32 (a copy).
func (p *KVPool) K(slot int) []float32 { return p.row(p.k32, p.k16, slot) }

// V returns slot's value as f32 (a copy).
func (p *KVPool) V(slot int) []float32 { return p.row(p.v32, p.v16, slot) }

func (p *KVPool) row(a32 []float32, a16 []uint16, slot int) []float32 {
	out := make([]float32, p.headDim)
	p.loadRow(out, a32, a16, slot)
	return out
}

func (p *KVPool) loadRow(dst []float32, a32 []float32, a16 []uint16, slot int) {
	o := slot * p.headDim
	if p.typ == engine.KVF16 {
		for i := range dst {
			dst[i] = model.F16ToF32(a16[o+i])
		}
		return
	}
	copy(dst, a32[o:o+p.headDim])
}

func (p *KVPool) storeRow(a32 []float32, a16 []uint16, slot int, src []float32) {
	o := slot * p.headDim
	if p.typ == engine.KVF16 {
		for i, x := range src {
			a16[o+i] = model.F32ToF16(x)
		}
		return
	}
	copy(a32[o:o+p.headDim], src)
}

// NewKVPool allocates the cache: metric 0, position -1 in every slot.
func (c *Backend) NewKVPool(blocks, blockSize, headDim int, typ engine.KVType) (engine.KVPool, error) {
	if blocks <= 0 || blockSize <= 0 || headDim <= 0 {
		return nil, fmt.Errorf("cpu: KV pool needs positive blocks, block size and head dim, got %d, %d, %d",
			blocks, blockSize, headDim)
	}
	if typ != engine.KVF32 && typ != engine.KVF16 {
		return nil, fmt.Errorf("cpu: unknown KV type %d", typ)
	}
	slots := blocks * blockSize
	p := &KVPool{blocks: blocks, blockSize: blockSize, headDim: headDim, typ: typ,
		Metric: make([]float32, slots), Pos: make([]int32, slots)}
	if typ == engine.KVF16 {
		p.k16, p.v16 = make([]uint16, slots*headDim), make([]uint16, slots*headDim)
	} else {
		p.k32, p.v32 = make([]float32, slots*headDim), make([]float32, slots*headDim)
	}
	for i := range p.Pos {
		p.Pos[i] = -1
	}
	return p, nil
}

// Ops have no error result (engine.Backend); a malformed slot, block id or head table is a caller bug
// and panics with a message naming the op and the value.
func (p *KVPool) checkSlot(op string, slot int32) int {
	if slot < 0 || int(slot) >= p.Slots() {
		panic(fmt.Sprintf("cpu: %s: slot %d outside the pool of %d slots", op, slot, p.Slots()))
	}
	return int(slot)
}

// slotOf is logical slot i of a head whose block table starts at tables[off].
func (p *KVPool) slotOf(op string, tables []int32, off, i int) int {
	ti := off + i/p.blockSize
	if off < 0 || ti >= len(tables) {
		panic(fmt.Sprintf("cpu: %s: block table entry %d outside Tables of %d entries", op, ti, len(tables)))
	}
	blk := tables[ti]
	if blk < 0 || int(blk) >= p.blocks {
		panic(fmt.Sprintf("cpu: %s: block id %d outside the pool of %d blocks", op, blk, p.blocks))
	}
	return int(blk)*p.blockSize + i%p.blockSize
}

func asPool(op string, pool engine.KVPool) *KVPool {
	p, ok := pool.(*KVPool)
	if !ok {
		panic(fmt.Sprintf("cpu: %s: pool %T is not a CPU KV pool", op, pool))
	}
	return p
}

// KVWrite stores K and V rows into their slots, sets position and clears the metric.
func (c *Backend) KVWrite(pool engine.KVPool, k, v, slots, pos engine.Buf, n, kvHeads int) {
	p := asPool("KVWrite", pool)
	kk, vv, sl, ps := f32(k), f32(v), i32(slots), i32(pos)
	d := p.headDim
	for i := 0; i < n; i++ {
		for h := 0; h < kvHeads; h++ {
			s := p.checkSlot("KVWrite", sl[i*kvHeads+h])
			o := (i*kvHeads + h) * d
			p.storeRow(p.k32, p.k16, s, kk[o:o+d])
			p.storeRow(p.v32, p.v16, s, vv[o:o+d])
			p.Pos[s] = ps[i]
			p.Metric[s] = 0
		}
	}
}

// headSlots lists the slots of one head's logical order 0..ctx-1.
func (p *KVPool) headSlots(op string, tables []int32, off, ctx int) []int {
	slots := make([]int, ctx)
	for i := range slots {
		slots[i] = p.slotOf(op, tables, off, i)
	}
	return slots
}

// headKV loads the K and V rows of a head's slots once, for all query heads of its group (as f32, in
// two contiguous arrays).
func (p *KVPool) headKV(slots []int) (ks, vs [][]float32) {
	d := p.headDim
	kAll, vAll := make([]float32, len(slots)*d), make([]float32, len(slots)*d)
	ks, vs = make([][]float32, len(slots)), make([][]float32, len(slots))
	for i, s := range slots {
		ks[i], vs[i] = kAll[i*d:(i+1)*d:(i+1)*d], vAll[i*d:(i+1)*d:(i+1)*d]
		p.loadRow(ks[i], p.k32, p.k16, s)
		p.loadRow(vs[i], p.v32, p.v16, s)
	}
	return ks, vs
}

// softmaxRow computes p[i] over the slots visible at position qpos (p = 0 for the others), in f64 with
// max subtraction. It returns false when no slot is visible.
func (p *KVPool) softmaxRow(prob []float64, q []float32, ks [][]float32, slots []int, qpos int32, scale float32) bool {
	m := math.Inf(-1)
	for i, s := range slots {
		prob[i] = math.Inf(-1)
		if p.Pos[s] > qpos {
			continue
		}
		var dot float64
		for e, x := range q {
			dot += float64(x) * float64(ks[i][e])
		}
		prob[i] = dot * float64(scale)
		m = math.Max(m, prob[i])
	}
	if math.IsInf(m, -1) {
		for i := range prob {
			prob[i] = 0
		}
		return false
	}
	var sum float64
	for i := range prob {
		prob[i] = math.Exp(prob[i] - m) // exp(-inf) = 0 for hidden slots
		sum += prob[i]
	}
	for i := range prob {
		prob[i] /= sum
	}
	return true
}

// Attention is paged attention over each row's per-head block tables (see engine.Backend). A row with no
// visible slot gets a zero output. Metric modes add per slot; they assume one row per head table (rows
// sharing a table add their sums together here).
func (c *Backend) Attention(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) {
	p := asPool("Attention", pool)
	if kvHeads <= 0 || qHeads%kvHeads != 0 {
		panic(fmt.Sprintf("cpu: Attention: %d query heads are not a multiple of %d KV heads", qHeads, kvHeads))
	}
	o, qq, heads, tables, pos := f32(out), f32(q), i32(a.Heads), i32(a.Tables), i32(a.Pos)
	if c.pool != nil {
		c.fastAttention(o, qq, p, heads, tables, pos, a.Rows, a.MetricRowCount(), qHeads, kvHeads, scale, mode, int32(a.MetricBuffer))
		return
	}
	r, d := qHeads/kvHeads, p.headDim
	// Rows that read the same head cache (a prefill chunk) share one job, so its K/V are loaded once.
	type headKey struct{ kh, off, ctx int32 }
	var jobs [][]int // [job] rows*kvHeads+kh indices
	index := map[headKey]int{}
	for row := 0; row < a.Rows; row++ {
		for kh := 0; kh < kvHeads; kh++ {
			j := row*kvHeads + kh
			key := headKey{int32(kh), heads[j*2], heads[j*2+1]}
			n, ok := index[key]
			if !ok {
				n = len(jobs)
				index[key] = n
				jobs = append(jobs, nil)
			}
			jobs[n] = append(jobs[n], j)
		}
	}
	c.kvParallel(len(jobs), func(job int) {
		first := jobs[job][0]
		kh := first % kvHeads
		off, ctx := int(heads[first*2]), int(heads[first*2+1])
		slots := p.headSlots("Attention", tables, off, max(ctx, 0))
		ks, vs := p.headKV(slots)
		prob := make([]float64, len(slots))
		metric := make([]float64, len(slots))
		acc := make([]float64, d)
		for _, j := range jobs[job] {
			row := j / kvHeads
			rowMode := mode
			if row >= a.MetricRowCount() {
				rowMode = engine.MetricNone
			}
			for h := kh * r; h < (kh+1)*r; h++ {
				qo := (row*qHeads + h) * d
				for e := range acc {
					acc[e] = 0
				}
				if p.softmaxRow(prob, qq[qo:qo+d], ks, slots, pos[row], scale) {
					for i, pr := range prob {
						if pr == 0 {
							continue
						}
						for e, x := range vs[i] {
							acc[e] += pr * float64(x)
						}
						if p.Pos[slots[i]] > pos[row]-int32(a.MetricBuffer) {
							continue // inside the metric buffer: no metric
						}
						switch rowMode {
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
		}
		if mode != engine.MetricNone {
			for i, s := range slots {
				p.Metric[s] += float32(metric[i])
			}
		}
	})
}

// AttentionWindow is Attention then WindowMetric (engine.AttentionWindower): the fast backend adds the
// window rows' probabilities as their attention computes them (fusedAttentionWindow) where that applies.
func (c *Backend) AttentionWindow(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, w engine.WindowSpec, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) {
	if c.pool != nil && kvHeads > 0 && qHeads%kvHeads == 0 && a.Tables == w.Tables && a.Pos == w.Pos {
		p := asPool("Attention", pool)
		if c.fusedAttentionWindow(f32(out), f32(q), p, i32(a.Heads), i32(a.Tables), i32(a.Pos), a.Rows, a.MetricRowCount(), qHeads, kvHeads,
			scale, mode, int32(a.MetricBuffer), w) {
			return
		}
	}
	c.Attention(out, q, pool, a, qHeads, kvHeads, scale, mode)
	c.WindowMetric(q, pool, w, qHeads, kvHeads, scale)
}

// WindowMetric adds the observation-window metric of each (sequence, KV head) of w (see engine.WindowSpec).
func (c *Backend) WindowMetric(q engine.Buf, pool engine.KVPool, w engine.WindowSpec, qHeads, kvHeads int, scale float32) {
	p := asPool("WindowMetric", pool)
	if kvHeads <= 0 || qHeads%kvHeads != 0 {
		panic(fmt.Sprintf("cpu: WindowMetric: %d query heads are not a multiple of %d KV heads", qHeads, kvHeads))
	}
	qq, seqs, tables, pos := f32(q), i32(w.Seqs), i32(w.Tables), i32(w.Pos)
	if c.pool != nil {
		c.fastWindowMetric(qq, p, seqs, tables, pos, w, qHeads, kvHeads, scale)
		return
	}
	r, d := qHeads/kvHeads, p.headDim
	c.kvParallel(w.NSeqs*kvHeads, func(job int) {
		kh := job % kvHeads
		off, ctx, first, n := int(seqs[job*4]), int(seqs[job*4+1]), int(seqs[job*4+2]), int(seqs[job*4+3])
		slots := p.headSlots("WindowMetric", tables, off, ctx)
		ks, _ := p.headKV(slots)
		prob := make([]float64, ctx)
		sh := make([]float64, ctx)
		group := make([]float64, ctx)
		for h := kh * r; h < (kh+1)*r; h++ {
			for i := range sh {
				sh[i] = 0
			}
			for row := first; row < first+n; row++ {
				qo := (row*qHeads + h) * d
				if !p.softmaxRow(prob, qq[qo:qo+d], ks, slots, pos[row], scale) {
					continue
				}
				for i, pr := range prob {
					if p.Pos[slots[i]] > pos[row]-int32(w.Buffer) {
						continue // inside the metric buffer
					}
					if w.Squared {
						pr *= pr
					}
					sh[i] += pr
				}
			}
			for i := range sh {
				v := sh[i]
				if w.Pool7 {
					for j := max(0, i-3); j <= min(ctx-1, i+3); j++ {
						v = math.Max(v, sh[j])
					}
				}
				group[i] += v
			}
		}
		for i, s := range slots {
			p.Metric[s] += float32(group[i])
		}
	})
}

// CopyMoves copies K, V, metric and position from moves[i][0] to moves[i][1].
func (c *Backend) CopyMoves(pool engine.KVPool, moves engine.Buf, n int) {
	p := asPool("CopyMoves", pool)
	mv := i32(moves)
	row := make([]float32, p.headDim)
	for i := 0; i < n; i++ {
		src, dst := p.checkSlot("CopyMoves", mv[2*i]), p.checkSlot("CopyMoves", mv[2*i+1])
		p.loadRow(row, p.k32, p.k16, src)
		p.storeRow(p.k32, p.k16, dst, row)
		p.loadRow(row, p.v32, p.v16, src)
		p.storeRow(p.v32, p.v16, dst, row)
		p.Metric[dst], p.Pos[dst] = p.Metric[src], p.Pos[src]
	}
}

// ReadSlots copies the metric and position of each listed block, block after block, and with vnorm the
// L1 norms of their V rows (f32 sums in element order, as the Vulkan shader's).
func (c *Backend) ReadSlots(pool engine.KVPool, blocks []int32, metric []float32, pos []int32, vnorm []float32) error {
	p, ok := pool.(*KVPool)
	if !ok {
		return fmt.Errorf("cpu: ReadSlots: pool %T is not a CPU KV pool", pool)
	}
	b := p.blockSize
	if len(metric) < len(blocks)*b || len(pos) < len(blocks)*b {
		return fmt.Errorf("cpu: ReadSlots: %d blocks need %d metric and position entries, got %d and %d",
			len(blocks), len(blocks)*b, len(metric), len(pos))
	}
	if vnorm != nil && len(vnorm) < len(blocks)*b {
		return fmt.Errorf("cpu: ReadSlots: %d blocks need %d value norm entries, got %d", len(blocks), len(blocks)*b, len(vnorm))
	}
	for i, blk := range blocks {
		if blk < 0 || int(blk) >= p.blocks {
			return fmt.Errorf("cpu: ReadSlots: block id %d outside the pool of %d blocks", blk, p.blocks)
		}
		copy(metric[i*b:(i+1)*b], p.Metric[int(blk)*b:int(blk+1)*b])
		copy(pos[i*b:(i+1)*b], p.Pos[int(blk)*b:int(blk+1)*b])
	}
	if vnorm == nil {
		c.read.Add(int64(8 * len(blocks) * b))
		return nil
	}
	c.kvParallel(len(blocks), func(i int) {
		row := make([]float32, p.headDim)
		for j := 0; j < b; j++ {
			p.loadRow(row, p.v32, p.v16, int(blocks[i])*b+j)
			var n float32
			for _, x := range row {
				n += float32(math.Abs(float64(x)))
			}
			vnorm[i*b+j] = n
		}
	})
	c.read.Add(int64(12 * len(blocks) * b))
	return nil
}

// kvParallel runs f(0..n-1) on up to c.Threads goroutines. Jobs must touch disjoint memory.
func (c *Backend) kvParallel(n int, f func(job int)) {
	t := min(c.Threads, n)
	if t <= 1 {
		for j := 0; j < n; j++ {
			f(j)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for j := 0; j < n; j++ {
		next <- j
	}
	close(next)
	for range t {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				f(j)
			}
		}()
	}
	wg.Wait()
}
