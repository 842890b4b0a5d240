package cpu

import (
	"fmt"
	"math"
	"sync"

	"kvc/engine"
	"kvc/model"
)

// The dense ops, exactly as engine.Backend defines them. Reductions use a fixed order per output element
// (never dependent on n or on the thread count); sums of squares and softmax denominators are taken in
// float64, which makes this the more accurate side of every shader comparison.

func (c *Backend) threads() int {
	if c.Threads > 0 {
		return c.Threads
	}
	return DefaultThreads()
}

// parallel runs f over [0, n) split into contiguous ranges, one goroutine each; small jobs run inline.
func (c *Backend) parallel(n, work int, f func(lo, hi int)) {
	t := c.threads()
	if t > n {
		t = n
	}
	if t <= 1 || work < 1<<15 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < t; i++ {
		lo, hi := n*i/t, n*(i+1)/t
		wg.Add(1)
		go func() { defer wg.Done(); f(lo, hi) }()
	}
	wg.Wait()
}

func need(op string, b engine.Buf, bytes int64) {
	if b.Size() < bytes {
		panic(fmt.Sprintf("cpu: %s: buffer of %d bytes, need %d", op, b.Size(), bytes))
	}
}

func weight(op string, w engine.Weight) *Weight {
	cw, ok := w.(*Weight)
	if !ok {
		panic(fmt.Sprintf("cpu: %s: weight %s was not uploaded to the cpu backend", op, w.Info().Name))
	}
	return cw
}

// Embed: out[i] = table row ids[i]; an id outside [0, Rows) gives a row of NaN.
func (c *Backend) Embed(out engine.Buf, table engine.Weight, ids engine.Buf, n int) {
	w := weight("Embed", table)
	d := w.info.Cols
	need("Embed out", out, int64(n*d*4))
	need("Embed ids", ids, int64(n*4))
	o, id := f32(out), i32(ids)
	for i := 0; i < n; i++ {
		row := o[i*d : (i+1)*d]
		if id[i] < 0 || int(id[i]) >= w.info.Rows {
			for j := range row {
				row[j] = float32(math.NaN())
			}
			continue
		}
		w.DecodeRow(int(id[i]), row)
	}
}

// RMSNorm: out[i] = x[i] * (1/sqrt(mean(x[i]^2) + eps)) * w.
func (c *Backend) RMSNorm(out, x engine.Buf, w engine.Weight, n int, eps float32) {
	cw := weight("RMSNorm", w)
	d := cw.info.Cols
	need("RMSNorm x", x, int64(n*d*4))
	need("RMSNorm out", out, int64(n*d*4))
	g := make([]float32, d)
	cw.DecodeRow(0, g)
	xs, o := f32(x), f32(out)
	for i := 0; i < n; i++ {
		row := xs[i*d : (i+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(d)+float64(eps)))
		for j, v := range row {
			o[i*d+j] = v * inv * g[j]
		}
	}
}

// MatMul: out[i][r] = sum_c x[i][c] * W[r][c]. Each row of W is decoded once (stored value times scale)
// and dotted with all n inputs; goroutines split the rows.
func (c *Backend) MatMul(out, x engine.Buf, w engine.Weight, n int) {
	c.matmul("MatMul", out, x, w, n, false)
}

// matmul is MatMul, or with add MatMulAdd (out += the same sums).
func (c *Backend) matmul(op string, out, x engine.Buf, w engine.Weight, n int, add bool) {
	if c.pool != nil {
		c.fastMatmul(op, out, x, w, n, add)
		return
	}
	cw := weight(op, w)
	rows, cols := cw.info.Rows, cw.info.Cols
	need(op+" x", x, int64(n*cols*4))
	need(op+" out", out, int64(n*rows*4))
	xs, o := f32(x), f32(out)
	c.parallel(rows, rows*cols, func(lo, hi int) {
		var buf []float32
		if cw.info.DType != model.F32 {
			buf = make([]float32, cols)
		}
		for r := lo; r < hi; r++ {
			wr := buf
			if buf == nil {
				wr = cw.f32Row(r)
			} else {
				cw.DecodeRow(r, buf)
			}
			for i := 0; i < n; i++ {
				d := dot(xs[i*cols:(i+1)*cols], wr)
				if add {
					o[i*rows+r] += d
				} else {
					o[i*rows+r] = d
				}
			}
		}
	})
}

// dot sums in a fixed order: four interleaved partial sums, then (s0+s1)+(s2+s3), then the tail.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	n := len(a) &^ 3
	for i := 0; i < n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	s := (s0 + s1) + (s2 + s3)
	for i := n; i < len(a); i++ {
		s += a[i] * b[i]
	}
	return s
}

// RoPE rotates pairs (2i, 2i+1) (interleaved) or (i, i+headDim/2) (rotate-half) of every head by
// pos*freq_i. The angle is formed in float64 and its cos and sin rounded to f32; the rotation is f32.
func (c *Backend) RoPE(x engine.Buf, pos engine.Buf, n, heads, headDim int, p engine.RopeParams) {
	need("RoPE x", x, int64(n*heads*headDim*4))
	need("RoPE pos", pos, int64(n*4))
	freqs := engine.RopeFreqs(headDim, p)
	xs, ps := f32(x), i32(pos)
	half := headDim / 2
	cs := make([]float32, 2*half)
	for t := 0; t < n; t++ {
		for i, f := range freqs {
			a := float64(ps[t]) * f
			cs[2*i], cs[2*i+1] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		for h := 0; h < heads; h++ {
			v := xs[(t*heads+h)*headDim : (t*heads+h+1)*headDim]
			for i := 0; i < half; i++ {
				j0, j1 := 2*i, 2*i+1
				if p.Layout == model.RopeRotateHalf {
					j0, j1 = i, i+half
				}
				co, si := cs[2*i], cs[2*i+1]
				x0, x1 := v[j0], v[j1]
				v[j0] = x0*co - x1*si
				v[j1] = x0*si + x1*co
			}
		}
	}
}

// SwiGLU: out = gate / (1 + exp(-gate)) * up.
func (c *Backend) SwiGLU(out, gate, up engine.Buf, count int) {
	for _, b := range []engine.Buf{out, gate, up} {
		need("SwiGLU", b, int64(count*4))
	}
	o, g, u := f32(out), f32(gate), f32(up)
	if c.pool != nil {
		swigluBlock(o[:count], g, u) // the fast backend's elementwise function, as its MatMulSwiGLU
		return
	}
	for i := 0; i < count; i++ {
		o[i] = swiglu(g[i], u[i])
	}
}

// swiglu is the reference backend's SwiGLU of one element, fused or not (the fast backend's is swigluFast1).
func swiglu(g, u float32) float32 {
	return g / (1 + float32(math.Exp(float64(-g)))) * u
}

// Add: out = a + b.
func (c *Backend) Add(out, a, b engine.Buf, count int) {
	for _, buf := range []engine.Buf{out, a, b} {
		need("Add", buf, int64(count*4))
	}
	o, as, bs := f32(out), f32(a), f32(b)
	for i := 0; i < count; i++ {
		o[i] = as[i] + bs[i]
	}
}

// Softmax of each row in place: exp(x - max) / sum.
func (c *Backend) Softmax(x engine.Buf, rows, cols int) {
	need("Softmax", x, int64(rows*cols*4))
	xs := f32(x)
	for r := 0; r < rows; r++ {
		row := xs[r*cols : (r+1)*cols]
		m := float32(math.Inf(-1))
		for _, v := range row {
			m = max(m, v)
		}
		var sum float64
		for j, v := range row {
			e := float32(math.Exp(float64(v - m)))
			row[j] = e
			sum += float64(e)
		}
		inv := float32(1 / sum)
		for j := range row {
			row[j] *= inv
		}
	}
}

// Argmax: index of each row's largest value, the lowest on ties.
func (c *Backend) Argmax(out, x engine.Buf, rows, cols int) {
	need("Argmax x", x, int64(rows*cols*4))
	need("Argmax out", out, int64(rows*4))
	xs, o := f32(x), i32(out)
	for r := 0; r < rows; r++ {
		row := xs[r*cols : (r+1)*cols]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		o[r] = int32(best)
	}
}

// TopK: the k largest of each row in descending order, the lower index first among equal values.
func (c *Backend) TopK(idx, val, x engine.Buf, rows, cols, k int) {
	if k < 1 || k > cols {
		panic(fmt.Sprintf("cpu: TopK: k %d must be in [1, cols %d]", k, cols))
	}
	need("TopK x", x, int64(rows*cols*4))
	need("TopK idx", idx, int64(rows*k*4))
	need("TopK val", val, int64(rows*k*4))
	xs, is, vs := f32(x), i32(idx), f32(val)
	top := make([]int32, 0, k)
	for r := 0; r < rows; r++ {
		row := xs[r*cols : (r+1)*cols]
		top = top[:0]
		for j, v := range row {
			if len(top) == k && !(v > row[top[k-1]]) {
				continue // not better than the last kept (a tie loses: its index is higher)
			}
			// insert after every kept element that is >= v (equal ones have lower indices)
			p := len(top)
			for p > 0 && v > row[top[p-1]] {
				p--
			}
			if len(top) < k {
				top = append(top, 0)
			}
			copy(top[p+1:], top[p:len(top)-1])
			top[p] = int32(j)
		}
		for i, j := range top {
			is[r*k+i] = j
			vs[r*k+i] = row[j]
		}
	}
}
