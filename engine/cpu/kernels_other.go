//go:build !amd64

package cpu

// Without assembly kernels every dot product takes the pure-Go path (dotGo).
const haveAsm = false

func dotF32AVX(x, w *float32, n int) float32                                   { panic("no asm") }
func dotF16AVX(x *float32, w *uint16, n int) float32                           { panic("no asm") }
func dotBF16AVX(x *float32, w *uint16, n int) float32                          { panic("no asm") }
func dotQ8AVX(x *float32, w *int8, scales *float32, groups, group int) float32 { panic("no asm") }

func rowsF32AVX(x, w *float32, n, rows int, out *float32)          { panic("no asm") }
func rowsF16AVX(x *float32, w *uint16, n, rows int, out *float32)  { panic("no asm") }
func rowsBF16AVX(x *float32, w *uint16, n, rows int, out *float32) { panic("no asm") }

func rowsQ8AVX(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32) {
	panic("no asm")
}
func dotFP8AVX(x *float32, w *uint8, scales *float32, groups, group int) float32 { panic("no asm") }

func dot4F32AVX(x *float32, stride uintptr, w *float32, n int, out *[4]float32) { panic("no asm") }
func dot4F16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)  { panic("no asm") }
func dot4BF16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32) { panic("no asm") }

func dot4Q8AVX(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32) {
	panic("no asm")
}

func axpyF32AVX(a float32, x, y *float32, n int)         { panic("no asm") }
func axpyF16AVX(a float32, x *uint16, y *float32, n int) { panic("no asm") }

const haveAVX512 = false

func dot8F32ZMM(x *float32, stride uintptr, w *float32, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}
func dot8F16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}
func dot8BF16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}

func dot8Q8AVX512(x *float32, stride uintptr, w *int8, scales *float32, groups, group, rows int, out *float32) {
	panic("no asm")
}

func dot4FP8AVX(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32) {
	panic("no asm")
}

func rows4F16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)  { panic("no asm") }
func rows4BF16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) { panic("no asm") }

func rows4Q8AVX(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32) {
	panic("no asm")
}
