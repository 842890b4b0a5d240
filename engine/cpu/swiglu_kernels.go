package cpu

import "math"

// The fast backend's SwiGLU: out = g / (1 + exp(-g)) * u over a block of elements, exp by the attention
// kernels' Cephes expf (exp1) instead of the reference's float64 math.Exp (a few ulp apart; the test
// derives the bound). An AVX2 kernel (kernels_swiglu_amd64.s) does whole chunks of 8 by exp1's steps and
// swigluFast1 the rest, so an element's bits do not depend on where it sits in a block: every fast path
// (one input, a batch, 8-bit activations, the unfused op) goes through swigluBlock and a batch row has the
// bits of the row alone. The reference backend keeps swiglu.

// swigluExpMax: exp(-g) for -g above it is taken as +Inf, so the output is ±0 as the reference's is from
// -g > 88.72 (f32's exp overflow); in between the reference's |output| is below 88 e^-88 |u| ≈ 5e-37 |u|.
// exp1 itself is only good to 88 (2^127 times a polynomial near 1).
const swigluExpMax = 88

// swigluC is the kernel's constant table: expC's 13 rows, then swigluExpMax, +Inf and the sign bit, each
// in 8 lanes.
var swigluC = func() (t [16][8]float32) {
	copy(t[:13], expC[:])
	for l := range 8 {
		t[13][l] = swigluExpMax
		t[14][l] = float32(math.Inf(1))
		t[15][l] = math.Float32frombits(1 << 31)
	}
	return t
}()

// swigluFast1 is the fast SwiGLU of one element, the assembly kernel's steps in Go.
func swigluFast1(g, u float32) float32 {
	x := -g
	t := exp1(x) // 0 below expMin and for NaN
	if x > swigluExpMax {
		t = float32(math.Inf(1))
	}
	return g / (1 + t) * u
}

// swigluBlock sets o[i] = swigluFast1(g[i], u[i]) for i < len(o); o may be g or u.
func swigluBlock(o, g, u []float32) {
	n := len(o)
	g, u = g[:n], u[:n]
	n8 := n &^ 7
	if useAsm && n8 > 0 {
		asmSwiGLU(&o[0], &g[0], &u[0], n8, &swigluC)
	} else {
		for i := range n8 {
			o[i] = swigluFast1(g[i], u[i])
		}
	}
	for i := n8; i < n; i++ {
		o[i] = swigluFast1(g[i], u[i])
	}
}
