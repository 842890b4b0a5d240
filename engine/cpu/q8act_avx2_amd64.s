#include "textflag.h"

// q8_0 x 8-bit activation kernels for AVX2 (no AVX-512, no VNNI), in q8act.go's fixed order. Per group
// (32 codes): vpabsb makes the weight codes unsigned (|w|; -128 becomes 128, which is right read unsigned)
// and vpsignb gives the activation codes the weights' signs (x*sign(w); |x| <= 127, so the negation never
// wraps); vpmaddubsw sums adjacent products into 16 bits (at most 2*128*127 = 32512: no saturation) and
// vpmaddwd against ones sums adjacent pairs into 32 bits, so each lane holds the exact sum of the four
// products vpdpbusd's lane holds. (The other way round, |x| times w*sign(x), would negate a -128 weight
// into itself.) Each lane's integer becomes a float times c = ws*xs (a multiply, then an add: no FMA) into
// the even group's eight float lanes or the odd group's; the sixteen are reduced as q8DotGo does.
//
// Registers: Y8 words of 1, Y9 activation codes, Y10 activation scale (broadcast), Y11-Y15 temporaries.

// Q8V_ONES sets Y8 to 16-bit ones.
#define Q8V_ONES \
	MOVL         $0x00010001, AX \
	VPBROADCASTD AX, Y8

// Q8V_ZERO8 clears the accumulators Y0-Y7.
#define Q8V_ZERO8 \
	VPXOR Y0, Y0, Y0 \
	VPXOR Y1, Y1, Y1 \
	VPXOR Y2, Y2, Y2 \
	VPXOR Y3, Y3, Y3 \
	VPXOR Y4, Y4, Y4 \
	VPXOR Y5, Y5, Y5 \
	VPXOR Y6, Y6, Y6 \
	VPXOR Y7, Y7, Y7

// Q8V_SUM(W, D) sets D to the eight lane sums of the weight group at W (memory) with the codes in Y9.
#define Q8V_SUM(W, D) \
	VPABSB     W, D        \
	VPSIGNB    W, Y9, Y12  \
	VPMADDUBSW Y12, D, D   \
	VPMADDWD   Y8, D, D    \
	VCVTDQ2PS  D, D

// Q8V_ROW(W, S, ACC) adds the group of the row at W (scale at S) times the activations in Y9 (scale Y10)
// into ACC.
#define Q8V_ROW(W, S, ACC) \
	Q8V_SUM(W, Y11)          \
	VBROADCASTSS S, Y13      \
	VMULPS       Y10, Y13, Y13 \
	VMULPS       Y13, Y11, Y11 \
	VADDPS       Y11, ACC, ACC

// Q8V_ACT(OFF) loads group OFF/32 of the activations (codes at SI, scales at R14) into Y9, Y10.
#define Q8V_ACT(OFF, SOFF) \
	VMOVDQU      OFF(SI), Y9 \
	VBROADCASTSS SOFF(R14), Y10

// Q8V_REDUCE(E, O, X) sums the even lanes E and odd lanes O (X: E's low half) in the fixed order into X's
// lane 0: (l + l+8), (l + l+4), (l + l+2), 0 + 1.
#define Q8V_REDUCE(E, O, X) \
	VADDPS       O, E, E    \
	VEXTRACTF128 $1, E, X12 \
	VADDPS       X12, X, X  \
	VMOVHLPS     X, X, X12  \
	VADDPS       X12, X, X  \
	VMOVSHDUP    X, X12     \
	VADDSS       X12, X, X

// Eight groups at a time, the kernels below make the scale products c of the four rows (or inputs) with
// one multiply of eight scales by eight (each c the same single multiply the per-group macros make, so
// the same bits) into 128 bytes at the hardware SP, and each group broadcasts its c from there: a load
// instead of a broadcast and a multiply per group and row.

// Q8V_C4(S, T, ST, T3) stores the eight scales at S times those at T, T + ST, T + 2 ST and T3 at 0, 32, 64
// and 96(SP).
#define Q8V_C4(S, T, ST, T3) \
	VMOVUPS S, Y10              \
	VMULPS  (T), Y10, Y12       \
	VMOVUPS Y12, 0(SP)          \
	VMULPS  (T)(ST*1), Y10, Y12 \
	VMOVUPS Y12, 32(SP)         \
	VMULPS  (T)(ST*2), Y10, Y12 \
	VMOVUPS Y12, 64(SP)         \
	VMULPS  T3, Y10, Y12        \
	VMOVUPS Y12, 96(SP)

// Q8V_ROWC(W, C, ACC) is Q8V_ROW with the group's c at C.
#define Q8V_ROWC(W, C, ACC) \
	Q8V_SUM(W, Y11)          \
	VBROADCASTSS C, Y13      \
	VMULPS       Y13, Y11, Y11 \
	VADDPS       Y11, ACC, ACC

// Q8V_ROWS4C(G, A0, A1, A2, A3) adds group G of the eight of the four rows into A0-A3.
#define Q8V_ROWS4C(G, A0, A1, A2, A3) \
	VMOVDQU G*32(SI), Y9                              \
	Q8V_ROWC(G*32(DI), G*4(SP), A0)                   \
	Q8V_ROWC(G*32(DI)(R8*1), 32+G*4(SP), A1)          \
	Q8V_ROWC(G*32(DI)(R8*2), 64+G*4(SP), A2)          \
	Q8V_ROWC(G*32(R10), 96+G*4(SP), A3)

// Q8V_INC(X, C, ACC) is Q8V_IN with the group's c at C.
#define Q8V_INC(X, C, ACC) \
	VMOVDQU      X, Y12        \
	VPSIGNB      Y11, Y12, Y12 \
	VPMADDUBSW   Y12, Y9, Y12  \
	VPMADDWD     Y8, Y12, Y12  \
	VCVTDQ2PS    Y12, Y12      \
	VBROADCASTSS C, Y13        \
	VMULPS       Y13, Y12, Y12 \
	VADDPS       Y12, ACC, ACC

// Q8V_INS4C(G, A0, A1, A2, A3) adds group G of the eight of the row times the four inputs into A0-A3.
#define Q8V_INS4C(G, A0, A1, A2, A3) \
	PREFETCHT0 2048+G*32(DI)                         \
	VMOVDQU    G*32(DI), Y11                         \
	VPABSB     Y11, Y9                               \
	Q8V_INC(G*32(SI), G*4(SP), A0)                   \
	Q8V_INC(G*32(SI)(R8*1), 32+G*4(SP), A1)          \
	Q8V_INC(G*32(SI)(R8*2), 64+G*4(SP), A2)          \
	Q8V_INC(G*32(R10), 96+G*4(SP), A3)

// func q8RowAVX2(x *int8, xs *float32, w *byte, ws *float32, groups int) float32
TEXT ·q8RowAVX2(SB), NOSPLIT, $0-44
	MOVQ x+0(FP), SI
	MOVQ xs+8(FP), R14
	MOVQ w+16(FP), DI
	MOVQ ws+24(FP), BX
	MOVQ groups+32(FP), CX
	Q8V_ONES
	VPXOR Y0, Y0, Y0
	VPXOR Y4, Y4, Y4
	MOVQ  CX, R15
	SHRQ  $1, R15
	JZ    v1tail

v1pair:
	Q8V_ACT(0, 0)
	Q8V_ROW((DI), (BX), Y0)
	Q8V_ACT(32, 4)
	Q8V_ROW(32(DI), 4(BX), Y4)
	ADDQ $64, SI
	ADDQ $8, R14
	ADDQ $64, DI
	ADDQ $8, BX
	DECQ R15
	JNZ  v1pair

v1tail:
	TESTQ $1, CX
	JZ    v1done
	Q8V_ACT(0, 0)
	Q8V_ROW((DI), (BX), Y0)

v1done:
	Q8V_REDUCE(Y0, Y4, X0)
	MOVSS X0, ret+40(FP)
	VZEROUPPER
	RET

// Q8V_ROWS4(OFF, SOFF, E) adds group OFF/32 of the four rows (w at DI, DI+R8, DI+2*R8, R10; scales at BX,
// BX+R9, BX+2*R9, AX) into the accumulators from E (Y0-Y3 for even groups, Y4-Y7 for odd ones).
#define Q8V_ROWS4(OFF, SOFF, A0, A1, A2, A3) \
	Q8V_ACT(OFF, SOFF)                             \
	Q8V_ROW(OFF(DI), SOFF(BX), A0)                 \
	Q8V_ROW(OFF(DI)(R8*1), SOFF(BX)(R9*1), A1)     \
	Q8V_ROW(OFF(DI)(R8*2), SOFF(BX)(R9*2), A2)     \
	Q8V_ROW(OFF(R10), SOFF(AX), A3)

// func q8Rows4AVX2(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)
// Four rows: w + k*stride, scales ws + k*sstride, for k < 4; row k's sum at out[k]. Eight groups at a
// time, then pairs, then an odd last group.
TEXT ·q8Rows4AVX2(SB), NOSPLIT, $128-64
	MOVQ x+0(FP), SI
	MOVQ xs+8(FP), R14
	MOVQ w+16(FP), DI
	MOVQ stride+24(FP), R8
	MOVQ ws+32(FP), BX
	MOVQ sstride+40(FP), R9
	MOVQ groups+48(FP), CX
	MOVQ out+56(FP), DX
	Q8V_ONES
	Q8V_ZERO8
	LEAQ (R8)(R8*2), R10
	ADDQ DI, R10
	LEAQ (R9)(R9*2), AX
	ADDQ BX, AX
	MOVQ CX, R15
	SHRQ $3, R15
	JZ   v4pairs

v4block:
	Q8V_C4((R14), BX, R9, (AX))
	Q8V_ROWS4C(0, Y0, Y1, Y2, Y3)
	Q8V_ROWS4C(1, Y4, Y5, Y6, Y7)
	Q8V_ROWS4C(2, Y0, Y1, Y2, Y3)
	Q8V_ROWS4C(3, Y4, Y5, Y6, Y7)
	Q8V_ROWS4C(4, Y0, Y1, Y2, Y3)
	Q8V_ROWS4C(5, Y4, Y5, Y6, Y7)
	Q8V_ROWS4C(6, Y0, Y1, Y2, Y3)
	Q8V_ROWS4C(7, Y4, Y5, Y6, Y7)
	ADDQ $256, SI
	ADDQ $32, R14
	ADDQ $256, DI
	ADDQ $256, R10
	ADDQ $32, BX
	ADDQ $32, AX
	DECQ R15
	JNZ  v4block

v4pairs:
	MOVQ CX, R15
	ANDQ $7, R15
	SHRQ $1, R15
	JZ   v4tail

v4pair:
	Q8V_ROWS4(0, 0, Y0, Y1, Y2, Y3)
	Q8V_ROWS4(32, 4, Y4, Y5, Y6, Y7)
	ADDQ $64, SI
	ADDQ $8, R14
	ADDQ $64, DI
	ADDQ $64, R10
	ADDQ $8, BX
	ADDQ $8, AX
	DECQ R15
	JNZ  v4pair

v4tail:
	TESTQ $1, CX
	JZ    v4done
	Q8V_ROWS4(0, 0, Y0, Y1, Y2, Y3)

v4done:
	Q8V_REDUCE(Y0, Y4, X0)
	MOVSS X0, (DX)
	Q8V_REDUCE(Y1, Y5, X1)
	MOVSS X1, 4(DX)
	Q8V_REDUCE(Y2, Y6, X2)
	MOVSS X2, 8(DX)
	Q8V_REDUCE(Y3, Y7, X3)
	MOVSS X3, 12(DX)
	VZEROUPPER
	RET

// Q8V_IN(X, S, ACC) adds one input's group (codes at X, scale at S) times the weight group in Y11 (|w|
// in Y9, its scale broadcast in Y10) into ACC: Q8V_ROW with the roles of row and input swapped.
#define Q8V_IN(X, S, ACC) \
	VMOVDQU      X, Y12        \
	VPSIGNB      Y11, Y12, Y12 \
	VPMADDUBSW   Y12, Y9, Y12  \
	VPMADDWD     Y8, Y12, Y12  \
	VCVTDQ2PS    Y12, Y12      \
	VBROADCASTSS S, Y13        \
	VMULPS       Y10, Y13, Y13 \
	VMULPS       Y13, Y12, Y12 \
	VADDPS       Y12, ACC, ACC

// Q8V_INS4(OFF, SOFF, A0, A1, A2, A3) adds group OFF/32 of the row (at DI, scale at BX) times the four
// inputs (codes at SI, SI+R8, SI+2*R8, R10; scales at R14, R14+R12, R14+2*R12, R15) into A0-A3. It
// prefetches the weights 2 KiB ahead into L1 (a block's calls walk the rows in order).
#define Q8V_INS4(OFF, SOFF, A0, A1, A2, A3) \
	PREFETCHT0   2048+OFF(DI)                           \
	VMOVDQU      OFF(DI), Y11                           \
	VPABSB       Y11, Y9                                \
	VBROADCASTSS SOFF(BX), Y10                          \
	Q8V_IN(OFF(SI), SOFF(R14), A0)                      \
	Q8V_IN(OFF(SI)(R8*1), SOFF(R14)(R12*1), A1)         \
	Q8V_IN(OFF(SI)(R8*2), SOFF(R14)(R12*2), A2)         \
	Q8V_IN(OFF(R10), SOFF(R15), A3)

// func q8Inputs4AVX2(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)
// Four inputs (x + k*xstride, scales xs + k*sstride, k < 4) with rows consecutive weight rows (from w,
// their scales from ws): row r's four sums at out[4r..4r+3], each with q8RowAVX2's bits. Eight groups at a
// time, then pairs, then an odd last group.
TEXT ·q8Inputs4AVX2(SB), NOSPLIT, $128-72
	Q8V_ONES
	MOVQ  w+32(FP), DI
	MOVQ  ws+40(FP), BX
	MOVQ  out+64(FP), DX
	MOVQ  rows+56(FP), R11
	TESTQ R11, R11
	JZ    w4end

w4row: // DI and BX are at the row's weights and scales: where the last row's ended
	MOVQ x+0(FP), SI
	MOVQ xstride+8(FP), R8
	MOVQ xs+16(FP), R14
	MOVQ sstride+24(FP), R12
	MOVQ groups+48(FP), CX
	Q8V_ZERO8
	LEAQ (R8)(R8*2), R10
	ADDQ SI, R10
	LEAQ (R12)(R12*2), R15
	ADDQ R14, R15
	MOVQ CX, AX
	SHRQ $3, AX
	JZ   w4pairs

w4block:
	Q8V_C4((BX), R14, R12, (R15))
	Q8V_INS4C(0, Y0, Y1, Y2, Y3)
	Q8V_INS4C(1, Y4, Y5, Y6, Y7)
	Q8V_INS4C(2, Y0, Y1, Y2, Y3)
	Q8V_INS4C(3, Y4, Y5, Y6, Y7)
	Q8V_INS4C(4, Y0, Y1, Y2, Y3)
	Q8V_INS4C(5, Y4, Y5, Y6, Y7)
	Q8V_INS4C(6, Y0, Y1, Y2, Y3)
	Q8V_INS4C(7, Y4, Y5, Y6, Y7)
	ADDQ $256, SI
	ADDQ $256, R10
	ADDQ $32, R14
	ADDQ $32, R15
	ADDQ $256, DI
	ADDQ $32, BX
	DECQ AX
	JNZ  w4block

w4pairs:
	MOVQ CX, AX
	ANDQ $7, AX
	SHRQ $1, AX
	JZ   w4tail

w4pair:
	Q8V_INS4(0, 0, Y0, Y1, Y2, Y3)
	Q8V_INS4(32, 4, Y4, Y5, Y6, Y7)
	ADDQ $64, SI
	ADDQ $64, R10
	ADDQ $8, R14
	ADDQ $8, R15
	ADDQ $64, DI
	ADDQ $8, BX
	DECQ AX
	JNZ  w4pair

w4tail:
	TESTQ $1, CX
	JZ    w4done
	Q8V_INS4(0, 0, Y0, Y1, Y2, Y3)
	ADDQ  $32, DI
	ADDQ  $4, BX

w4done:
	Q8V_REDUCE(Y0, Y4, X0)
	MOVSS X0, (DX)
	Q8V_REDUCE(Y1, Y5, X1)
	MOVSS X1, 4(DX)
	Q8V_REDUCE(Y2, Y6, X2)
	MOVSS X2, 8(DX)
	Q8V_REDUCE(Y3, Y7, X3)
	MOVSS X3, 12(DX)
	ADDQ  $16, DX
	DECQ  R11
	JNZ   w4row

w4end:
	VZEROUPPER
	RET

// Q8V_QUANT8(YX) quantizes the eight floats in YX by the scale broadcast in Y4 as model.QuantizeQ8_0To
// does (x/d in float32, rounded half away from zero: truncate, then step away where the exact remainder is
// at least one half; clamped to +-127) into eight int32 codes in YX.
#define Q8V_QUANT8(YX) \
	VDIVPS     Y4, YX, Y5      \
	VROUNDPS   $3, Y5, Y6      \
	VSUBPS     Y6, Y5, Y7      \
	VCMPPS     $0x1d, Y14, Y7, YX \
	VANDPS     Y12, YX, YX     \
	VADDPS     YX, Y6, Y6      \
	VCMPPS     $0x12, Y13, Y7, YX \
	VANDPS     Y12, YX, YX     \
	VSUBPS     YX, Y6, Y6      \
	VMINPS     Y11, Y6, Y6     \
	VMAXPS     Y10, Y6, Y6     \
	VCVTTPS2DQ Y6, YX

// q8vperm<>: the dwords of two pack instructions' output in input order (they interleave 128-bit lanes).
DATA q8vperm<>+0(SB)/4, $0
DATA q8vperm<>+4(SB)/4, $4
DATA q8vperm<>+8(SB)/4, $1
DATA q8vperm<>+12(SB)/4, $5
DATA q8vperm<>+16(SB)/4, $2
DATA q8vperm<>+20(SB)/4, $6
DATA q8vperm<>+24(SB)/4, $3
DATA q8vperm<>+28(SB)/4, $7
GLOBL q8vperm<>(SB), RODATA|NOPTR, $32

// func q8QuantizeAVX2(x *float32, groups int, q *int8, s *float32, corr *int32)
// q8QuantizeAVX512 on AVX2: per group of 32 the scale absmax/127, the codes, and corr (-128 times each four
// codes' sum, for the VNNI kernels).
TEXT ·q8QuantizeAVX2(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         groups+8(FP), CX
	MOVQ         q+16(FP), DI
	MOVQ         s+24(FP), BX
	MOVQ         corr+32(FP), DX
	MOVL         $0x7fffffff, AX
	VPBROADCASTD AX, Y15
	MOVL         $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Y14
	MOVL         $0xbf000000, AX // -0.5
	VPBROADCASTD AX, Y13
	MOVL         $0x3f800000, AX // 1
	VPBROADCASTD AX, Y12
	MOVL         $0x42fe0000, AX // 127
	VPBROADCASTD AX, Y11
	MOVL         $0xc2fe0000, AX // -127
	VPBROADCASTD AX, Y10
	MOVL         $0x01010101, AX
	VPBROADCASTD AX, Y9
	MOVL         $0x00010001, AX
	VPBROADCASTD AX, Y8
	TESTQ        CX, CX
	JZ           vqdone

vqgroup:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VANDPS       Y15, Y0, Y5
	VANDPS       Y15, Y1, Y6
	VMAXPS       Y6, Y5, Y5
	VANDPS       Y15, Y2, Y6
	VANDPS       Y15, Y3, Y7
	VMAXPS       Y7, Y6, Y6
	VMAXPS       Y6, Y5, Y5
	VEXTRACTF128 $1, Y5, X6
	VMAXPS       X6, X5, X5
	VMOVHLPS     X5, X5, X6
	VMAXPS       X6, X5, X5
	VMOVSHDUP    X5, X6
	VMAXSS       X6, X5, X5
	VDIVSS       X11, X5, X5
	VMOVSS       X5, (BX)
	VXORPS       X6, X6, X6
	VUCOMISS     X6, X5
	JEQ          vqzero
	VBROADCASTSS X5, Y4
	Q8V_QUANT8(Y0)
	Q8V_QUANT8(Y1)
	Q8V_QUANT8(Y2)
	Q8V_QUANT8(Y3)
	VPACKSSDW    Y1, Y0, Y0
	VPACKSSDW    Y3, Y2, Y2
	VPACKSSWB    Y2, Y0, Y0
	VMOVDQU      q8vperm<>(SB), Y5
	VPERMD       Y0, Y5, Y0
	VMOVDQU      Y0, (DI)
	VPMADDUBSW   Y0, Y9, Y5
	VPMADDWD     Y8, Y5, Y5
	VPSLLD       $7, Y5, Y5
	VPXOR        Y6, Y6, Y6
	VPSUBD       Y5, Y6, Y5
	VMOVDQU      Y5, (DX)

vqnext:
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, BX
	ADDQ $32, DX
	DECQ CX
	JNZ  vqgroup

vqdone:
	VZEROUPPER
	RET

vqzero:
	VPXOR   Y5, Y5, Y5
	VMOVDQU Y5, (DI)
	VMOVDQU Y5, (DX)
	JMP     vqnext
