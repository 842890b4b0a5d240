//go:build !amd64

package cpu

// The eight-input kernels are AVX-512 only: elsewhere haveAVX512 is false and keeps these from being called.

func asmDot8F32(x *float32, stride uintptr, w *float32, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}
func asmDot8F16(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}
func asmDot8BF16(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32) {
	panic("no asm")
}
func asmDot8Q8(x *float32, stride uintptr, w *int8, scales *float32, groups, group, rows int, out *float32) {
	panic("no asm")
}
func asmDot8FP8(x *float32, stride uintptr, w *uint8, wstride uintptr, scales *float32, groups, group int, acc *float32, flags int, out *[8]float32) {
	panic("no asm")
}
