package cpu

// The asm* names on arm64: NEON (ASIMD) kernels in kernels_arm64.s. ASIMD and the half-to-single
// conversion (FCVTL) are part of every ARMv8-A core Go runs on, so there is nothing to detect.
const haveAsm = true

const asmName = "neon"

const haveAVX512 = false

//go:noescape
func rowsF32NEON(x, w *float32, n, rows int, out *float32)

//go:noescape
func rowsF16NEON(x *float32, w *uint16, n, rows int, out *float32)

//go:noescape
func rowsBF16NEON(x *float32, w *uint16, n, rows int, out *float32)

//go:noescape
func rowsQ8NEON(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32)

//go:noescape
func rowsFP8NEON(x *float32, w *uint8, scales *float32, groups, group, rows int, out *float32)

//go:noescape
func dot4FP8NEON(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32)

//go:noescape
func dot4F32NEON(x *float32, stride uintptr, w *float32, n int, out *[4]float32)

//go:noescape
func dot4F16NEON(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)

//go:noescape
func dot4BF16NEON(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)

//go:noescape
func dot4Q8NEON(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32)

//go:noescape
func rows4F16NEON(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)

//go:noescape
func rows4BF16NEON(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)

//go:noescape
func rows4Q8NEON(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32)

// The one-row kernels are the row-range kernels over one row.

func asmDotF32(x, w *float32, n int) (s float32) {
	rowsF32NEON(x, w, n, 1, &s)
	return s
}

func asmDotF16(x *float32, w *uint16, n int) (s float32) {
	rowsF16NEON(x, w, n, 1, &s)
	return s
}

func asmDotBF16(x *float32, w *uint16, n int) (s float32) {
	rowsBF16NEON(x, w, n, 1, &s)
	return s
}

func asmDotQ8(x *float32, w *int8, scales *float32, groups, group int) (s float32) {
	rowsQ8NEON(x, w, scales, groups, group, 1, &s)
	return s
}

func asmDotFP8(x *float32, w *uint8, scales *float32, groups, group int) (s float32) {
	rowsFP8NEON(x, w, scales, groups, group, 1, &s)
	return s
}

func asmDot4FP8(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32) {
	dot4FP8NEON(x, stride, w, scales, groups, group, out)
}

func asmRowsF32(x, w *float32, n, rows int, out *float32)          { rowsF32NEON(x, w, n, rows, out) }
func asmRowsF16(x *float32, w *uint16, n, rows int, out *float32)  { rowsF16NEON(x, w, n, rows, out) }
func asmRowsBF16(x *float32, w *uint16, n, rows int, out *float32) { rowsBF16NEON(x, w, n, rows, out) }
func asmRowsQ8(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32) {
	rowsQ8NEON(x, w, scales, groups, group, rows, out)
}

func asmDot4F32(x *float32, stride uintptr, w *float32, n int, out *[4]float32) {
	dot4F32NEON(x, stride, w, n, out)
}
func asmDot4F16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32) {
	dot4F16NEON(x, stride, w, n, out)
}
func asmDot4BF16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32) {
	dot4BF16NEON(x, stride, w, n, out)
}
func asmDot4Q8(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32) {
	dot4Q8NEON(x, stride, w, scales, groups, group, out)
}
func asmRows4F16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) {
	rows4F16NEON(x, w, stride, n, out)
}
func asmRows4BF16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) {
	rows4BF16NEON(x, w, stride, n, out)
}
func asmRows4Q8(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32) {
	rows4Q8NEON(x, w, stride, scales, sstride, groups, group, out)
}

//go:noescape
func scoresF32NEON(q, k *float32, stride uintptr, d8, n int, out *float32)

//go:noescape
func scoresF16NEON(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)

//go:noescape
func sumRowsF32NEON(w, v *float32, stride uintptr, d8, n int, acc *float32)

//go:noescape
func sumRowsF16NEON(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)

func asmScoresF32(q, k *float32, stride uintptr, d8, n int, out *float32) {
	scoresF32NEON(q, k, stride, d8, n, out)
}
func asmScoresF16(q *float32, k *uint16, stride uintptr, d8, n int, out *float32) {
	scoresF16NEON(q, k, stride, d8, n, out)
}
func asmSumRowsF32(w, v *float32, stride uintptr, d8, n int, acc *float32) {
	sumRowsF32NEON(w, v, stride, d8, n, acc)
}
func asmSumRowsF16(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32) {
	sumRowsF16NEON(w, v, stride, d8, n, acc)
}

//go:noescape
func expShiftNEON(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32)

//go:noescape
func swigluNEON(o, gate, up *float32, n int, c *[16][8]float32)

func asmExpShift(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32) {
	expShiftNEON(x, n, m, c, lanes)
}
func asmSwiGLU(o, gate, up *float32, n int, c *[16][8]float32) { swigluNEON(o, gate, up, n, c) }

// No eight-input kernels on arm64 (their stubs: kernels_dot8_other.go); the 8-bit activation kernels are in
// q8act_arm64.go.
