package cpu

import (
	"fmt"
	"unsafe"

	"kvc/engine"
)

// The fast backend's products: weight rows split statically over the worker pool, each row read straight
// from its stored dtype (no decoded copy) and dotted with the inputs eight or four at a time (rowDots)
// while a block of rowBlock weight rows stays in cache.

// rowBlock is how many weight rows one pass over the batch's inputs covers: their bytes stay in L1/L2
// while each input row meets them.
const rowBlock = 16

// inputStep is how many inputs one rowDots call takes: as many as the widest row kernel.
func inputStep() int {
	if useAVX512 {
		return 8
	}
	return 4
}

// product is one weight's MatMul (or MatMulAdd) into out, a part of one dispatch over several weights.
type product struct {
	w   *Weight
	out []float32
	add bool
}

// products runs every product over the same inputs x [n][cols] in one pass of the pool, the rows of all
// the weights split evenly between the workers.
func (c *Backend) products(x []float32, n int, ps []product) {
	total, cols := 0, ps[0].w.info.Cols
	for _, p := range ps {
		total += p.w.info.Rows
	}
	qa := c.q8ActsFor(x, n, ps) // nil: float activations
	if qa != nil {
		defer qa.release()
	}
	c.pool.rows(total, total*cols*n, func(_, lo, hi int) {
		base := 0
		for _, p := range ps {
			rows := p.w.info.Rows
			if a, b := max(lo-base, 0), min(hi-base, rows); a < b && qa != nil {
				p.rowsQ8(qa, a, b)
			} else if a < b {
				p.rows(x, n, cols, a, b)
			}
			base += rows
		}
	})
}

func (p product) rows(x []float32, n, cols, lo, hi int) {
	rows := p.w.info.Rows
	if n == 1 { // decode: each row range streamed by one kernel call
		var d [rangeBlock]float32
		for r0 := lo; r0 < hi; r0 += rangeBlock {
			r1 := min(r0+rangeBlock, hi)
			p.w.dots1(x, r0, r1, d[:r1-r0])
			if out := p.out[r0:r1]; p.add {
				for j := range out {
					out[j] += d[j]
				}
			} else {
				copy(out, d[:r1-r0])
			}
		}
		return
	}
	var d [8]float32
	var d8 [rowBlock][8]float32
	var acc tileAcc
	step := inputStep()
	for r0 := lo; r0 < hi; r0 += rowBlock {
		r1 := min(r0+rowBlock, hi)
		for i := 0; i < n; i += step {
			m := min(step, n-i)
			xi := x[i*cols : (i+m)*cols]
			if m == 8 && p.w.rowRange8(xi, r0, r1, &d8, &acc) {
				for k := range 8 {
					out := p.out[(i+k)*rows+r0 : (i+k)*rows+r1]
					for j := range out {
						if p.add {
							out[j] += d8[j][k]
						} else {
							out[j] = d8[j][k]
						}
					}
				}
				continue
			}
			for r := r0; r < r1; r++ {
				p.w.rowDots(xi, m, r, d[:m])
				for k, v := range d[:m] {
					if p.add {
						p.out[(i+k)*rows+r] += v
					} else {
						p.out[(i+k)*rows+r] = v
					}
				}
			}
		}
	}
}

// rangeBlock is how many rows decode hands the row kernels at a time (rowRange): long enough that each of
// its four streams runs a long way, short enough for the results to stay on the stack.
const rangeBlock = 1024

// dots1 sets out[r-r0] = rowDot(x, r) for r0 <= r < r1: one input, by the row-range kernel where there is one.
func (w *Weight) dots1(x []float32, r0, r1 int, out []float32) {
	if w.rowRange(x, r0, r1, out) {
		return
	}
	for r := r0; r < r1; r++ {
		out[r-r0] = w.rowDot(x, r)
	}
}

func (c *Backend) fastMatmul(op string, out, x engine.Buf, w engine.Weight, n int, add bool) {
	cw := weight(op, w)
	need(op+" x", x, int64(n*cw.info.Cols*4))
	need(op+" out", out, int64(n*cw.info.Rows*4))
	c.products(f32(x), n, []product{{cw, f32(out), add}})
}

func (c *Backend) fastMatMulQKV(q, k, v, x engine.Buf, wq, wk, wv engine.Weight, n int) {
	ps := []product{{w: weight("MatMulQKV", wq), out: f32(q)}, {w: weight("MatMulQKV", wk), out: f32(k)},
		{w: weight("MatMulQKV", wv), out: f32(v)}}
	cols := ps[0].w.info.Cols
	need("MatMulQKV x", x, int64(n*cols*4))
	for i, b := range []engine.Buf{q, k, v} {
		if ps[i].w.info.Cols != cols {
			panic(fmt.Sprintf("cpu: MatMulQKV: %s has %d columns, %s %d", ps[i].w.info.Name, ps[i].w.info.Cols, ps[0].w.info.Name, cols))
		}
		need("MatMulQKV out", b, int64(n*ps[i].w.info.Rows*4))
	}
	c.products(f32(x), n, ps)
}

func (c *Backend) fastMatMulSwiGLU(out, x engine.Buf, gw, uw *Weight, n int) {
	rows, cols := gw.info.Rows, gw.info.Cols
	xs, o := f32(x), f32(out)
	if qa := c.q8ActsFor(xs, n, []product{{w: gw}, {w: uw}}); qa != nil {
		defer qa.release()
		c.pool.rows(rows, 2*rows*cols*n, func(_, lo, hi int) { swigluQ8(o, qa, gw, uw, lo, hi) })
		return
	}
	c.pool.rows(rows, 2*rows*cols*n, func(_, lo, hi int) {
		if n == 1 {
			var g, u [rangeBlock]float32
			for r0 := lo; r0 < hi; r0 += rangeBlock {
				r1 := min(r0+rangeBlock, hi)
				gw.dots1(xs, r0, r1, g[:r1-r0])
				uw.dots1(xs, r0, r1, u[:r1-r0])
				swigluBlock(o[r0:r1], g[:r1-r0], u[:r1-r0])
			}
			return
		}
		var g, u [8]float32
		var g8, u8 [rowBlock][8]float32
		var acc tileAcc
		step := inputStep()
		for r0 := lo; r0 < hi; r0 += rowBlock {
			r1 := min(r0+rowBlock, hi)
			for i := 0; i < n; i += step {
				m := min(step, n-i)
				xi := xs[i*cols : (i+m)*cols]
				if m == 8 && gw.rowRange8(xi, r0, r1, &g8, &acc) && uw.rowRange8(xi, r0, r1, &u8, &acc) {
					// the kernel over the rows' 8 lanes in place (element by element, so the order is free)
					gf := unsafe.Slice(&g8[0][0], (r1-r0)*8)
					swigluBlock(gf, gf, unsafe.Slice(&u8[0][0], (r1-r0)*8))
					for k := range 8 {
						for j := range r1 - r0 {
							o[(i+k)*rows+r0+j] = g8[j][k]
						}
					}
					continue
				}
				for r := r0; r < r1; r++ {
					gw.rowDots(xi, m, r, g[:m])
					uw.rowDots(xi, m, r, u[:m])
					swigluBlock(g[:m], g[:m], u[:m])
					for k := range m {
						o[(i+k)*rows+r] = g[k]
					}
				}
			}
		}
	})
}
