package model

import "math"

// Private conversions used by the readers until model/dtype_conv.go lands; kept small on purpose.

func f32frombits(u uint32) float32 { return math.Float32frombits(u) }

// halfToF32 decodes an IEEE binary16.
func halfToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		f := float32(man) / 1024 / 16384 // man * 2^-24
		if sign != 0 {
			return -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
}

// f32ToHalf encodes binary16 with round-to-nearest-even (NaN stays NaN, overflow goes to Inf).
func f32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// fp8E4M3ToF32 decodes float8 e4m3fn (bias 7, no infinities, 0x7f/0xff NaN).
func fp8E4M3ToF32(v byte) float32 {
	sign := float32(1)
	if v&0x80 != 0 {
		sign = -1
	}
	exp := int(v>>3) & 0xf
	man := float32(v & 7)
	if exp == 0xf && v&7 == 7 {
		return float32(math.NaN())
	}
	if exp == 0 {
		return sign * man / 8 * float32(math.Ldexp(1, -6))
	}
	return sign * (1 + man/8) * float32(math.Ldexp(1, exp-7))
}

// fp8Positive holds the 127 finite non-negative e4m3fn values in increasing order (index = bit pattern).
var fp8Positive = func() [127]float32 {
	var t [127]float32
	for v := range t {
		t[v] = fp8E4M3ToF32(byte(v))
	}
	return t
}()

// f32ToFP8E4M3 rounds to the nearest e4m3fn value, ties to the even pattern, saturating at ±448.
func f32ToFP8E4M3(f float32) byte {
	if f != f {
		return 0x7f
	}
	var sign byte
	if f < 0 {
		sign, f = 0x80, -f
	}
	if f >= 448 {
		return sign | 0x7e
	}
	// First pattern whose value is >= f, then pick the nearer neighbour.
	lo, hi := 0, 126
	for lo < hi {
		m := (lo + hi) / 2
		if fp8Positive[m] < f {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 {
		below, above := f-fp8Positive[lo-1], fp8Positive[lo]-f
		if below < above || (below == above && (lo-1)&1 == 0) {
			lo--
		}
	}
	return sign | byte(lo)
}
