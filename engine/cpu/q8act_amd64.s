#include "textflag.h"

// q8_0 x 8-bit activation kernels for AVX-512 VNNI, in q8act.go's fixed order. Per pair of groups (64
// codes): the weight bytes xor 0x80 are unsigned (w + 128), so vpdpbusd against the signed activation
// codes gives each lane's sum plus 128 times the lane's activation sum; the lanes start from corr
// (-128 times that sum, computed once per input), so the integers are exact. Lanes 0-7 hold the even
// group, 8-15 the odd one; each becomes a float times ws*xs (a multiply, then an add: no FMA) in the
// row's 16 float lanes. An odd last group runs at 8 lanes into lanes 0-7.
//
// Registers: Z4 activation codes, Z5 corr, Z6 activation scales (xs_k in lanes 0-7, xs_k+1 in 8-15),
// Z7 bytes 0x80, K1 lanes 8-15, Z8/Z9 temporaries, Z0-Z3 the rows' accumulators.

// Q8A_ZERO4 clears the accumulators Z0-Z3.
#define Q8A_ZERO4 \
	VPXORD Z0, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPXORD Z2, Z2, Z2 \
	VPXORD Z3, Z3, Z3

// Q8A_SETUP sets Z7 and K1 and clears Z0-Z3.
#define Q8A_SETUP \
	MOVL         $0x80808080, AX \
	VPBROADCASTD AX, Z7          \
	MOVL         $0xff00, AX     \
	KMOVW        AX, K1          \
	Q8A_ZERO4

// Q8A_LOAD2 loads a pair of groups' activations from SI (codes), R13 (corr) and R14 (scales).
#define Q8A_LOAD2 \
	VMOVDQU32    (SI), Z4         \
	VMOVDQU32    (R13), Z5        \
	VBROADCASTSS (R14), Z6        \
	VBROADCASTSS 4(R14), K1, Z6

// Q8A_ROW2 adds a pair of groups of the row at W (scales at S0, S1) into ACC.
#define Q8A_ROW2(W, S0, S1, ACC) \
	VMOVDQA32    Z5, Z8         \
	VPXORD       W, Z7, Z9      \
	VPDPBUSD     Z4, Z9, Z8     \
	VCVTDQ2PS    Z8, Z8         \
	VBROADCASTSS S0, Z9         \
	VBROADCASTSS S1, K1, Z9     \
	VMULPS       Z6, Z9, Z9     \
	VMULPS       Z9, Z8, Z8     \
	VADDPS       Z8, ACC, ACC

// Q8A_LOAD1 loads the last (odd) group's activations into the low halves (the upper lanes become 0).
#define Q8A_LOAD1 \
	VMOVDQU      (SI), Y4  \
	VMOVDQU      (R13), Y5 \
	VBROADCASTSS (R14), Y6

// Q8A_ROW1 adds the last group of the row at W (scale at S) into ACC's lanes 0-7 (lanes 8-15 get +0).
#define Q8A_ROW1(W, S, ACC) \
	VMOVDQA      Y5, Y8     \
	VPXOR        W, Y7, Y9  \
	VPDPBUSD     Y4, Y9, Y8 \
	VCVTDQ2PS    Y8, Y8     \
	VBROADCASTSS S, Y9      \
	VMULPS       Y6, Y9, Y9 \
	VMULPS       Y9, Y8, Y8 \
	VADDPS       Z8, ACC, ACC

// Q8A_REDUCE sums ACC's 16 lanes (Y, X: its lower parts) in the fixed order into X's lane 0.
#define Q8A_REDUCE(ACC, Y, X) \
	VEXTRACTF64X4 $1, ACC, Y12 \
	VADDPS        Y12, Y, Y    \
	VEXTRACTF128  $1, Y, X12   \
	VADDPS        X12, X, X    \
	VMOVHLPS      X, X, X12    \
	VADDPS        X12, X, X    \
	VMOVSHDUP     X, X12       \
	VADDSS        X12, X, X

// Q8A_STORE4 reduces Z0-Z3 and stores the four sums at (DX).
#define Q8A_STORE4 \
	Q8A_REDUCE(Z0, Y0, X0) \
	MOVSS X0, (DX)         \
	Q8A_REDUCE(Z1, Y1, X1) \
	MOVSS X1, 4(DX)        \
	Q8A_REDUCE(Z2, Y2, X2) \
	MOVSS X2, 8(DX)        \
	Q8A_REDUCE(Z3, Y3, X3) \
	MOVSS X3, 12(DX)

// func q8RowVNNI(x *int8, corr *int32, xs *float32, w *byte, ws *float32, groups int) float32
TEXT ·q8RowVNNI(SB), NOSPLIT, $0-52
	MOVQ x+0(FP), SI
	MOVQ corr+8(FP), R13
	MOVQ xs+16(FP), R14
	MOVQ w+24(FP), DI
	MOVQ ws+32(FP), BX
	MOVQ groups+40(FP), CX
	Q8A_SETUP
	MOVQ CX, R15
	SHRQ $1, R15
	JZ   r1tail

r1pair:
	Q8A_LOAD2
	Q8A_ROW2((DI), (BX), 4(BX), Z0)
	ADDQ $64, SI
	ADDQ $64, R13
	ADDQ $8, R14
	ADDQ $64, DI
	ADDQ $8, BX
	DECQ R15
	JNZ  r1pair

r1tail:
	TESTQ $1, CX
	JZ    r1done
	Q8A_LOAD1
	Q8A_ROW1((DI), (BX), Z0)

r1done:
	Q8A_REDUCE(Z0, Y0, X0)
	MOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// Q8A_QUANT16 quantizes the 16 floats in ZX by the scale broadcast in Z4 as model.QuantizeQ8_0To does
// (x/d in float32, rounded half away from zero: truncate, then step away where the exact remainder is
// at least one half; clamped to +-127) and stores the 16 codes at DST.
#define Q8A_QUANT16(ZX, DST) \
	VDIVPS      Z4, ZX, Z5       \
	VRNDSCALEPS $11, Z5, Z6      \
	VSUBPS      Z6, Z5, Z7       \
	VCMPPS      $0x1d, Z14, Z7, K2 \
	VADDPS      Z12, Z6, K2, Z6  \
	VCMPPS      $0x12, Z13, Z7, K3 \
	VSUBPS      Z12, Z6, K3, Z6  \
	VMINPS      Z11, Z6, Z6      \
	VMAXPS      Z10, Z6, Z6      \
	VCVTTPS2DQ  Z6, Z6           \
	VPMOVSDB    Z6, X8           \
	VMOVDQU     X8, DST

// func q8QuantizeAVX512(x *float32, groups int, q *int8, s *float32, corr *int32)
// q8Acts.quantize for groups of 32: per group the scale absmax/127, the codes, and corr (-128 times each
// four codes' sum, by vpdpbusd against bytes of 1).
TEXT ·q8QuantizeAVX512(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         groups+8(FP), CX
	MOVQ         q+16(FP), DI
	MOVQ         s+24(FP), BX
	MOVQ         corr+32(FP), DX
	MOVL         $0x7fffffff, AX
	VPBROADCASTD AX, Z15
	MOVL         $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Z14
	MOVL         $0xbf000000, AX // -0.5
	VPBROADCASTD AX, Z13
	MOVL         $0x3f800000, AX // 1
	VPBROADCASTD AX, Z12
	MOVL         $0x42fe0000, AX // 127
	VPBROADCASTD AX, Z11
	MOVL         $0xc2fe0000, AX // -127
	VPBROADCASTD AX, Z10
	MOVL         $0x01010101, AX
	VPBROADCASTD AX, Z9
	TESTQ        CX, CX
	JZ           qdone

qgroup:
	VMOVUPS       (SI), Z0
	VMOVUPS       64(SI), Z1
	VPANDD        Z15, Z0, Z2
	VPANDD        Z15, Z1, Z3
	VMAXPS        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VMAXPS        X3, X2, X2
	VMOVHLPS      X2, X2, X3
	VMAXPS        X3, X2, X2
	VMOVSHDUP     X2, X3
	VMAXSS        X3, X2, X2
	VDIVSS        X11, X2, X2
	VMOVSS        X2, (BX)
	VXORPS        X3, X3, X3
	VUCOMISS      X3, X2
	JEQ           qzero
	VBROADCASTSS  X2, Z4
	Q8A_QUANT16(Z0, (DI))
	Q8A_QUANT16(Z1, 16(DI))
	VMOVDQU       (DI), Y5
	VPXOR         Y6, Y6, Y6
	VPDPBUSD      Y5, Y9, Y6
	VPSLLD        $7, Y6, Y6
	VPXOR         Y7, Y7, Y7
	VPSUBD        Y6, Y7, Y6
	VMOVDQU       Y6, (DX)

qnext:
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, BX
	ADDQ $32, DX
	DECQ CX
	JNZ  qgroup

qdone:
	VZEROUPPER
	RET

qzero:
	VPXOR   Y5, Y5, Y5
	VMOVDQU Y5, (DI)
	VMOVDQU Y5, (DX)
	JMP     qnext

// Q8A_IN2 adds a pair of groups of one input (codes at X, corr at C, scales at S0, S1) times the weight
// pair in Z4 (w^0x80) with scales in Z6 into ACC: Q8A_ROW2 with the roles of row and input swapped.
#define Q8A_IN2(X, C, S0, S1, ACC) \
	VMOVDQU32    C, Z8       \
	VPDPBUSD     X, Z4, Z8   \
	VCVTDQ2PS    Z8, Z8      \
	VBROADCASTSS S0, Z9      \
	VBROADCASTSS S1, K1, Z9  \
	VMULPS       Z6, Z9, Z9  \
	VMULPS       Z9, Z8, Z8  \
	VADDPS       Z8, ACC, ACC

// Q8A_IN1 is Q8A_IN2 for the last (odd) group, into ACC's lanes 0-7.
#define Q8A_IN1(X, C, S, ACC) \
	VMOVDQU      C, Y8      \
	VPDPBUSD     X, Y4, Y8  \
	VCVTDQ2PS    Y8, Y8     \
	VBROADCASTSS S, Y9      \
	VMULPS       Y6, Y9, Y9 \
	VMULPS       Y9, Y8, Y8 \
	VADDPS       Z8, ACC, ACC

// Four rows: w + k*stride, scales ws + k*sstride, for k < 4. Sixteen groups at a time, the weight scale
// times activation scale products (c) come from one multiply of sixteen row scales by sixteen activation
// scales (the products Q8A_ROW2 makes one pair at a time, so the same bits) and one permute per pair of
// groups, instead of two broadcasts and a multiply per pair and row (one thread, 512x3072 in cache:
// 34-45 -> 44-48 GB/s). Z16-Z23 hold the permutes' indexes (pair j: lanes 0-7 take c[2j], lanes 8-15
// c[2j+1]), Z10-Z13 the four rows' c for the current sixteen groups. The pairs after the last sixteen
// groups, and an odd last group, as q8RowVNNI.

// Q8A_ROWC adds a pair of groups of the row at W into ACC, its c by permuting C with IDX.
#define Q8A_ROWC(W, IDX, C, ACC) \
	VMOVDQA32 Z5, Z8      \
	VPXORD    W, Z7, Z9   \
	VPDPBUSD  Z4, Z9, Z8  \
	VCVTDQ2PS Z8, Z8      \
	VPERMPS   C, IDX, Z9  \
	VMULPS    Z9, Z8, Z8  \
	VADDPS    Z8, ACC, ACC

// Q8A_PAIRC(off, IDX) is pair off/64 of the sixteen groups, all four rows.
#define Q8A_PAIRC(off, IDX) \
	VMOVDQU32 off(SI), Z4                       \
	VMOVDQU32 off(R13), Z5                      \
	Q8A_ROWC(off(DI), IDX, Z10, Z0)             \
	Q8A_ROWC(off(DI)(R8*1), IDX, Z11, Z1)       \
	Q8A_ROWC(off(DI)(R8*2), IDX, Z12, Z2)       \
	Q8A_ROWC(off(R10), IDX, Z13, Z3)

// Q8A_IDX sets IDX to lo in lanes 0-7 and hi in lanes 8-15 (K1).
#define Q8A_IDX(lo, hi, IDX) \
	MOVL         $lo, AX      \
	VPBROADCASTD AX, IDX      \
	MOVL         $hi, AX      \
	VPBROADCASTD AX, K1, IDX

// Q8A_IDX8 sets the eight pairs' permute indexes Z16-Z23 (K1 set).
#define Q8A_IDX8 \
	Q8A_IDX(0, 1, Z16)   \
	Q8A_IDX(2, 3, Z17)   \
	Q8A_IDX(4, 5, Z18)   \
	Q8A_IDX(6, 7, Z19)   \
	Q8A_IDX(8, 9, Z20)   \
	Q8A_IDX(10, 11, Z21) \
	Q8A_IDX(12, 13, Z22) \
	Q8A_IDX(14, 15, Z23)

// Q8A_PAIRS8(PAIR) runs PAIR (Q8A_PAIRC or Q8A_PAIRI) on the eight pairs of sixteen groups.
#define Q8A_PAIRS8(PAIR) \
	PAIR(0, Z16)   \
	PAIR(64, Z17)  \
	PAIR(128, Z18) \
	PAIR(192, Z19) \
	PAIR(256, Z20) \
	PAIR(320, Z21) \
	PAIR(384, Z22) \
	PAIR(448, Z23)

// Q8A_C4(S, T, ST, T3) sets Z10-Z13 to the sixteen scales at S times those at T, T + ST, T + 2 ST and T3
// (T + 3 ST): the sixteen groups' scale products of four rows (or four inputs).
#define Q8A_C4(S, T, ST, T3) \
	VMOVUPS S, Z6                \
	VMULPS  (T), Z6, Z10         \
	VMULPS  (T)(ST*1), Z6, Z11   \
	VMULPS  (T)(ST*2), Z6, Z12   \
	VMULPS  T3, Z6, Z13

// func q8Rows4VNNI(x *int8, corr *int32, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)
TEXT ·q8Rows4VNNI(SB), NOSPLIT, $0-72
	MOVQ x+0(FP), SI
	MOVQ corr+8(FP), R13
	MOVQ xs+16(FP), R14
	MOVQ w+24(FP), DI
	MOVQ stride+32(FP), R8
	MOVQ ws+40(FP), BX
	MOVQ sstride+48(FP), R9
	MOVQ groups+56(FP), CX
	MOVQ out+64(FP), DX
	Q8A_SETUP
	Q8A_IDX8
	LEAQ (R8)(R8*2), R10
	ADDQ DI, R10
	LEAQ (R9)(R9*2), AX
	ADDQ BX, AX
	MOVQ CX, R15
	SHRQ $4, R15
	JZ   c4pairs

c4block:
	Q8A_C4((R14), BX, R9, (AX))
	Q8A_PAIRS8(Q8A_PAIRC)
	ADDQ $512, SI
	ADDQ $512, R13
	ADDQ $64, R14
	ADDQ $512, DI
	ADDQ $512, R10
	ADDQ $64, BX
	ADDQ $64, AX
	DECQ R15
	JNZ  c4block

c4pairs:
	MOVQ CX, R15
	ANDQ $15, R15
	SHRQ $1, R15
	JZ   c4tail

c4pair:
	Q8A_LOAD2
	Q8A_ROW2((DI), (BX), 4(BX), Z0)
	Q8A_ROW2((DI)(R8*1), (BX)(R9*1), 4(BX)(R9*1), Z1)
	Q8A_ROW2((DI)(R8*2), (BX)(R9*2), 4(BX)(R9*2), Z2)
	Q8A_ROW2((R10), (AX), 4(AX), Z3)
	ADDQ $64, SI
	ADDQ $64, R13
	ADDQ $8, R14
	ADDQ $64, DI
	ADDQ $64, R10
	ADDQ $8, BX
	ADDQ $8, AX
	DECQ R15
	JNZ  c4pair

c4tail:
	TESTQ $1, CX
	JZ    c4done
	Q8A_LOAD1
	Q8A_ROW1((DI), (BX), Z0)
	Q8A_ROW1((DI)(R8*1), (BX)(R9*1), Z1)
	Q8A_ROW1((DI)(R8*2), (BX)(R9*2), Z2)
	Q8A_ROW1((R10), (AX), Z3)

c4done:
	Q8A_STORE4
	VZEROUPPER
	RET

// Four inputs of one row: x + k*xstride, corr + k*cstride, xs + k*sstride, for k < 4. Each weight pair is
// read and offset once for the four. Sixteen groups at a time, as q8Rows4VNNI: one multiply of the row's
// sixteen scales by each input's sixteen makes the scale products Q8A_IN2 makes a pair at a time (the
// same bits), Z10-Z13 for the four inputs, and one permute (indexes Z16-Z23) spreads a pair of them. The
// pairs after the last sixteen (and eight) groups and an odd last group as before; every output has
// q8RowVNNI's bits.

// Q8A_INC adds a pair of groups of one input (codes at X, corr at C) times the weight pair in Z4 into ACC,
// its scale products by permuting CK with IDX.
#define Q8A_INC(X, C, IDX, CK, ACC) \
	VMOVDQU32 C, Z8       \
	VPDPBUSD  X, Z4, Z8   \
	VCVTDQ2PS Z8, Z8      \
	VPERMPS   CK, IDX, Z9 \
	VMULPS    Z9, Z8, Z8  \
	VADDPS    Z8, ACC, ACC

// Q8A_PAIRI(off, IDX) is pair off/64 of the sixteen groups, all four inputs. It prefetches the weights 2 KiB
// ahead into L1 and 8 KiB ahead into L2 (a block's calls walk the rows in order).
#define Q8A_PAIRI(off, IDX) \
	PREFETCHT0 2048+off(DI)                              \
	PREFETCHT1 8192+off(DI)                              \
	VPXORD     off(DI), Z7, Z4                           \
	Q8A_INC(off(SI), off(R13), IDX, Z10, Z0)             \
	Q8A_INC(off(SI)(R8*1), off(R13)(R9*1), IDX, Z11, Z1) \
	Q8A_INC(off(SI)(R8*2), off(R13)(R9*2), IDX, Z12, Z2) \
	Q8A_INC(off(R10), off(R11), IDX, Z13, Z3)

// func q8Inputs4VNNI(x *int8, xstride uintptr, corr *int32, cstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)
// rows consecutive weight rows (from w, their scales from ws), row r's four sums at out[4r..4r+3]; the
// constants are set once per call.
TEXT ·q8Inputs4VNNI(SB), NOSPLIT, $0-88
	Q8A_SETUP
	Q8A_IDX8
	MOVQ w+48(FP), DI
	MOVQ ws+56(FP), BX
	MOVQ rows+72(FP), AX
	TESTQ AX, AX
	JZ    i4end

i4row: // DI and BX are at the row's weights and scales: where the last row's ended
	MOVQ   x+0(FP), SI
	MOVQ   xstride+8(FP), R8
	MOVQ   corr+16(FP), R13
	MOVQ   cstride+24(FP), R9
	MOVQ   xs+32(FP), R14
	MOVQ   sstride+40(FP), R12
	MOVQ   groups+64(FP), CX
	Q8A_ZERO4
	LEAQ   (R8)(R8*2), R10
	ADDQ   SI, R10
	LEAQ   (R9)(R9*2), R11
	ADDQ   R13, R11
	LEAQ   (R12)(R12*2), R15
	ADDQ   R14, R15
	MOVQ   CX, AX
	SHRQ   $4, AX
	JZ     i4half

i4block:
	Q8A_C4((BX), R14, R12, (R15))
	Q8A_PAIRS8(Q8A_PAIRI)
	ADDQ $512, SI
	ADDQ $512, R10
	ADDQ $512, R13
	ADDQ $512, R11
	ADDQ $64, R14
	ADDQ $64, R15
	ADDQ $512, DI
	ADDQ $64, BX
	DECQ AX
	JNZ  i4block

i4half: // eight groups left over (a 768-column row's 24 groups): half a block, the scales' lanes 8-15 zero
	TESTQ $8, CX
	JZ    i4pairs
	VMOVUPS (BX), Y6
	VMULPS  (R14), Y6, Y10
	VMULPS  (R14)(R12*1), Y6, Y11
	VMULPS  (R14)(R12*2), Y6, Y12
	VMULPS  (R15), Y6, Y13
	Q8A_PAIRI(0, Z16)
	Q8A_PAIRI(64, Z17)
	Q8A_PAIRI(128, Z18)
	Q8A_PAIRI(192, Z19)
	ADDQ $256, SI
	ADDQ $256, R10
	ADDQ $256, R13
	ADDQ $256, R11
	ADDQ $32, R14
	ADDQ $32, R15
	ADDQ $256, DI
	ADDQ $32, BX

i4pairs:
	MOVQ CX, AX
	ANDQ $7, AX
	SHRQ $1, AX
	JZ   i4tail

i4pair:
	VPXORD       (DI), Z7, Z4
	VBROADCASTSS (BX), Z6
	VBROADCASTSS 4(BX), K1, Z6
	Q8A_IN2((SI), (R13), (R14), 4(R14), Z0)
	Q8A_IN2((SI)(R8*1), (R13)(R9*1), (R14)(R12*1), 4(R14)(R12*1), Z1)
	Q8A_IN2((SI)(R8*2), (R13)(R9*2), (R14)(R12*2), 4(R14)(R12*2), Z2)
	Q8A_IN2((R10), (R11), (R15), 4(R15), Z3)
	ADDQ $64, SI
	ADDQ $64, R10
	ADDQ $64, R13
	ADDQ $64, R11
	ADDQ $8, R14
	ADDQ $8, R15
	ADDQ $64, DI
	ADDQ $8, BX
	DECQ AX
	JNZ  i4pair

i4tail:
	TESTQ $1, CX
	JZ    i4done
	VPXOR        (DI), Y7, Y4
	VBROADCASTSS (BX), Y6
	Q8A_IN1((SI), (R13), (R14), Z0)
	Q8A_IN1((SI)(R8*1), (R13)(R9*1), (R14)(R12*1), Z1)
	Q8A_IN1((SI)(R8*2), (R13)(R9*2), (R14)(R12*2), Z2)
	Q8A_IN1((R10), (R11), (R15), Z3)
	ADDQ $32, DI
	ADDQ $4, BX

i4done:
	MOVQ out+80(FP), DX
	Q8A_STORE4
	ADDQ $16, DX
	MOVQ DX, out+80(FP)
	DECQ rows+72(FP)
	JNZ  i4row

i4end:
	VZEROUPPER
	RET
