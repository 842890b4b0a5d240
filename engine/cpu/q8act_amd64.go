package cpu

import "golang.org/x/sys/cpu"

// haveVNNI: the CPU runs AVX-512 VNNI (vpdpbusd on 512- and 256-bit registers), used by the 8-bit
// activation kernels.
var haveVNNI = haveAVX512 && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512BW

//go:noescape
func q8Rows4VNNI(x *int8, corr *int32, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)

//go:noescape
func q8RowVNNI(x *int8, corr *int32, xs *float32, w *byte, ws *float32, groups int) float32

//go:noescape
func q8QuantizeAVX512(x *float32, groups int, q *int8, s *float32, corr *int32)

//go:noescape
func q8Inputs4VNNI(x *int8, xstride uintptr, corr *int32, cstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)
