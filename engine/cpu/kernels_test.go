package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"kvc/model"
)

// withKernels runs f with each kernel set this machine has: the assembly with the eight-input AVX-512VL
// kernels (and the VNNI ones), the assembly without them (AVX2 on amd64, q8_0's 8-bit activations by the
// AVX2 kernels; NEON on arm64), and the pure-Go kernels.
func withKernels(t *testing.T, f func(t *testing.T)) {
	savedAsm, saved512, savedVNNI := useAsm, useAVX512, useVNNI
	defer func() { useAsm, useAVX512, useVNNI = savedAsm, saved512, savedVNNI }()
	for _, set := range []struct {
		name        string
		asm, avx512 bool
	}{{"avx512", true, true}, {"asm", true, false}, {"go", false, false}} {
		if set.asm && !haveAsm || set.avx512 && !haveAVX512 {
			t.Logf("no %s kernels on this machine", set.name)
			continue
		}
		useAsm, useAVX512, useVNNI = set.asm, set.avx512, set.avx512 && haveVNNI
		t.Run(set.name, f)
	}
}

// kernelGroup is the q8_0 group for a row of n columns: 32 where it divides n, else the smallest divisor
// above 1 (odd sizes exercise the pure-Go path inside the asm dispatch).
func kernelGroup(n int) int {
	if n%32 == 0 {
		return 32
	}
	for g := 2; g < n; g++ {
		if n%g == 0 {
			return g
		}
	}
	return n
}

// Every row kernel against the reference decode (DecodeRow) and a float64 sum, for each dtype and scale
// layout, at odd sizes and at sizes the vector loops take whole.
func TestRowDotAgainstReference(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, wc := range weightCases {
			for _, cols := range []int{1, 7, 8, 63, 64, 200, 4096, 4097} {
				rows := 3
				if wc.sk == model.ScaleBlock {
					rows = 130 // two block rows
				}
				group := 0
				if wc.dt == model.Q8_0 {
					group = wc.group
					if cols%group != 0 {
						group = kernelGroup(cols)
					}
				}
				tn := EncodeTensor("w", wc.dt, rows, cols, false, wc.sk, group, randVals(r, rows*cols))
				cw, err := (&Backend{}).UploadWeight(tn)
				if err != nil {
					t.Fatal(err)
				}
				w := cw.(*Weight)
				x := randVals(r, cols)
				dec := make([]float32, cols)
				for _, row := range []int{0, 1, rows - 1} {
					w.DecodeRow(row, dec)
					var want, mag float64
					for i := range x {
						p := float64(x[i]) * float64(dec[i])
						want += p
						mag += math.Abs(p)
					}
					got := float64(w.rowDot(x, row))
					if math.Abs(got-want) > 2e-6*mag+1e-30 || math.IsNaN(got) {
						t.Errorf("%v %v group %d cols %d row %d: %g, reference %g (|x.w| %g)", wc.dt, wc.sk, group, cols, row, got, want, mag)
					}
				}
			}
		}
	})
}

// The eight-input f32/f16/bf16 kernels (kernels_zmm_amd64.s) over column tiles of several widths, rows
// in pairs and alone, and rows that end in an odd chunk of 8: every sum has the bits of the one-row
// kernel (rowDot), whose own sums the test above checks against the reference.
func TestEightInputTiles(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this machine")
	}
	saved := useAsm
	defer func() { useAsm = saved }()
	useAsm = true // rowDot by the one-row kernel, even under KVC_CPU_NOASM
	r := rand.New(rand.NewPCG(7, 8))
	var acc tileAcc
	for _, dt := range []model.DType{model.F32, model.F16, model.BF16} {
		for _, cols := range []int{8, 16, 24, 776, 1544, 4104} {
			rows := rowBlock + 3
			cw, err := (&Backend{}).UploadWeight(EncodeTensor("w", dt, rows, cols, false, model.ScaleNone, 0, randVals(r, rows*cols)))
			if err != nil {
				t.Fatal(err)
			}
			w := cw.(*Weight)
			x := randVals(r, 8*cols)
			for _, tile := range []int{16, 48, tileCols} {
				for _, rr := range [][2]int{{0, 1}, {1, 3}, {2, 5}, {3, 3 + rowBlock}} {
					var out [rowBlock][8]float32
					w.tiles8(x, rr[0], rr[1], tile, &acc, &out[0][0])
					for row := rr[0]; row < rr[1]; row++ {
						for k := range 8 {
							want := w.rowDot(x[k*cols:(k+1)*cols], row)
							if got := out[row-rr[0]][k]; math.Float32bits(got) != math.Float32bits(want) {
								t.Fatalf("%v cols %d tile %d rows %v: row %d input %d = %v, one-row kernel %v", dt, cols, tile, rr, row, k, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// The eight-input fp8 kernel (dot8FP8ZMM) for every scale kind: through rowDots at row lengths that are
// not whole 16-lane steps (an odd last chunk of 8 per region, a block-scale tail region, rows shorter than
// a chunk) and batches of 8, 9, 16 and 17 (the kernel twice, with and without the four-input kernel and
// one-by-one inputs after it), and in column tiles of several widths (fp8Tiles8: one scale region split
// between tiles, block regions a whole number per tile; row ranges across a block-scale row boundary):
// every sum has the bits of the one-row kernel (rowDot) and is within asmTol of the pure-Go kernel.
func TestEightInputFP8(t *testing.T) {
	if !haveAVX512 {
		t.Skip("no AVX-512 on this machine")
	}
	defer func(a, b bool) { useAsm, useAVX512 = a, b }(useAsm, useAVX512)
	useAsm, useAVX512 = true, true // even under KVC_CPU_NOASM or KVC_CPU_NOAVX512
	r := rand.New(rand.NewPCG(9, 10))
	for _, sk := range []model.ScaleKind{model.ScaleNone, model.ScaleTensor, model.ScaleChannel, model.ScaleBlock} {
		for _, cols := range []int{1, 7, 8, 9, 15, 24, 40, 100, 136, 264, 300, 1000, 1544} {
			rows, check := 3, []int{0, 1, 2}
			if sk == model.ScaleBlock {
				rows, check = 130, []int{0, 127, 128, 129} // two block rows
			}
			cw, err := (&Backend{}).UploadWeight(EncodeTensor("w", model.F8E4M3, rows, cols, false, sk, 0, randVals(r, rows*cols)))
			if err != nil {
				t.Fatal(err)
			}
			w := cw.(*Weight)
			maxScale := float32(1)
			if len(w.scales) > 0 {
				maxScale = slices.Max(w.scales) // every scale is positive here
			}
			x := randVals(r, 17*cols)
			if cols%8 == 0 {
				var acc tileAcc
				for _, tile := range []int{16, 48, 128, tileCols} {
					for _, rr := range [][2]int{{0, 1}, {1, 3}, {rows - 2, rows}, {max(rows-rowBlock, 0), rows}} {
						var out [rowBlock][8]float32
						w.fp8Tiles8(x[:8*cols], rr[0], rr[1], tile, &acc, &out)
						for row := rr[0]; row < rr[1]; row++ {
							for k := range 8 {
								want := w.rowDot(x[k*cols:(k+1)*cols], row)
								if got := out[row-rr[0]][k]; math.Float32bits(got) != math.Float32bits(want) {
									t.Fatalf("%v cols %d tile %d rows %v: row %d input %d = %v, one-row kernel %v", sk, cols, tile, rr, row, k, got, want)
								}
							}
						}
					}
				}
			}
			for _, n := range []int{8, 9, 16, 17} {
				for _, row := range check {
					out := make([]float32, n)
					w.rowDots(x[:n*cols], n, row, out)
					for k, got := range out {
						xk := x[k*cols : (k+1)*cols]
						want := w.rowDot(xk, row)
						if math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%v cols %d n %d: row %d input %d = %v, one-row kernel %v", sk, cols, n, row, k, got, want)
						}
						var mag float64
						for c, v := range xk {
							mag += math.Abs(float64(v) * float64(fp8LUT[w.data[row*cols+c]]))
						}
						mag *= float64(maxScale)
						if g := w.rowDotGo(xk, row); math.Abs(float64(got-g)) > asmTol*mag+1e-30 {
							t.Fatalf("%v cols %d n %d: row %d input %d = %v, pure Go %v", sk, cols, n, row, k, got, g)
						}
					}
				}
			}
		}
	}
}
