package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// swigluInputs: normal gates spread to ±16, with zeros, subnormals and |g| around exp's limits and past them
// (up to 1e37, where g u stays finite).
func swigluInputs(r *rand.Rand, n int) (g, u []float32) {
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 1e-20, 16.7, -16.7, 50, -50, 86.9, -86.9,
		87.5, -87.5, 88, -88, 88.5, -88.5, 89, -89, 100, -100, 1e30, -1e30, 1e37, -1e37}
	g, u = make([]float32, n), make([]float32, n)
	for i := range g {
		if r.IntN(4) == 0 {
			g[i] = special[r.IntN(len(special))]
		} else {
			g[i] = float32(r.NormFloat64() * 8)
		}
		u[i] = float32(r.NormFloat64())
	}
	return g, u
}

// The fast SwiGLU block against the reference swiglu at odd lengths, with both kernel sets. The bound:
// exp1 is within 1 ulp (<= 2^-23 relative) of exp and the reference's exp is float64 rounded to f32
// (2^-24), so the two t differ by 3*2^-24 relative; 1 + t, the division and the product are each rounded
// in both (2*2^-24 each): 9*2^-24 relative in all. Past swigluExpMax the fast output is ±0 where the
// reference's is below 88 e^-88 |u| (1e-36 |u| covers it), and 2^-126 covers subnormal results.
func TestSwiGLUBlockMatchesReference(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 1))
		worst := 0.0
		for _, n := range []int{1, 7, 8, 63, 4097} {
			g, u := swigluInputs(r, n)
			o := make([]float32, n)
			swigluBlock(o, g, u)
			for i := range o {
				want := float64(swiglu(g[i], u[i]))
				got := float64(o[i])
				bound := 9*math.Ldexp(math.Abs(want), -24) + 1e-36*math.Abs(float64(u[i])) + math.Ldexp(1, -126)
				if math.IsNaN(got) || math.IsInf(got, 0) || math.Abs(got-want) > bound {
					t.Fatalf("n %d [%d]: swiglu(%v, %v) = %v, reference %v", n, i, g[i], u[i], got, want)
				}
				if -g[i] <= swigluExpMax && math.Abs(want) >= math.Ldexp(1, -126) {
					worst = math.Max(worst, math.Abs(got-want)/math.Abs(want))
				}
			}
			// in place (SwiGLU(g, g, u)) gives the same bits
			in := append([]float32(nil), g...)
			swigluBlock(in, in, u)
			sameBits(t, fmt.Sprintf("n %d in place", n), in, o)
		}
		t.Logf("worst relative error %.3g (%.2f x 2^-24)", worst, math.Ldexp(worst, 24))
	})
}

// The assembly kernel has the pure-Go twin's bits, element by element, wherever the element sits.
func TestSwiGLUAsmMatchesGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly kernels on this machine")
	}
	defer func(on bool) { useAsm = on }(useAsm)
	r := rand.New(rand.NewPCG(13, 2))
	for _, n := range []int{8, 63, 4097} {
		g, u := swigluInputs(r, n)
		a, b := make([]float32, n), make([]float32, n)
		useAsm = true
		swigluBlock(a, g, u)
		useAsm = false
		swigluBlock(b, g, u)
		sameBits(t, fmt.Sprintf("n %d asm vs go", n), a, b)
		for i := range b {
			if one := swigluFast1(g[i], u[i]); math.Float32bits(one) != math.Float32bits(b[i]) {
				t.Fatalf("n %d [%d]: block %v, alone %v", n, i, b[i], one)
			}
		}
	}
}

// BenchmarkSwiGLU: one 125M decode step's SwiGLU at batch 8 per layer (3072 x 8 elements), the reference's
// float64 exp against the fast block.
func BenchmarkSwiGLU(b *testing.B) {
	g, u := swigluInputs(rand.New(rand.NewPCG(13, 3)), 3072*8)
	o := make([]float32, len(g))
	b.Run("reference", func(b *testing.B) {
		for range b.N {
			for i := range o {
				o[i] = swiglu(g[i], u[i])
			}
		}
	})
	b.Run("block", func(b *testing.B) {
		for range b.N {
			swigluBlock(o, g, u)
		}
	})
}
