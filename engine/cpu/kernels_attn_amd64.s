#include "textflag.h"
#include "expf_amd64.h"

// The fast attention's block kernels (attn_kernels.go), AVX2 + F16C. Products and sums are separate
// instructions (no FMA) so that the pure-Go kernels, which round every product, give the same bits.
// (The macros come before the first TEXT, where vet does not tie argument names to one function.)

// ACC_F32 and ACC_F16 add Y8 times the eight values at addr (f32 or f16; Y9 a temporary) to acc: in the
// scores, q's chunk times a K row's; in the V sums, a broadcast weight times a V row's chunk.
#define ACC_F32(addr, acc) \
	VMULPS addr, Y8, Y9 \
	VADDPS Y9, acc, acc

#define ACC_F16(addr, acc) \
	VCVTPH2PS addr, Y9  \
	VMULPS    Y8, Y9, Y9 \
	VADDPS    Y9, acc, acc

// SC_ZERO8 clears the eight rows' accumulators Y0-Y7.
#define SC_ZERO8 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

// SC_REDUCE8 reduces row r's lanes (Y(r)) to lane r of Y0, each as (0+1 + 2+3) + (4+5 + 6+7) (hsum8).
#define SC_REDUCE8 \
	VHADDPS    Y1, Y0, Y0      \
	VHADDPS    Y3, Y2, Y2      \
	VHADDPS    Y5, Y4, Y4      \
	VHADDPS    Y7, Y6, Y6      \
	VHADDPS    Y2, Y0, Y0      \
	VHADDPS    Y6, Y4, Y4      \
	VPERM2F128 $0x20, Y4, Y0, Y1 \
	VPERM2F128 $0x31, Y4, Y0, Y2 \
	VADDPS     Y2, Y1, Y0

// SC_REDUCE1 reduces Y0's lanes to X0's low lane in hsum8's order.
#define SC_REDUCE1 \
	VHADDPS      Y0, Y0, Y0 \
	VHADDPS      Y0, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDSS       X1, X0, X0

// SC_ARGS loads the scores kernels' arguments: R11 q, DI the K rows, R9 their stride, R8 d8, BX rows,
// DX out; R14 = 3 strides, R15 = 8 strides.
#define SC_ARGS \
	MOVQ q+0(FP), R11        \
	MOVQ k+8(FP), DI         \
	MOVQ stride+16(FP), R9   \
	MOVQ d8+24(FP), R8       \
	MOVQ n+32(FP), BX        \
	MOVQ out+40(FP), DX      \
	LEAQ (R9)(R9*2), R14     \
	MOVQ R9, R15             \
	SHLQ $3, R15

// SC_ROWS8 points R10, R12, R13 at rows 0, 3 and 6 of the next eight, SI at q, CX at d8.
#define SC_ROWS8 \
	MOVQ DI, R10         \
	LEAQ (DI)(R14*1), R12 \
	LEAQ (R12)(R14*1), R13 \
	MOVQ R11, SI         \
	MOVQ R8, CX

// SC_DOT8(ACC) adds the q chunk (Y8) times each of the eight rows' chunks (R10, R12, R13 at rows 0, 3, 6)
// to Y0-Y7 by ACC (ACC_F32 or ACC_F16).
#define SC_DOT8(ACC) \
	ACC((R10), Y0)        \
	ACC((R10)(R9*1), Y1)  \
	ACC((R10)(R9*2), Y2)  \
	ACC((R12), Y3)        \
	ACC((R12)(R9*1), Y4)  \
	ACC((R12)(R9*2), Y5)  \
	ACC((R13), Y6)        \
	ACC((R13)(R9*1), Y7)

// SR_ARGS loads the V-sum kernels' arguments: R11 w, R12 the V rows, R9 their stride, R8 d8, BX rows,
// DX acc.
#define SR_ARGS \
	MOVQ w+0(FP), R11      \
	MOVQ v+8(FP), R12      \
	MOVQ stride+16(FP), R9 \
	MOVQ d8+24(FP), R8     \
	MOVQ n+32(FP), BX      \
	MOVQ acc+40(FP), DX

#define SR_LOAD8 \
	VMOVUPS (DX), Y0    \
	VMOVUPS 32(DX), Y1  \
	VMOVUPS 64(DX), Y2  \
	VMOVUPS 96(DX), Y3  \
	VMOVUPS 128(DX), Y4 \
	VMOVUPS 160(DX), Y5 \
	VMOVUPS 192(DX), Y6 \
	VMOVUPS 224(DX), Y7

#define SR_STORE8 \
	VMOVUPS Y0, (DX)    \
	VMOVUPS Y1, 32(DX)  \
	VMOVUPS Y2, 64(DX)  \
	VMOVUPS Y3, 96(DX)  \
	VMOVUPS Y4, 128(DX) \
	VMOVUPS Y5, 160(DX) \
	VMOVUPS Y6, 192(DX) \
	VMOVUPS Y7, 224(DX)

// SR_ROW8(ACC, step) adds the weight (Y8) times the V row's eight chunks at DI (step bytes apart) to Y0-Y7
// by ACC (ACC_F32 or ACC_F16).
#define SR_ROW8(ACC, step) \
	ACC((DI), Y0)        \
	ACC(step(DI), Y1)    \
	ACC(2*step(DI), Y2)  \
	ACC(3*step(DI), Y3)  \
	ACC(4*step(DI), Y4)  \
	ACC(5*step(DI), Y5)  \
	ACC(6*step(DI), Y6)  \
	ACC(7*step(DI), Y7)

// func scoresF32AVX(q, k *float32, stride uintptr, d8, n int, out *float32)
// out[i] = q . K row i over d8 elements (a multiple of 8), in 8 lanes reduced as hsum8; eight rows at a
// time (each q chunk loaded once for them), the rest one by one in the same order.
TEXT ·scoresF32AVX(SB), NOSPLIT, $0-48
	SC_ARGS

sf32blk:
	CMPQ BX, $8
	JLT  sf32one
	SC_ZERO8
	SC_ROWS8

sf32chunk:
	VMOVUPS (SI), Y8
	SC_DOT8(ACC_F32)
	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ $32, R12
	ADDQ $32, R13
	SUBQ $8, CX
	JNE  sf32chunk
	SC_REDUCE8
	VMOVUPS Y0, (DX)
	ADDQ    $32, DX
	ADDQ    R15, DI
	SUBQ    $8, BX
	JMP     sf32blk

sf32one:
	TESTQ BX, BX
	JEQ   sf32done
	VXORPS Y0, Y0, Y0
	MOVQ   DI, R10
	MOVQ   R11, SI
	MOVQ   R8, CX

sf32onechunk:
	VMOVUPS (SI), Y8
	ACC_F32((R10), Y0)
	ADDQ $32, SI
	ADDQ $32, R10
	SUBQ $8, CX
	JNE  sf32onechunk
	SC_REDUCE1
	MOVSS X0, (DX)
	ADDQ  $4, DX
	ADDQ  R9, DI
	DECQ  BX
	JMP   sf32one

sf32done:
	VZEROUPPER
	RET

// func scoresF16AVX(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)
// scoresF32AVX for f16 K rows.
TEXT ·scoresF16AVX(SB), NOSPLIT, $0-48
	SC_ARGS

sf16blk:
	CMPQ BX, $8
	JLT  sf16one
	SC_ZERO8
	SC_ROWS8

sf16chunk:
	VMOVUPS (SI), Y8
	SC_DOT8(ACC_F16)
	ADDQ $32, SI
	ADDQ $16, R10
	ADDQ $16, R12
	ADDQ $16, R13
	SUBQ $8, CX
	JNE  sf16chunk
	SC_REDUCE8
	VMOVUPS Y0, (DX)
	ADDQ    $32, DX
	ADDQ    R15, DI
	SUBQ    $8, BX
	JMP     sf16blk

sf16one:
	TESTQ BX, BX
	JEQ   sf16done
	VXORPS Y0, Y0, Y0
	MOVQ   DI, R10
	MOVQ   R11, SI
	MOVQ   R8, CX

sf16onechunk:
	VMOVUPS (SI), Y8
	ACC_F16((R10), Y0)
	ADDQ $32, SI
	ADDQ $16, R10
	SUBQ $8, CX
	JNE  sf16onechunk
	SC_REDUCE1
	MOVSS X0, (DX)
	ADDQ  $4, DX
	ADDQ  R9, DI
	DECQ  BX
	JMP   sf16one

sf16done:
	VZEROUPPER
	RET

// func expShiftAVX(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32)
// x[i] = exp(x[i] - m) for i < n (a multiple of 8, > 0) by exp1's steps, lane i%8 of the sums in lanes.
// c is expC: rows of 32 bytes, in exp1's order.
TEXT ·expShiftAVX(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	MOVQ         c+24(FP), R8
	MOVQ         lanes+32(FP), DX
	VMOVUPS      (DX), Y14

exploop:
	VMOVUPS   (SI), Y0
	VSUBPS    Y15, Y0, Y0          // x - m
	VCMPPS    $0x1d, (R8), Y0, Y10 // x >= expMin (false for -Inf and NaN)
	EXP1_STEPS                     // e^(x - m) = 2^z e^r
	VANDPS    Y10, Y4, Y4
	VMOVUPS   Y4, (SI)
	VADDPS    Y4, Y14, Y14
	ADDQ      $32, SI
	SUBQ      $8, CX
	JGT       exploop
	VMOVUPS   Y14, (DX)
	VZEROUPPER
	RET

// func sumRowsF32AVX(w, v *float32, stride uintptr, d8, n int, acc *float32)
// acc[e] += w[i] * V row i [e] for e < d8 (a multiple of 8), row after row: 64 columns at a time in
// eight accumulators, then 8.
TEXT ·sumRowsF32AVX(SB), NOSPLIT, $0-48
	SR_ARGS

sr32wide:
	CMPQ R8, $64
	JLT  sr32narrow
	SR_LOAD8
	MOVQ R11, SI
	MOVQ R12, DI
	MOVQ BX, CX

sr32widerow:
	VBROADCASTSS (SI), Y8
	SR_ROW8(ACC_F32, 32)
	ADDQ $4, SI
	ADDQ R9, DI
	DECQ CX
	JNE  sr32widerow
	SR_STORE8
	ADDQ $256, DX
	ADDQ $256, R12
	SUBQ $64, R8
	JMP  sr32wide

sr32narrow:
	CMPQ    R8, $8
	JLT     sr32done
	VMOVUPS (DX), Y0
	MOVQ    R11, SI
	MOVQ    R12, DI
	MOVQ    BX, CX

sr32narrowrow:
	VBROADCASTSS (SI), Y8
	ACC_F32((DI), Y0)
	ADDQ $4, SI
	ADDQ R9, DI
	DECQ CX
	JNE  sr32narrowrow
	VMOVUPS Y0, (DX)
	ADDQ    $32, DX
	ADDQ    $32, R12
	SUBQ    $8, R8
	JMP     sr32narrow

sr32done:
	VZEROUPPER
	RET

// func sumRowsF16AVX(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)
// sumRowsF32AVX for f16 V rows.
TEXT ·sumRowsF16AVX(SB), NOSPLIT, $0-48
	SR_ARGS

sr16wide:
	CMPQ R8, $64
	JLT  sr16narrow
	SR_LOAD8
	MOVQ R11, SI
	MOVQ R12, DI
	MOVQ BX, CX

sr16widerow:
	VBROADCASTSS (SI), Y8
	SR_ROW8(ACC_F16, 16)
	ADDQ $4, SI
	ADDQ R9, DI
	DECQ CX
	JNE  sr16widerow
	SR_STORE8
	ADDQ $256, DX
	ADDQ $128, R12
	SUBQ $64, R8
	JMP  sr16wide

sr16narrow:
	CMPQ    R8, $8
	JLT     sr16done
	VMOVUPS (DX), Y0
	MOVQ    R11, SI
	MOVQ    R12, DI
	MOVQ    BX, CX

sr16narrowrow:
	VBROADCASTSS (SI), Y8
	ACC_F16((DI), Y0)
	ADDQ $4, SI
	ADDQ R9, DI
	DECQ CX
	JNE  sr16narrowrow
	VMOVUPS Y0, (DX)
	ADDQ    $32, DX
	ADDQ    $16, R12
	SUBQ    $8, R8
	JMP     sr16narrow

sr16done:
	VZEROUPPER
	RET
