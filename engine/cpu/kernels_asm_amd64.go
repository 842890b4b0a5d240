package cpu

// The asm* names kernels.go, attn_kernels.go and swiglu_kernels.go call, on amd64: the AVX2 kernels
// (kernels_amd64.s, kernels_attn_amd64.s, kernels_swiglu_amd64.s) and the AVX-512 eight-input ones
// (kernels_zmm_amd64.s). Each wrapper is inlined.

const asmName = "avx2+fma+f16c"

func asmDotF32(x, w *float32, n int) float32          { return dotF32AVX(x, w, n) }
func asmDotF16(x *float32, w *uint16, n int) float32  { return dotF16AVX(x, w, n) }
func asmDotBF16(x *float32, w *uint16, n int) float32 { return dotBF16AVX(x, w, n) }
func asmDotQ8(x *float32, w *int8, scales *float32, groups, group int) float32 {
	return dotQ8AVX(x, w, scales, groups, group)
}
func asmDotFP8(x *float32, w *uint8, scales *float32, groups, group int) float32 {
	return dotFP8AVX(x, w, scales, groups, group)
}

func asmRowsF32(x, w *float32, n, rows int, out *float32)          { rowsF32AVX(x, w, n, rows, out) }
func asmRowsF16(x *float32, w *uint16, n, rows int, out *float32)  { rowsF16AVX(x, w, n, rows, out) }
func asmRowsBF16(x *float32, w *uint16, n, rows int, out *float32) { rowsBF16AVX(x, w, n, rows, out) }
func asmRowsQ8(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32) {
	rowsQ8AVX(x, w, scales, groups, group, rows, out)
}

func asmDot4F32(x *float32, stride uintptr, w *float32, n int, out *[4]float32) {
	dot4F32AVX(x, stride, w, n, out)
}
func asmDot4F16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32) {
	dot4F16AVX(x, stride, w, n, out)
}
func asmDot4BF16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32) {
	dot4BF16AVX(x, stride, w, n, out)
}
func asmDot4Q8(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32) {
	dot4Q8AVX(x, stride, w, scales, groups, group, out)
}
func asmDot4FP8(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32) {
	dot4FP8AVX(x, stride, w, scales, groups, group, out)
}

func asmRows4F16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) {
	rows4F16AVX(x, w, stride, n, out)
}
func asmRows4BF16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) {
	rows4BF16AVX(x, w, stride, n, out)
}
func asmRows4Q8(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32) {
	rows4Q8AVX(x, w, stride, scales, sstride, groups, group, out)
}

func asmDot8F32(x *float32, stride uintptr, w *float32, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	dot8F32ZMM(x, stride, w, wstride, n, rows, acc, flags, out)
}
func asmDot8F16(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	dot8F16ZMM(x, stride, w, wstride, n, rows, acc, flags, out)
}
func asmDot8BF16(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	dot8BF16ZMM(x, stride, w, wstride, n, rows, acc, flags, out)
}
func asmDot8FP8(x *float32, stride uintptr, w *uint8, wstride uintptr, scales *float32, groups, group int, acc *float32, flags int, out *[8]float32) {
	dot8FP8ZMM(x, stride, w, wstride, scales, groups, group, acc, flags, out)
}
func asmDot8Q8(x *float32, stride uintptr, w *int8, scales *float32, groups, group, rows int, out *float32) {
	dot8Q8AVX512(x, stride, w, scales, groups, group, rows, out)
}

func asmScoresF32(q, k *float32, stride uintptr, d8, n int, out *float32) {
	scoresF32AVX(q, k, stride, d8, n, out)
}
func asmScoresF16(q *float32, k *uint16, stride uintptr, d8, n int, out *float32) {
	scoresF16AVX(q, k, stride, d8, n, out)
}
func asmExpShift(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32) {
	expShiftAVX(x, n, m, c, lanes)
}
func asmSumRowsF32(w, v *float32, stride uintptr, d8, n int, acc *float32) {
	sumRowsF32AVX(w, v, stride, d8, n, acc)
}
func asmSumRowsF16(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32) {
	sumRowsF16AVX(w, v, stride, d8, n, acc)
}
func asmSwiGLU(o, gate, up *float32, n int, c *[16][8]float32) { swigluAVX(o, gate, up, n, c) }
