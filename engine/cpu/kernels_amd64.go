package cpu

import "golang.org/x/sys/cpu"

//go:noescape
func dotF32AVX(x, w *float32, n int) float32

//go:noescape
func dotF16AVX(x *float32, w *uint16, n int) float32

//go:noescape
func dotBF16AVX(x *float32, w *uint16, n int) float32

//go:noescape
func dotQ8AVX(x *float32, w *int8, scales *float32, groups, group int) float32

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

//go:noescape
func axpyF32AVX(a float32, x, y *float32, n int)

//go:noescape
func axpyF16AVX(a float32, x *uint16, y *float32, n int)
