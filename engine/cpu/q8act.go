package cpu

import (
	"os"
	"sync"

	"kvc/model"
)

// q8_0 products with 8-bit activations, as llama.cpp computes them: each input is quantized once per product
// (shared by every row and worker) to int8 with one scale per weight group (model.QuantizeQ8_0To: scale =
// absmax/127, round half away from zero), and each group's products are exact integer sums.
//
// The float combination is fixed, so the pure-Go kernel (q8DotGo), the VNNI, AVX2 and NEON assembly give
// the same bits: element i of group k adds into integer lane (i/4)%8 (four products per lane, as
// vpdpbusd sums them; the AVX2 kernels get the same exact sums by vpmaddubsw and vpmaddwd, the NEON ones
// by smull/smlal and saddlp); each lane's integer becomes a float times c = ws*xs (weight scale times
// activation scale, one product per group, then a multiply and an add, no FMA) into float accumulator
// (k%2)*8 + lane; the 16 accumulators are reduced as (l + l+8), then (l + l+4), then (l + l+2), then 0 + 1.
// Every output depends only on its input row and the weight row, so a batch row has the bits of the row
// alone.
//
// Numerics: the result differs from the float reference by the activations' rounding, at most half an
// activation step per element: |err| <= sum_k (xs_k/2) * sum_{i in k} |w_i| (q8ActBound), plus float
// rounding. KVC_CPU_Q8_ACT=f32 keeps float activations (the f32-activation kernels); =q8 forces 8-bit
// activations even where only the pure-Go kernel runs them.

// q8ActOn: q8_0 products quantize their activations (default where the VNNI, AVX2 or NEON kernels run).
var q8ActOn = q8ActSetting(os.Getenv("KVC_CPU_Q8_ACT"), q8Asm())

// q8Asm: the flags select 8-bit activation kernels in assembly (VNNI, AVX2 or, on arm64, NEON).
func q8Asm() bool { return useVNNI || useAsm && (haveQ8AVX2 || haveQ8NEON) }

func q8ActSetting(env string, fast bool) bool {
	switch env {
	case "f32":
		return false
	case "q8":
		return true
	}
	return fast
}

// q8ActKernels says how q8_0 products take their activations, for Kernels.
func q8ActKernels() string {
	switch {
	case !q8ActOn:
		return ""
	case useVNNI:
		return "; q8_0 x 8-bit activations: avx512-vnni"
	case useAsm && haveQ8AVX2:
		return "; q8_0 x 8-bit activations: avx2"
	case useAsm && haveQ8NEON:
		return "; q8_0 x 8-bit activations: neon"
	}
	return "; q8_0 x 8-bit activations: pure Go"
}

// useVNNI selects the AVX-512 VNNI kernels (off with KVC_CPU_NOASM or KVC_CPU_NOAVX512); without them
// useAsm selects the AVX2 ones (on amd64: haveQ8AVX2).
var useVNNI = useAVX512 && haveVNNI

// q8ActGroup is the only group the assembly takes (GGUF's q8_0 block); other groups use q8DotGo.
const q8ActGroup = 32

// q8Acts is a batch of n inputs of cols elements quantized for weights with group g.
type q8Acts struct {
	n, cols, g int
	q          []int8    // n*cols codes
	s          []float32 // n*(cols/g) scales
	corr       []int32   // n*cols/4: -128 times each four codes' sum (the VNNI kernels' offset, g == 32)
}

var q8ActsPool = sync.Pool{New: func() any { return new(q8Acts) }}

// q8ActsFor quantizes x [n][cols] for the products ps, or returns nil where they keep float activations:
// 8-bit activations off, or a weight that is not q8_0 with the first one's group.
func (c *Backend) q8ActsFor(x []float32, n int, ps []product) *q8Acts {
	if !q8ActOn {
		return nil
	}
	g := ps[0].w.info.Group
	for _, p := range ps {
		if p.w.info.DType != model.Q8_0 || p.w.info.Group != g {
			return nil
		}
	}
	cols := ps[0].w.info.Cols
	a := q8ActsPool.Get().(*q8Acts)
	a.n, a.cols, a.g = n, cols, g
	a.q = grow(a.q, n*cols)
	a.s = grow(a.s, n*(cols/g))
	if g == q8ActGroup {
		a.corr = grow(a.corr, n*cols/4)
	}
	c.pool.rows(n, 4*n*cols, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			a.quantize(x[i*cols:(i+1)*cols], i)
		}
	})
	return a
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// quantize sets input i's codes, scales and (g == 32) offsets from x.
func (a *q8Acts) quantize(x []float32, i int) {
	ng := a.cols / a.g
	q := a.q[i*a.cols : (i+1)*a.cols]
	if a.g == q8ActGroup && ng > 0 { // the same codes, scales and offsets, by AVX-512 or AVX2
		switch {
		case useVNNI:
			q8QuantizeAVX512(&x[0], ng, &q[0], &a.s[i*ng], &a.corr[i*a.cols/4])
			return
		case useAsm && haveQ8AVX2:
			q8QuantizeAVX2(&x[0], ng, &q[0], &a.s[i*ng], &a.corr[i*a.cols/4])
			return
		case useAsm && haveQ8NEON: // no offsets: only the VNNI kernels read them
			q8QuantizeNEON(&x[0], ng, &q[0], &a.s[i*ng])
			return
		}
	}
	model.QuantizeQ8_0To(x, a.g, q, a.s[i*ng:(i+1)*ng])
	if a.g != q8ActGroup {
		return
	}
	corr := a.corr[i*a.cols/4 : (i+1)*a.cols/4]
	for j := range corr {
		corr[j] = -128 * (int32(q[4*j]) + int32(q[4*j+1]) + int32(q[4*j+2]) + int32(q[4*j+3]))
	}
}

func (a *q8Acts) release() { q8ActsPool.Put(a) }

// input returns input i's codes and scales.
func (a *q8Acts) input(i int) ([]int8, []float32) {
	ng := a.cols / a.g
	return a.q[i*a.cols : (i+1)*a.cols], a.s[i*ng : (i+1)*ng]
}

// q8DotGo is the canonical sum (see above) of row's codes and scales ws with input codes xq, scales xs.
func q8DotGo(xq []int8, xs []float32, row []byte, ws []float32, g int) float32 {
	var acc [16]float32
	for k, wsk := range ws {
		c := wsk * xs[k]
		lanes := (*[8]float32)(acc[(k%2)*8:])
		xk, wk := xq[k*g:(k+1)*g], row[k*g:(k+1)*g]
		for l0 := 0; l0 < g; l0 += 32 {
			var p [8]int32
			for i := l0; i < min(l0+32, g); i++ {
				p[(i/4)%8] += int32(xk[i]) * int32(int8(wk[i]))
			}
			for l, v := range p {
				lanes[l] += float32(float32(v) * c) // the conversion forbids fusing into an FMA
			}
		}
	}
	var h [8]float32
	for l := range h {
		h[l] = acc[l] + acc[l+8]
	}
	for l := range 4 {
		h[l] += h[l+4]
	}
	h[0], h[1] = h[0]+h[2], h[1]+h[3]
	return h[0] + h[1]
}

// q8Dots sets out[r-r0] to row r's product with input i of a, for r0 <= r < r1: by the VNNI (or else the
// AVX2, or on arm64 the NEON) kernels four rows a quarter of the range apart per call (four sequential
// streams, as decode's rowRange), the rest one row per call; else by q8DotGo. All give the same bits.
func (w *Weight) q8Dots(a *q8Acts, i, r0, r1 int, out []float32) {
	cols, g := w.info.Cols, w.info.Group
	ng := cols / g
	xq, xs := a.input(i)
	out = out[:r1-r0]
	if !q8Asm() || g != q8ActGroup {
		for r := r0; r < r1; r++ {
			out[r-r0] = q8DotGo(xq, xs, w.data[r*cols:(r+1)*cols], w.scales[r*ng:(r+1)*ng], g)
		}
		return
	}
	if !useVNNI { // AVX2, or NEON on arm64 (q8Asm says useAsm)
		q := (r1 - r0) / 4
		var o [4]float32
		for j := range q {
			r := r0 + j
			q8Rows4Asm(&xq[0], &xs[0], &w.data[r*cols], uintptr(q*cols), &w.scales[r*ng], uintptr(q*ng*4), ng, &o)
			out[j], out[q+j], out[2*q+j], out[3*q+j] = o[0], o[1], o[2], o[3]
		}
		for r := r0 + 4*q; r < r1; r++ {
			out[r-r0] = q8RowAsm(&xq[0], &xs[0], &w.data[r*cols], &w.scales[r*ng], ng)
		}
		return
	}
	corr := &a.corr[i*cols/4]
	q := (r1 - r0) / 4
	var o [4]float32
	for j := range q {
		r := r0 + j
		q8Rows4VNNI(&xq[0], corr, &xs[0], &w.data[r*cols], uintptr(q*cols), &w.scales[r*ng], uintptr(q*ng*4), ng, &o)
		out[j], out[q+j], out[2*q+j], out[3*q+j] = o[0], o[1], o[2], o[3]
	}
	for r := r0 + 4*q; r < r1; r++ {
		out[r-r0] = q8RowVNNI(&xq[0], corr, &xs[0], &w.data[r*cols], &w.scales[r*ng], ng)
	}
}

// q8Rows4Asm, q8RowAsm and q8Inputs4Asm are the 8-bit activation kernels that are not VNNI's: NEON on
// arm64, AVX2 on amd64 (direct calls, so that the pointers stay on the stack).
func q8Rows4Asm(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32) {
	if haveQ8NEON {
		q8Rows4NEON(x, xs, w, stride, ws, sstride, groups, out)
	} else {
		q8Rows4AVX2(x, xs, w, stride, ws, sstride, groups, out)
	}
}

func q8RowAsm(x *int8, xs *float32, w *byte, ws *float32, groups int) float32 {
	if haveQ8NEON {
		return q8RowNEON(x, xs, w, ws, groups)
	}
	return q8RowAVX2(x, xs, w, ws, groups)
}

func q8Inputs4Asm(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32) {
	if haveQ8NEON {
		q8Inputs4NEON(x, xstride, xs, sstride, w, ws, groups, rows, out)
	} else {
		q8Inputs4AVX2(x, xstride, xs, sstride, w, ws, groups, rows, out)
	}
}

// q8Block sets d[k][r-r0] to row r's product with input i+k of a, for k < m and r0 <= r < r1 <= r0+rowBlock:
// four inputs and the whole block per kernel call where the VNNI, AVX2 or NEON kernels run (each weight
// group read once for the four; the row-alone bits), the rest by q8Dots.
func (w *Weight) q8Block(a *q8Acts, i, m, r0, r1 int, d *[4][rowBlock]float32) {
	cols, g := w.info.Cols, w.info.Group
	if m == 4 && q8Asm() && g == q8ActGroup {
		ng := cols / g
		xq, xs := a.input(i)
		var o [rowBlock][4]float32
		if useVNNI {
			q8Inputs4VNNI(&xq[0], uintptr(cols), &a.corr[i*cols/4], uintptr(cols), &xs[0], uintptr(ng*4), &w.data[r0*cols], &w.scales[r0*ng], ng, r1-r0, &o[0][0])
		} else {
			q8Inputs4Asm(&xq[0], uintptr(cols), &xs[0], uintptr(ng*4), &w.data[r0*cols], &w.scales[r0*ng], ng, r1-r0, &o[0][0])
		}
		for r := range r1 - r0 {
			d[0][r], d[1][r], d[2][r], d[3][r] = o[r][0], o[r][1], o[r][2], o[r][3]
		}
		return
	}
	for k := range m {
		w.q8Dots(a, i+k, r0, r1, d[k][:r1-r0])
	}
}

// rowsQ8 is rows (fast_dense.go) with 8-bit activations: decode streams long row ranges; batches take
// blocks of rowBlock rows, which stay in cache while the inputs meet them four at a time.
func (p product) rowsQ8(a *q8Acts, lo, hi int) {
	rows := p.w.info.Rows
	put := func(out, d []float32) {
		if p.add {
			for j := range out {
				out[j] += d[j]
			}
		} else {
			copy(out, d)
		}
	}
	if a.n == 1 {
		var d [rangeBlock]float32
		for r0 := lo; r0 < hi; r0 += rangeBlock {
			r1 := min(r0+rangeBlock, hi)
			p.w.q8Dots(a, 0, r0, r1, d[:r1-r0])
			put(p.out[r0:r1], d[:r1-r0])
		}
		return
	}
	var d [4][rowBlock]float32
	for r0 := lo; r0 < hi; r0 += rowBlock {
		r1 := min(r0+rowBlock, hi)
		for i := 0; i < a.n; i += 4 {
			m := min(4, a.n-i)
			p.w.q8Block(a, i, m, r0, r1, &d)
			for k := range m {
				put(p.out[(i+k)*rows+r0:(i+k)*rows+r1], d[k][:r1-r0])
			}
		}
	}
}

// swigluQ8 is MatMulSwiGLU's rows lo..hi with 8-bit activations a.
func swigluQ8(o []float32, a *q8Acts, gw, uw *Weight, lo, hi int) {
	rows := gw.info.Rows
	if a.n == 1 {
		var g, u [rangeBlock]float32
		for r0 := lo; r0 < hi; r0 += rangeBlock {
			r1 := min(r0+rangeBlock, hi)
			gw.q8Dots(a, 0, r0, r1, g[:r1-r0])
			uw.q8Dots(a, 0, r0, r1, u[:r1-r0])
			swigluBlock(o[r0:r1], g[:r1-r0], u[:r1-r0])
		}
		return
	}
	var g, u [4][rowBlock]float32
	for r0 := lo; r0 < hi; r0 += rowBlock {
		r1 := min(r0+rowBlock, hi)
		for i := 0; i < a.n; i += 4 {
			m := min(4, a.n-i)
			gw.q8Block(a, i, m, r0, r1, &g)
			uw.q8Block(a, i, m, r0, r1, &u)
			for k := range m {
				swigluBlock(o[(i+k)*rows+r0:(i+k)*rows+r1], g[k][:r1-r0], u[k][:r1-r0])
			}
		}
	}
}
