//go:build !amd64 && !arm64

package cpu

// Without assembly kernels every product takes the pure-Go path; the asm* names are never called.
const haveAsm = false

const asmName = ""

const haveAVX512 = false

func asmDotF32(x, w *float32, n int) float32                                     { panic("no asm") }
func asmDotF16(x *float32, w *uint16, n int) float32                             { panic("no asm") }
func asmDotBF16(x *float32, w *uint16, n int) float32                            { panic("no asm") }
func asmDotQ8(x *float32, w *int8, scales *float32, groups, group int) float32   { panic("no asm") }
func asmDotFP8(x *float32, w *uint8, scales *float32, groups, group int) float32 { panic("no asm") }

func asmRowsF32(x, w *float32, n, rows int, out *float32)          { panic("no asm") }
func asmRowsF16(x *float32, w *uint16, n, rows int, out *float32)  { panic("no asm") }
func asmRowsBF16(x *float32, w *uint16, n, rows int, out *float32) { panic("no asm") }
func asmRowsQ8(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32) {
	panic("no asm")
}

func asmDot4F32(x *float32, stride uintptr, w *float32, n int, out *[4]float32)  { panic("no asm") }
func asmDot4F16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)   { panic("no asm") }
func asmDot4BF16(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)  { panic("no asm") }
func asmRows4F16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)  { panic("no asm") }
func asmRows4BF16(x *float32, w *uint16, stride uintptr, n int, out *[4]float32) { panic("no asm") }
func asmDot4Q8(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32) {
	panic("no asm")
}
func asmDot4FP8(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32) {
	panic("no asm")
}
func asmRows4Q8(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32) {
	panic("no asm")
}

func asmScoresF32(q, k *float32, stride uintptr, d8, n int, out *float32)            { panic("no asm") }
func asmScoresF16(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)    { panic("no asm") }
func asmExpShift(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32) { panic("no asm") }
func asmSumRowsF32(w, v *float32, stride uintptr, d8, n int, acc *float32)           { panic("no asm") }
func asmSumRowsF16(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)   { panic("no asm") }
func asmSwiGLU(o, gate, up *float32, n int, c *[16][8]float32)                       { panic("no asm") }
