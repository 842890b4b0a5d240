//go:build !amd64

package cpu

const haveVNNI = false

const haveQ8AVX2 = false

func q8Rows4VNNI(x *int8, corr *int32, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32) {
	panic("no asm")
}

func q8RowVNNI(x *int8, corr *int32, xs *float32, w *byte, ws *float32, groups int) float32 {
	panic("no asm")
}

func q8QuantizeAVX512(x *float32, groups int, q *int8, s *float32, corr *int32) { panic("no asm") }

func q8Inputs4VNNI(x *int8, xstride uintptr, corr *int32, cstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32) {
	panic("no asm")
}

func q8RowAVX2(x *int8, xs *float32, w *byte, ws *float32, groups int) float32 { panic("no asm") }

func q8Rows4AVX2(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32) {
	panic("no asm")
}

func q8Inputs4AVX2(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32) {
	panic("no asm")
}

func q8QuantizeAVX2(x *float32, groups int, q *int8, s *float32, corr *int32) { panic("no asm") }
