package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"kvc/model"
)

// asmTol bounds |assembly - pure Go| for one row product, relative to sum_c |x[c] W[r][c]|: both sum the
// same float32 products in different orders (the assembly with fused multiply-adds), each within a few
// hundred roundings of 2^-24 at these sizes; a dropped or doubled element is off by far more at the
// sizes checked (one product of up to 4104 is ~2.4e-4 of the magnitude).
const asmTol = 2e-6

// TestAsmRowKernelsMatchGo: every row-kernel entry (the decode row range rowRange/dots1, the one-row
// rowDot, the batch rowDots) with the assembly on (AVX2 on amd64, NEON on arm64) against the pure-Go
// kernel rowDotGo within asmTol, at lengths that are and are not whole vectors (1 to 4104), row counts
// 1..9 and input counts 1..9, for each dtype. The assembly paths also agree with
// each other bit for bit (an output's bits do not depend on the batch or the rows around it).
func TestAsmRowKernelsMatchGo(t *testing.T) {
	if !haveAsm {
		t.Skip("no assembly kernels on this machine")
	}
	defer func(a, b bool) { useAsm, useAVX512 = a, b }(useAsm, useAVX512)
	useAsm, useAVX512 = true, false
	r := rand.New(rand.NewPCG(21, 22))
	c := &Backend{} // one weight arena for all the weights
	for _, dk := range []struct {
		dt model.DType
		sk model.ScaleKind
	}{{model.F32, 0}, {model.F16, 0}, {model.BF16, 0}, {model.Q8_0, 0}, {model.F8E4M3, model.ScaleNone},
		{model.F8E4M3, model.ScaleTensor}, {model.F8E4M3, model.ScaleChannel}, {model.F8E4M3, model.ScaleBlock}} {
		dt := dk.dt
		for _, cols := range []int{1, 3, 7, 8, 9, 15, 16, 17, 24, 40, 63, 64, 100, 264, 4097, 4104} {
			for rows := 1; rows <= 9; rows++ {
				group := 0
				if dt == model.Q8_0 { // groups the kernels take (multiples of 8, in turn by rows) or Go's
					group = kernelGroup(cols)
					var gs []int
					for _, g := range []int{8, 16, 24, 32} {
						if cols%g == 0 {
							gs = append(gs, g)
						}
					}
					if len(gs) > 0 {
						group = gs[rows%len(gs)]
					}
				}
				name := fmt.Sprintf("%v %v cols %d rows %d group %d", dt, dk.sk, cols, rows, group)
				cw, err := c.UploadWeight(EncodeTensor("w", dt, rows, cols, false, dk.sk, group, randVals(r, rows*cols)))
				if err != nil {
					t.Fatal(err)
				}
				w := cw.(*Weight)
				x := randVals(r, 9*cols)
				dec := make([]float32, rows*cols)
				for row := range rows {
					w.DecodeRow(row, dec[row*cols:(row+1)*cols])
				}
				// check compares an assembly sum for input k and a row with the pure-Go kernel's.
				check := func(what string, got float32, k, row int) {
					var mag float64
					for c := range cols {
						mag += math.Abs(float64(x[k*cols+c]) * float64(dec[row*cols+c]))
					}
					if want := w.rowDotGo(x[k*cols:(k+1)*cols], row); math.Abs(float64(got-want)) > asmTol*mag+1e-30 {
						t.Fatalf("%s: %s: input %d row %d: assembly %v, Go %v (sum |x w| %g)", name, what, k, row, got, want, mag)
					}
				}
				one := make([]float32, rows)
				for row := range rows {
					one[row] = w.rowDot(x[:cols], row)
					check("rowDot", one[row], 0, row)
				}
				// the decode path over every sub-range: the row-range kernels where they take the shape
				for r0 := range rows {
					out := make([]float32, rows-r0)
					w.dots1(x[:cols], r0, rows, out)
					for j, v := range out {
						if math.Float32bits(v) != math.Float32bits(one[r0+j]) {
							t.Fatalf("%s: dots1 from row %d: row %d = %v, one-row kernel %v", name, r0, r0+j, v, one[r0+j])
						}
					}
				}
				// 1..9 inputs against each row: the four-input kernels, then the rest one by one
				for n := 1; n <= 9; n++ {
					for _, row := range []int{0, rows - 1} {
						out := make([]float32, n)
						w.rowDots(x[:n*cols], n, row, out)
						for k, v := range out {
							check("rowDots", v, k, row)
							want := w.rowDot(x[k*cols:(k+1)*cols], row)
							if math.Float32bits(v) != math.Float32bits(want) {
								t.Fatalf("%s: rowDots of %d inputs: input %d row %d = %v, one-row kernel %v", name, n, k, row, v, want)
							}
						}
					}
				}
			}
		}
	}
}

// KVC_CPU_NOASM=1 selects the pure-Go kernels wherever this build has assembly, and Kernels() says which
// run (./build.sh test runs this under qemu for arm64 with and without the variable).
func TestAsmSetting(t *testing.T) {
	noasm := os.Getenv("KVC_CPU_NOASM") != ""
	if useAsm != (haveAsm && !noasm) {
		t.Fatalf("useAsm %v with haveAsm %v, KVC_CPU_NOASM %q", useAsm, haveAsm, os.Getenv("KVC_CPU_NOASM"))
	}
	switch k := rowKernels(); {
	case useAsm && !strings.HasPrefix(k, asmName):
		t.Fatalf("assembly on: Kernels says %q, want %q first", k, asmName)
	case !useAsm && !strings.HasPrefix(k, "pure Go"):
		t.Fatalf("assembly off: Kernels says %q", k)
	}
	// arm64: q8_0 quantizes its activations by default exactly where the NEON kernels run
	if haveQ8NEON && os.Getenv("KVC_CPU_Q8_ACT") == "" && q8ActOn != useAsm {
		t.Fatalf("arm64: 8-bit activations %v with assembly %v (Kernels %q)", q8ActOn, useAsm, Kernels())
	}
	t.Logf("%s", Kernels())
}
