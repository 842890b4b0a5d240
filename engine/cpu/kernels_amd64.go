package cpu

import "golang.org/x/sys/cpu"

//go:noescape
func rowsF32AVX(x, w *float32, n, rows int, out *float32)

//go:noescape
func rowsF16AVX(x *float32, w *uint16, n, rows int, out *float32)

//go:noescape
func rowsBF16AVX(x *float32, w *uint16, n, rows int, out *float32)

//go:noescape
func rowsQ8AVX(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32)

// The one-row kernels are the row-range kernels over one row.

func dotF32AVX(x, w *float32, n int) (s float32) {
	rowsF32AVX(x, w, n, 1, &s)
	return s
}

func dotF16AVX(x *float32, w *uint16, n int) (s float32) {
	rowsF16AVX(x, w, n, 1, &s)
	return s
}

func dotBF16AVX(x *float32, w *uint16, n int) (s float32) {
	rowsBF16AVX(x, w, n, 1, &s)
	return s
}

func dotQ8AVX(x *float32, w *int8, scales *float32, groups, group int) (s float32) {
	rowsQ8AVX(x, w, scales, groups, group, 1, &s)
	return s
}

//go:noescape
func dotFP8AVX(x *float32, w *uint8, scales *float32, groups, group int) float32

func cpuidF16C() bool

// haveAsm: this build has the AVX2 kernels and the CPU runs them (x/sys/cpu checks the OS saves the YMM
// registers; F16C, which it does not report, comes from CPUID).
var haveAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasOSXSAVE && cpuidF16C()

//go:noescape
func dot4F32AVX(x *float32, stride uintptr, w *float32, n int, out *[4]float32)

//go:noescape
func dot4F16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)

//go:noescape
func dot4BF16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)

//go:noescape
func dot4Q8AVX(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32)

// haveAVX512: the CPU runs AVX-512F and VL (and the OS saves their registers): the eight-input kernels.
// q8_0's uses the sixteen extra vector registers at 8 lanes; f32, f16 and bf16's (kernels_zmm_amd64.s)
// hold two 8-lane accumulators per 16-lane register. Either way the sums are the AVX2 kernels' bits.
var haveAVX512 = haveAsm && cpu.X86.HasAVX512 && cpu.X86.HasAVX512VL

//go:noescape
func dot8Q8AVX512(x *float32, stride uintptr, w *int8, scales *float32, groups, group, rows int, out *float32)

//go:noescape
func dot4FP8AVX(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32)

//go:noescape
func rows4F16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)

//go:noescape
func rows4BF16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)

//go:noescape
func rows4Q8AVX(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32)

// The eight-input f32, f16 and bf16 kernels over n columns (a tile) of rows weight rows wstride bytes
// apart; flags accLoad, accSave (kernels.go).

//go:noescape
func dot8F32ZMM(x *float32, stride uintptr, w *float32, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)

//go:noescape
func dot8F16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)

//go:noescape
func dot8BF16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)

// The eight-input fp8 kernel over groups regions of one weight row (or a tile's part of them); flags
// accLoad, accSave, accCont, accOpen (kernels.go).

//go:noescape
func dot8FP8ZMM(x *float32, stride uintptr, w *uint8, wstride uintptr, scales *float32, groups, group int, acc *float32, flags int, out *[8]float32)
