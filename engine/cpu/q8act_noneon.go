//go:build !arm64

package cpu

const haveQ8NEON = false

func q8RowNEON(x *int8, xs *float32, w *byte, ws *float32, groups int) float32 { panic("no asm") }

func q8Rows4NEON(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32) {
	panic("no asm")
}

func q8Inputs4NEON(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32) {
	panic("no asm")
}

func q8QuantizeNEON(x *float32, groups int, q *int8, s *float32) { panic("no asm") }
