package model

import (
	"math"
	"testing"
)

func TestPrivateConversions(t *testing.T) {
	// Every e4m3 pattern survives decode -> encode; NaN patterns map to NaN.
	for v := 0; v < 256; v++ {
		f := fp8E4M3ToF32(byte(v))
		if v&0x7f == 0x7f {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("fp8 %#x = %v, want NaN", v, f)
			}
			continue
		}
		if got := f32ToFP8E4M3(f); got != byte(v) && !(f == 0 && got&0x7f == 0) {
			t.Fatalf("fp8 %#x -> %v -> %#x", v, f, got)
		}
	}
	if fp8E4M3ToF32(0x7e) != 448 || fp8E4M3ToF32(0x01) != float32(math.Ldexp(1, -9)) || f32ToFP8E4M3(1000) != 0x7e {
		t.Fatal("fp8 extremes")
	}
	// Halfway between 1 (0x38) and 1.125 (0x39) rounds to the even pattern 0x38.
	if f32ToFP8E4M3(1.0625) != 0x38 || f32ToFP8E4M3(1.07) != 0x39 {
		t.Fatal("fp8 rounding")
	}
	for _, f := range []float32{0, 1, -2.5, 65504, 6.1035156e-05, 5.96e-08, 0.1} {
		if g := halfToF32(f32ToHalf(f)); math.Abs(float64(g-f)) > math.Abs(float64(f))*1e-3+6e-8 {
			t.Fatalf("f16 %v -> %v", f, g)
		}
		if g := bf16ToF32(f32ToBF16(f)); math.Abs(float64(g-f)) > math.Abs(float64(f))*8e-3 {
			t.Fatalf("bf16 %v -> %v", f, g)
		}
	}
	if f32ToHalf(1e6) != 0x7c00 || halfToF32(0x3c00) != 1 || halfToF32(0xc000) != -2 {
		t.Fatal("f16 specials")
	}
}
