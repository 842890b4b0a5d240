package cpu

import (
	"math"
	"unsafe"
)

// The fast attention's block kernels: the scores of a block of consecutive K rows against one query,
// exp(s - max) over a row of scores with their sum, and the weighted sum of a block of V rows. Each has an
// assembly kernel (AVX2: kernels_attn_amd64.s; NEON: kernels_arm64.s) and a pure-Go one with the same
// bits: the assembly multiplies and adds without fusing (the Go side rounds each product with float32(),
// which keeps the compiler from fusing too), and both walk the same 8 lanes in the same order. Elements
// past a row's last whole chunk of 8 are added by the Go wrappers, after the lanes, in order, whichever
// kernel ran.

// expC is the exp kernels' constant table, each value in 8 lanes so the assembly reads it as a vector
// operand: Cephes' expf (x = n ln2 + r with ln2 split in two, a degree-5 polynomial for e^r, then 2^n).
var expC = func() (t [13][8]float32) {
	for i, v := range [...]float32{expMin, expLog2e, 0.5, expC1, expC2,
		1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1, 1,
		math.Float32frombits(127)} {
		for l := range t[i] {
			t[i][l] = v
		}
	}
	return t
}()

const (
	// expMin: below it exp gives 0 (exp(-87) is 1.6e-38, next to f32's smallest normal; a probability
	// weight that small is nothing next to the max score's weight of 1). Also takes -Inf (hidden slots).
	expMin   = -87
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375 // ln 2 = C1 - C2; C1 has 9 significant bits, so n*C1 is exact
	expC2    = -2.12194440e-4
)

// exp1 is the kernels' exp of one element (x <= 88; the attention passes x <= 0).
func exp1(x float32) float32 {
	if !(x >= expMin) {
		return 0
	}
	z := float32(math.Floor(float64(float32(x*expLog2e) + 0.5)))
	x -= float32(z * expC1)
	x -= float32(z * expC2)
	xx := float32(x * x)
	p := float32(1.9875691500e-4*x) + 1.3981999507e-3
	p = float32(p*x) + 8.3334519073e-3
	p = float32(p*x) + 4.1665795894e-2
	p = float32(p*x) + 1.6666665459e-1
	p = float32(p*x) + 5.0000001201e-1
	p = float32(p*xx) + x + 1
	return float32(p * math.Float32frombits(uint32(int32(z)+127)<<23))
}

// hsum8 is the kernels' lane reduction: (0+1 + 2+3) + (4+5 + 6+7).
func hsum8(l *[8]float32) float32 {
	return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

// expShift sets x[i] = exp(x[i] - m) and returns their sum (8 lanes over the whole chunks, reduced by
// hsum8, then the rest in order).
func expShift(x []float32, m float32) float32 {
	n8 := len(x) &^ 7
	var lanes [8]float32
	if useAsm && n8 > 0 {
		asmExpShift(&x[0], n8, m, &expC, &lanes)
	} else {
		expShiftGo(x[:n8], m, &lanes)
	}
	s := hsum8(&lanes)
	for i := n8; i < len(x); i++ {
		x[i] = exp1(x[i] - m)
		s += x[i]
	}
	return s
}

func expShiftGo(x []float32, m float32, lanes *[8]float32) {
	for i := range x {
		x[i] = exp1(x[i] - m)
		lanes[i&7] += x[i]
	}
}

// scoresF32 sets out[i] = q . k[i*len(q):(i+1)*len(q)] for i < len(out).
func scoresF32(q, k, out []float32) {
	d := len(q)
	d8 := d &^ 7
	k = k[:len(out)*d]
	if useAsm && d8 > 0 && len(out) > 0 {
		asmScoresF32(&q[0], &k[0], uintptr(4*d), d8, len(out), &out[0])
	} else {
		for i := range out {
			out[i] = dotLanesF32(q[:d8], k[i*d:i*d+d8])
		}
	}
	if d8 < d {
		for i := range out {
			s := out[i]
			for e := d8; e < d; e++ {
				s += float32(q[e] * k[i*d+e])
			}
			out[i] = s
		}
	}
}

// scoresF16 is scoresF32 for f16 K rows.
func scoresF16(q []float32, k []uint16, out []float32) {
	luts()
	d := len(q)
	d8 := d &^ 7
	k = k[:len(out)*d]
	if useAsm && d8 > 0 && len(out) > 0 {
		asmScoresF16(&q[0], &k[0], uintptr(2*d), d8, len(out), &out[0])
	} else {
		for i := range out {
			out[i] = dotLanesF16(q[:d8], k[i*d:i*d+d8])
		}
	}
	if d8 < d {
		for i := range out {
			s := out[i]
			for e := d8; e < d; e++ {
				s += float32(q[e] * f16LUT[k[i*d+e]])
			}
			out[i] = s
		}
	}
}

func dotLanesF32(q, k []float32) float32 {
	var l [8]float32
	for c := 0; c < len(q); c += 8 {
		for j := range l {
			l[j] += float32(q[c+j] * k[c+j])
		}
	}
	return hsum8(&l)
}

func dotLanesF16(q []float32, k []uint16) float32 {
	var l [8]float32
	for c := 0; c < len(q); c += 8 {
		for j := range l {
			l[j] += float32(q[c+j] * f16LUT[k[c+j]])
		}
	}
	return hsum8(&l)
}

// sumRowsF32 adds w[i] * v[i*len(acc):(i+1)*len(acc)] to acc for i < len(w), row after row.
func sumRowsF32(w, v, acc []float32) {
	d := len(acc)
	d8 := d &^ 7
	v = v[:len(w)*d]
	lo := 0
	if useAsm && d8 > 0 && len(w) > 0 {
		asmSumRowsF32(&w[0], &v[0], uintptr(4*d), d8, len(w), &acc[0])
		lo = d8
	}
	for i, a := range w {
		row := v[i*d : (i+1)*d]
		for e := lo; e < d; e++ {
			acc[e] += float32(a * row[e])
		}
	}
}

// sumRowsF16 is sumRowsF32 for f16 V rows.
func sumRowsF16(w []float32, v []uint16, acc []float32) {
	luts()
	d := len(acc)
	d8 := d &^ 7
	v = v[:len(w)*d]
	lo := 0
	if useAsm && d8 > 0 && len(w) > 0 {
		asmSumRowsF16(&w[0], &v[0], uintptr(2*d), d8, len(w), &acc[0])
		lo = d8
	}
	for i, a := range w {
		row := v[i*d : (i+1)*d]
		for e := lo; e < d; e++ {
			acc[e] += float32(a * f16LUT[row[e]])
		}
	}
}

// f32s views a float64 scratch slice as n float32s (n <= 2*len(s)).
func f32s(s []float64, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s))), n)
}
