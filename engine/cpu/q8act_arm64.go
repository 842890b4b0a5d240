package cpu

// The NEON kernels (q8act_arm64.s): the AVX2 kernels' sums by SMULL/SMLAL and SADDLP pair sums, on
// every ARMv8.0 core (no SDOT); they run where useAsm says (KVC_CPU_NOASM=1: q8DotGo).

// haveQ8NEON: this architecture has the NEON 8-bit activation kernels.
const haveQ8NEON = true

//go:noescape
func q8RowNEON(x *int8, xs *float32, w *byte, ws *float32, groups int) float32

//go:noescape
func q8Rows4NEON(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)

//go:noescape
func q8Inputs4NEON(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)

//go:noescape
func q8QuantizeNEON(x *float32, groups int, q *int8, s *float32)
