package model

import "math"

// Element formats, in one place: every reader, the CPU backend and the test fixtures of the shaders use
// these, so that "the stored value" means the same number everywhere.

// F16ToF32 decodes an IEEE 754 half (subnormals, infinities and NaN included; a NaN keeps its payload).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		// zero or subnormal: man * 2^-24, exact in f32
		v := float32(man) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// F32ToF16 encodes with round-to-nearest-even; overflow gives infinity, NaN stays NaN (quiet).
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // below half the smallest subnormal
		}
		m := man | 0x800000 // 24 significant bits; value = m * 2^(e-15-23)
		shift := uint(14 - e)
		return sign | uint16(roundShiftEven(m, shift))
	}
	// a carry out of the mantissa bumps the exponent, and from the largest finite value gives infinity
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// roundShiftEven returns m >> shift rounded to nearest, ties to even (1 <= shift <= 31).
func roundShiftEven(m uint32, shift uint) uint32 {
	q := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// BF16ToF32 decodes bfloat16 (the top half of an f32).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 encodes with round-to-nearest-even; NaN stays NaN (quiet).
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// FP8E4M3ToF32 decodes float8 e4m3fn: bias 7, subnormals 2^-6 * m/8, max 448, 0x7f/0xff NaN, no infinity.
func FP8E4M3ToF32(b uint8) float32 {
	e := int(b>>3) & 0xf
	m := int(b & 7)
	var v float32
	switch {
	case e == 0xf && m == 7:
		v = float32(math.NaN())
	case e == 0:
		v = float32(math.Ldexp(float64(m)/8, -6))
	default:
		v = float32(math.Ldexp(1+float64(m)/8, e-7))
	}
	if b&0x80 != 0 {
		v = -v
	}
	return v
}

// F32ToFP8E4M3 encodes with round-to-nearest-even, saturating to +-448 (infinities too); NaN gives 0x7f.
func F32ToFP8E4M3(f float32) uint8 {
	if f != f {
		return 0x7f
	}
	var sign uint8
	a := float64(f)
	if math.Signbit(a) {
		sign, a = 0x80, -a
	}
	const minNormal = 1.0 / 64
	if a < minNormal {
		// subnormal steps of 2^-9; q == 8 is the smallest normal, whose code is also 8
		return sign | uint8(math.RoundToEven(a*512))
	}
	if a >= 448 {
		return sign | 0x7e
	}
	frac, exp := math.Frexp(a) // a = frac * 2^exp, frac in [0.5, 1)
	e := exp - 1               // a = (2*frac) * 2^e
	q := int(math.RoundToEven((2*frac - 1) * 8))
	if q == 8 {
		e, q = e+1, 0
	}
	be := e + 7
	if be > 15 || (be == 15 && q == 7) {
		return sign | 0x7e
	}
	return sign | uint8(be<<3|q)
}

// QuantizeQ8_0 quantizes rows of x (len a multiple of group) to int8 with one f32 scale per group:
// scale = absmax/127, q = round(x/scale) (half away from zero). An all-zero group gets scale 0.
func QuantizeQ8_0(x []float32, group int) (q []int8, scales []float32) {
	q = make([]int8, len(x))
	scales = make([]float32, len(x)/group)
	QuantizeQ8_0To(x, group, q, scales)
	return q, scales
}

// QuantizeQ8_0To is QuantizeQ8_0 into q[:len(x)] and scales[:len(x)/group], which it overwrites.
func QuantizeQ8_0To(x []float32, group int, q []int8, scales []float32) {
	q = q[:len(x)]
	for g := range scales[:len(x)/group] {
		xs, qs := x[g*group:(g+1)*group], q[g*group:(g+1)*group]
		var amax float32
		for _, v := range xs {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		scales[g] = d
		if d == 0 {
			clear(qs)
			continue
		}
		for i, v := range xs {
			r := math.Round(float64(v / d))
			qs[i] = int8(max(-127, min(127, r)))
		}
	}
}

// TensorFromBytes is an in-memory tensor (test fixtures, converted weights): data holds the stored element
// bytes, scales the f32 scales its dtype needs (nil for f32, f16, bf16). Neither is copied.
func TensorFromBytes(name string, dt DType, shape []int, data []byte, scales []float32) *Tensor {
	t := &Tensor{Name: name, SourceName: name, DType: dt, Shape: shape}
	t.read = func() ([]byte, error) { return data, nil }
	if scales != nil {
		t.scales = func() ([]float32, error) { return scales, nil }
	}
	return t
}
