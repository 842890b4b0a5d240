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

// The AVX2 kernels (q8act_avx2_amd64.s): the VNNI kernels' sums by vpmaddubsw and vpmaddwd, for CPUs with
// AVX2 but not AVX-512 VNNI (or KVC_CPU_NOAVX512 set).

// haveQ8AVX2: this architecture has the AVX2 8-bit activation kernels (they run where haveAsm says).
const haveQ8AVX2 = true

//go:noescape
func q8RowAVX2(x *int8, xs *float32, w *byte, ws *float32, groups int) float32

//go:noescape
func q8Rows4AVX2(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)

//go:noescape
func q8Inputs4AVX2(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)

//go:noescape
func q8QuantizeAVX2(x *float32, groups int, q *int8, s *float32, corr *int32)
