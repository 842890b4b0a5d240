package cpu

import (
	"fmt"

	"kvc/engine"
	"kvc/model"
)

// The fused ops of engine.Backend. Each gives exactly the bits of the unfused sequence it stands for
// (ops_fused_test.go checks it), so the CPU oracle is the same whichever way the forward pass records.

// MatMulAdd: out[i][r] += sum_c x[i][c] * W[r][c], the sum formed as MatMul forms it.
func (c *Backend) MatMulAdd(out, x engine.Buf, w engine.Weight, n int) {
	c.matmul("MatMulAdd", out, x, w, n, true)
}

// RopeKVWrite rotates q and k in place and stores k and v: the host executes the three ops one after
// another, which is all the fusion means on a CPU.
func (c *Backend) RopeKVWrite(pool engine.KVPool, q, k, v, slots, pos engine.Buf, n, qHeads, kvHeads int, p engine.RopeParams) {
	hd := asPool("RopeKVWrite", pool).headDim
	c.RoPE(q, pos, n, qHeads, hd, p)
	c.RoPE(k, pos, n, kvHeads, hd, p)
	c.KVWrite(pool, k, v, slots, pos, n, kvHeads)
}

// MatMulSwiGLU: out[i][r] = silu(g) * u with g and u MatMul's sums over the gate and up rows r.
func (c *Backend) MatMulSwiGLU(out, x engine.Buf, gate, up engine.Weight, n int) {
	gw, uw := weight("MatMulSwiGLU", gate), weight("MatMulSwiGLU", up)
	rows, cols := gw.info.Rows, gw.info.Cols
	if uw.info.Rows != rows || uw.info.Cols != cols {
		panic(fmt.Sprintf("cpu: MatMulSwiGLU: gate %s is %dx%d, up %s is %dx%d", gw.info.Name, rows, cols, uw.info.Name, uw.info.Rows, uw.info.Cols))
	}
	need("MatMulSwiGLU x", x, int64(n*cols*4))
	need("MatMulSwiGLU out", out, int64(n*rows*4))
	if c.pool != nil {
		c.fastMatMulSwiGLU(out, x, gw, uw, n)
		return
	}
	xs, o := f32(x), f32(out)
	c.parallel(rows, 2*rows*cols, func(lo, hi int) {
		gb, ub := make([]float32, cols), make([]float32, cols)
		for r := lo; r < hi; r++ {
			gr, ur := gb, ub
			if gw.info.DType == model.F32 {
				gr = gw.f32Row(r)
			} else {
				gw.DecodeRow(r, gb)
			}
			if uw.info.DType == model.F32 {
				ur = uw.f32Row(r)
			} else {
				uw.DecodeRow(r, ub)
			}
			for i := 0; i < n; i++ {
				xi := xs[i*cols : (i+1)*cols]
				g, u := dot(xi, gr), dot(xi, ur)
				o[i*rows+r] = swiglu(g, u)
			}
		}
	})
}

// MatMulQKV is the three products one after another (the fusion saves dispatches, not host work); the
// fast backend runs them as one job of the pool.
func (c *Backend) MatMulQKV(q, k, v, x engine.Buf, wq, wk, wv engine.Weight, n int) {
	if c.pool != nil {
		c.fastMatMulQKV(q, k, v, x, wq, wk, wv, n)
		return
	}
	c.MatMul(q, x, wq, n)
	c.MatMul(k, x, wk, n)
	c.MatMul(v, x, wv, n)
}
