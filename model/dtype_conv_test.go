package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// fp8 e4m3fn from its definition: sign * 2^(e-7) * (1+m/8), subnormals 2^-6 * m/8, S.1111.111 NaN.
func fp8Definition(code int) float64 {
	s := 1.0
	if code&0x80 != 0 {
		s = -1
	}
	e, m := (code>>3)&15, code&7
	if e == 15 && m == 7 {
		return math.NaN()
	}
	if e == 0 {
		return s * math.Pow(2, -6) * float64(m) / 8
	}
	return s * math.Pow(2, float64(e-7)) * (1 + float64(m)/8)
}

func TestFP8DecodeAllCodes(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := fp8Definition(c)
		got := FP8E4M3ToF32(uint8(c))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Errorf("code %#02x: got %v, want NaN", c, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (c&0x80 != 0) {
			t.Errorf("code %#02x: got %v, want %v", c, got, want)
		}
	}
	if FP8E4M3ToF32(0x7e) != 448 || FP8E4M3ToF32(0x01) != float32(math.Ldexp(1, -9)) {
		t.Errorf("max or smallest subnormal wrong")
	}
}

func TestFP8EncodeRoundTripAndRounding(t *testing.T) {
	for c := 0; c < 256; c++ {
		v := FP8E4M3ToF32(uint8(c))
		if v != v {
			if F32ToFP8E4M3(v) != 0x7f {
				t.Errorf("NaN encodes to %#x", F32ToFP8E4M3(v))
			}
			continue
		}
		if got := F32ToFP8E4M3(v); got != uint8(c) && !(v == 0 && got&0x7f == 0) {
			t.Errorf("round trip of code %#02x (%v) gave %#02x", c, v, got)
		}
	}
	// nearest value by brute force over all finite codes, ties to the even code
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		f := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(24)-14)))
		got := F32ToFP8E4M3(f)
		best, bestErr := -1, math.Inf(1)
		for c := 0; c < 256; c++ {
			v := fp8Definition(c)
			if math.IsNaN(v) || math.Signbit(v) != math.Signbit(float64(f)) {
				continue
			}
			d := math.Abs(v - float64(f))
			if d < bestErr || (d == bestErr && c&1 == 0) {
				best, bestErr = c, d
			}
		}
		if math.Abs(float64(f)) > 448 {
			best = int(F32ToFP8E4M3(448)) | int(got&0x80)
		}
		if int(got) != best {
			t.Fatalf("encode %v: got %#02x (%v), want %#02x (%v)", f, got, FP8E4M3ToF32(got), best, fp8Definition(best))
		}
	}
	if F32ToFP8E4M3(float32(math.Inf(-1))) != 0xfe || F32ToFP8E4M3(1e9) != 0x7e {
		t.Errorf("saturation wrong")
	}
}

func TestF16AllCodesRoundTrip(t *testing.T) {
	for c := 0; c < 1<<16; c++ {
		f := F16ToF32(uint16(c))
		e := (c >> 10) & 31
		m := c & 1023
		var want float64
		switch {
		case e == 31 && m != 0:
			if f == f {
				t.Fatalf("code %#04x: want NaN, got %v", c, f)
			}
			if F32ToF16(f) != uint16(c)|0x200 {
				t.Fatalf("NaN %#04x re-encodes to %#04x", c, F32ToF16(f))
			}
			continue
		case e == 31:
			want = math.Inf(1)
		case e == 0:
			want = math.Ldexp(float64(m), -24)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if c&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want {
			t.Fatalf("code %#04x: got %v want %v", c, f, want)
		}
		if F32ToF16(f) != uint16(c) {
			t.Fatalf("code %#04x re-encodes to %#04x", c, F32ToF16(f))
		}
	}
}

func TestF16EncodeRoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 50000; i++ {
		f := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(44)-28)))
		h := F32ToF16(f)
		if math.Abs(float64(f)) >= 65520 {
			if h&0x7fff != 0x7c00 {
				t.Fatalf("%v should overflow to infinity, got %#04x", f, h)
			}
			continue
		}
		got := float64(F16ToF32(h))
		// neighbours of the result must not be closer; on a tie the chosen code is even
		d := math.Abs(got - float64(f))
		for _, nb := range []uint16{h - 1, h + 1} {
			v := float64(F16ToF32(nb))
			if nb&0x7c00 == 0x7c00 && nb&0x3ff != 0 || (nb^h)&0x8000 != 0 {
				continue
			}
			dn := math.Abs(v - float64(f))
			if dn < d || (dn == d && h&1 == 1) {
				t.Fatalf("%v encodes to %#04x (%v), neighbour %#04x (%v) is nearer or the even tie", f, h, got, nb, v)
			}
		}
	}
	if F32ToF16(70000) != 0x7c00 || F32ToF16(65519) != 0x7bff || F32ToF16(65520) != 0x7c00 {
		t.Errorf("overflow rounding wrong: %#x %#x", F32ToF16(65519), F32ToF16(65520))
	}
	if F32ToF16(float32(math.Ldexp(1, -25))) != 0 || F32ToF16(float32(math.Ldexp(1.5, -25))) != 1 {
		t.Errorf("subnormal rounding wrong")
	}
}

func TestBF16(t *testing.T) {
	for c := 0; c < 1<<16; c++ {
		f := BF16ToF32(uint16(c))
		if f != f {
			continue
		}
		if F32ToBF16(f) != uint16(c) {
			t.Fatalf("bf16 %#04x re-encodes to %#04x", c, F32ToBF16(f))
		}
	}
	// ties: 1 + 2^-8 is halfway between 1 and 1+2^-7 -> even (1); 1+3*2^-8 -> 1+2^-6
	if F32ToBF16(1+1.0/256) != 0x3f80 || F32ToBF16(1+3.0/256) != 0x3f82 || F32ToBF16(1+1.0/256+1.0/65536) != 0x3f81 {
		t.Errorf("bf16 rounding wrong: %#x %#x", F32ToBF16(1+1.0/256), F32ToBF16(1+3.0/256))
	}
	if nan := F32ToBF16(float32(math.NaN())); BF16ToF32(nan) == BF16ToF32(nan) {
		t.Errorf("NaN lost")
	}
}

func TestQuantizeQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, 96)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for i := 64; i < 96; i++ {
		x[i] = 0
	}
	q, s := QuantizeQ8_0(x, 32)
	if len(q) != 96 || len(s) != 3 || s[2] != 0 {
		t.Fatalf("shape or zero group wrong: %d %d %v", len(q), len(s), s)
	}
	for i, v := range x {
		d := s[i/32]
		if e := math.Abs(float64(v - float32(q[i])*d)); e > float64(d)/2*1.0001 {
			t.Fatalf("element %d: %v vs %d*%v, error %v", i, v, q[i], d, e)
		}
	}
	for g := 0; g < 2; g++ {
		m := 0
		for _, v := range q[g*32 : g*32+32] {
			m = max(m, int(v), -int(v))
		}
		if m != 127 {
			t.Errorf("group %d: absmax code %d, want 127", g, m)
		}
	}
}
