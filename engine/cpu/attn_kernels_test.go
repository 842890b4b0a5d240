package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvc/model"
)

// eachAttnKernel runs f with the assembly block kernels (where this machine has them) and the pure-Go ones.
func eachAttnKernel(t *testing.T, f func(asm bool)) {
	saved := useAsm
	defer func() { useAsm = saved }()
	for _, asm := range []bool{true, false} {
		if asm && !haveAsm {
			t.Log("no assembly kernels on this machine")
			continue
		}
		useAsm = asm
		f(asm)
	}
}

// ulps is how many float32 steps apart two non-negative values are.
func ulps(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	return max(d, -d)
}

// TestAttentionBlockKernels: the scores, exp and V-sum kernels, assembly and pure Go, give the same bits
// as each other, and the float64 reference within f32 rounding (exp within 3 ulp of math.Exp where the
// result is a normal float, 0 below expMin and for -Inf), at odd head widths and row counts.
func TestAttentionBlockKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	luts()
	// exp over x - m: large negatives, the underflow edge, -Inf and a dense run up to 0.
	for _, n := range []int{1, 7, 63, 4097} {
		x := make([]float32, n)
		for i := range x {
			switch i % 5 {
			case 0:
				x[i] = -200 * rng.Float32()
			case 1:
				x[i] = -86 - 3*rng.Float32()
			case 2:
				x[i] = float32(math.Inf(-1))
			default:
				x[i] = -20 * rng.Float32()
			}
		}
		x[0] = 3 // exp(0) once: m = 3
		var got [2][]float32
		var sums [2]float32
		eachAttnKernel(t, func(asm bool) {
			y := append([]float32(nil), x...)
			k := map[bool]int{true: 0, false: 1}[asm]
			sums[k] = expShift(y, 3)
			got[k] = y
			var want float64
			for i, v := range x {
				e := math.Exp(float64(v - 3))
				want += float64(y[i])
				switch {
				case float32(v-3) >= -87:
					if u := ulps(y[i], float32(e)); u > 3 {
						t.Fatalf("asm=%v n=%d: exp(%v) = %v, math.Exp %v (%d ulp)", asm, n, v-3, y[i], float32(e), u)
					}
				case y[i] != 0 && math.Abs(float64(y[i])-e) > 0x1p-125:
					t.Fatalf("asm=%v n=%d: exp(%v) = %v, math.Exp %v", asm, n, v-3, y[i], e)
				}
			}
			if !close32(sums[k], want, 1e-6) {
				t.Fatalf("asm=%v n=%d: sum %v, float64 sum of the values %v", asm, n, sums[k], want)
			}
		})
		if got[0] != nil && got[1] != nil {
			for i := range got[0] {
				if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
					t.Fatalf("n=%d: exp(%v): assembly %v, Go %v", n, x[i]-3, got[0][i], got[1][i])
				}
			}
			if sums[0] != sums[1] {
				t.Fatalf("n=%d: sum: assembly %v, Go %v", n, sums[0], sums[1])
			}
		}
	}
	// scores and V sums over rows of odd widths, f32 and f16.
	for _, d := range []int{1, 7, 12, 63, 64, 200} {
		for _, n := range []int{1, 7, 16, 63} {
			for _, f16 := range []bool{false, true} {
				name := fmt.Sprintf("d%d/n%d/f16=%v", d, n, f16)
				q, w := make([]float32, d), make([]float32, n)
				for i := range q {
					q[i] = float32(rng.NormFloat64())
				}
				for i := range w {
					w[i] = rng.Float32()
				}
				rows := make([]float32, n*d)
				codes := make([]uint16, n*d)
				for i := range rows {
					codes[i] = model.F32ToF16(float32(rng.NormFloat64()))
					rows[i] = model.F16ToF32(codes[i])
				}
				acc0 := make([]float32, d)
				for i := range acc0 {
					acc0[i] = float32(rng.NormFloat64())
				}
				var sc, acc [2][]float32
				eachAttnKernel(t, func(asm bool) {
					k := map[bool]int{true: 0, false: 1}[asm]
					sc[k], acc[k] = make([]float32, n), append([]float32(nil), acc0...)
					if f16 {
						scoresF16(q, codes, sc[k])
						sumRowsF16(w, codes, acc[k])
					} else {
						scoresF32(q, rows, sc[k])
						sumRowsF32(w, rows, acc[k])
					}
					for i := range n {
						var want, mag float64
						for e := range d {
							want += float64(q[e]) * float64(rows[i*d+e])
							mag += math.Abs(float64(q[e]) * float64(rows[i*d+e]))
						}
						if math.Abs(float64(sc[k][i])-want) > 1e-6*mag+1e-30 {
							t.Fatalf("%s asm=%v: score[%d] = %v, float64 %v", name, asm, i, sc[k][i], want)
						}
					}
					for e := range d {
						want, mag := float64(acc0[e]), math.Abs(float64(acc0[e]))
						for i := range n {
							want += float64(w[i]) * float64(rows[i*d+e])
							mag += math.Abs(float64(w[i]) * float64(rows[i*d+e]))
						}
						if math.Abs(float64(acc[k][e])-want) > 1e-6*mag+1e-30 {
							t.Fatalf("%s asm=%v: acc[%d] = %v, float64 %v", name, asm, e, acc[k][e], want)
						}
					}
				})
				if sc[0] == nil || sc[1] == nil {
					continue
				}
				for i := range n {
					if math.Float32bits(sc[0][i]) != math.Float32bits(sc[1][i]) {
						t.Fatalf("%s: score[%d]: assembly %v, Go %v", name, i, sc[0][i], sc[1][i])
					}
				}
				for e := range d {
					if math.Float32bits(acc[0][e]) != math.Float32bits(acc[1][e]) {
						t.Fatalf("%s: acc[%d]: assembly %v, Go %v", name, e, acc[0][e], acc[1][e])
					}
				}
			}
		}
	}
}
