//go:build !amd64

package cpu

func scoresF32AVX(q, k *float32, stride uintptr, d8, n int, out *float32)            { panic("no asm") }
func scoresF16AVX(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)    { panic("no asm") }
func expShiftAVX(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32) { panic("no asm") }
func sumRowsF32AVX(w, v *float32, stride uintptr, d8, n int, acc *float32)           { panic("no asm") }
func sumRowsF16AVX(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)   { panic("no asm") }
