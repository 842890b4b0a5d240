#include "textflag.h"

// Dot-product kernels for AVX2 + FMA + F16C. Every kernel walks its elements in chunks of 8 and keeps
// two 8-lane accumulators, chunk k going to accumulator k%2 (within a scale group for the grouped
// kernels, whose group sums are then multiplied by the group's scale into one accumulator); the lanes are
// reduced as (0..3 + 4..7), then (0,1 + 2,3), then 0 + 1. The order depends only on the element count, so
// one output gets the same bits whatever batch it is computed in.

// The four-input grouped kernels (q8_0, fp8) share their argument layout (x, stride, w, scales, groups,
// group, out), their per-group partial sums Y4-Y11 and their scale step. (Defined before the first TEXT,
// where vet does not tie the argument names to one function.)

// GROUPED4_SETUP loads the arguments, sets R10-R12 to inputs 1-3 and clears the accumulators Y0-Y3.
#define GROUPED4_SETUP \
	MOVQ   x+0(FP), SI         \
	MOVQ   stride+8(FP), R8    \
	MOVQ   w+16(FP), DI        \
	MOVQ   scales+24(FP), BX   \
	MOVQ   groups+32(FP), CX   \
	MOVQ   group+40(FP), R9    \
	MOVQ   out+48(FP), DX      \
	INPUTS4

// INPUTS4 sets R10-R12 to the three inputs after SI (stride R8) and clears Y0-Y3.
#define INPUTS4 \
	LEAQ   (SI)(R8*1), R10  \
	LEAQ   (R10)(R8*1), R11 \
	LEAQ   (R11)(R8*1), R12 \
	VXORPS Y0, Y0, Y0       \
	VXORPS Y1, Y1, Y1       \
	VXORPS Y2, Y2, Y2       \
	VXORPS Y3, Y3, Y3

// GROUPED4_ZERO clears the partial sums for a new group.
#define GROUPED4_ZERO \
	VXORPS Y4, Y4, Y4    \
	VXORPS Y5, Y5, Y5    \
	VXORPS Y6, Y6, Y6    \
	VXORPS Y7, Y7, Y7    \
	VXORPS Y8, Y8, Y8    \
	VXORPS Y9, Y9, Y9    \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11

// GROUPED4_SCALE adds input k's (p0 + p1) times the group's scale into Y(k) and steps to the next scale.
#define GROUPED4_SCALE \
	VBROADCASTSS (BX), Y14     \
	VADDPS       Y5, Y4, Y4    \
	VFMADD231PS  Y14, Y4, Y0   \
	VADDPS       Y7, Y6, Y6    \
	VFMADD231PS  Y14, Y6, Y1   \
	VADDPS       Y9, Y8, Y8    \
	VFMADD231PS  Y14, Y8, Y2   \
	VADDPS       Y11, Y10, Y10 \
	VFMADD231PS  Y14, Y10, Y3  \
	ADDQ         $4, BX

// HSUM reduces the 8 lanes of Y0 into X0's low lane.
#define HSUM \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVHLPS     X0, X0, X1 \
	VADDPS       X1, X0, X0 \
	VMOVSHDUP    X0, X1     \
	VADDSS       X1, X0, X0

// The row-range kernels: rows consecutive weight rows of n elements (n a multiple of 8; for q8_0, groups
// groups of group each), each dotted with x and its sum stored at out[r]. One call streams a whole range
// of rows front to back (decode reads each weight once), with no Go code between rows.

// ROW_START points SI at x and CX at n for the next row and clears the accumulators Y0, Y1.
#define ROW_START \
	MOVQ   x+0(FP), SI \
	MOVQ   n+16(FP), CX \
	VXORPS Y0, Y0, Y0  \
	VXORPS Y1, Y1, Y1

// ROW_END reduces Y0 + Y1, stores the sum at (DX) and steps DX to the next output.
#define ROW_END \
	VADDPS Y1, Y0, Y0 \
	HSUM              \
	MOVSS  X0, (DX)   \
	ADDQ   $4, DX

// func rowsF32AVX(x, w *float32, n, rows int, out *float32)
TEXT ·rowsF32AVX(SB), NOSPLIT, $0-40
	MOVQ  w+8(FP), DI
	MOVQ  rows+24(FP), R9
	MOVQ  out+32(FP), DX
	TESTQ R9, R9
	JEQ   f32end

f32row:
	ROW_START

f32loop:
	CMPQ        CX, $16
	JLT         f32tail
	VMOVUPS     (SI), Y2
	VMOVUPS     32(SI), Y3
	VFMADD231PS (DI), Y2, Y0
	VFMADD231PS 32(DI), Y3, Y1
	ADDQ        $64, SI
	ADDQ        $64, DI
	SUBQ        $16, CX
	JMP         f32loop

f32tail:
	CMPQ        CX, $8
	JLT         f32done
	VMOVUPS     (SI), Y2
	VFMADD231PS (DI), Y2, Y0
	ADDQ        $32, DI

f32done:
	ROW_END
	DECQ R9
	JNE  f32row

f32end:
	VZEROUPPER
	RET

// func rowsF16AVX(x *float32, w *uint16, n, rows int, out *float32)
TEXT ·rowsF16AVX(SB), NOSPLIT, $0-40
	MOVQ  w+8(FP), DI
	MOVQ  rows+24(FP), R9
	MOVQ  out+32(FP), DX
	TESTQ R9, R9
	JEQ   f16end

f16row:
	ROW_START

f16loop:
	CMPQ        CX, $16
	JLT         f16tail
	VCVTPH2PS   (DI), Y2
	VCVTPH2PS   16(DI), Y3
	VFMADD231PS (SI), Y2, Y0
	VFMADD231PS 32(SI), Y3, Y1
	ADDQ        $64, SI
	ADDQ        $32, DI
	SUBQ        $16, CX
	JMP         f16loop

f16tail:
	CMPQ        CX, $8
	JLT         f16done
	VCVTPH2PS   (DI), Y2
	VFMADD231PS (SI), Y2, Y0
	ADDQ        $16, DI

f16done:
	ROW_END
	DECQ R9
	JNE  f16row

f16end:
	VZEROUPPER
	RET

// func rowsBF16AVX(x *float32, w *uint16, n, rows int, out *float32)
// A bfloat16 is the high half of a float32.
TEXT ·rowsBF16AVX(SB), NOSPLIT, $0-40
	MOVQ  w+8(FP), DI
	MOVQ  rows+24(FP), R9
	MOVQ  out+32(FP), DX
	TESTQ R9, R9
	JEQ   bf16end

bf16row:
	ROW_START

bf16loop:
	CMPQ        CX, $16
	JLT         bf16tail
	VPMOVZXWD   (DI), Y2
	VPMOVZXWD   16(DI), Y3
	VPSLLD      $16, Y2, Y2
	VPSLLD      $16, Y3, Y3
	VFMADD231PS (SI), Y2, Y0
	VFMADD231PS 32(SI), Y3, Y1
	ADDQ        $64, SI
	ADDQ        $32, DI
	SUBQ        $16, CX
	JMP         bf16loop

bf16tail:
	CMPQ        CX, $8
	JLT         bf16done
	VPMOVZXWD   (DI), Y2
	VPSLLD      $16, Y2, Y2
	VFMADD231PS (SI), Y2, Y0
	ADDQ        $16, DI

bf16done:
	ROW_END
	DECQ R9
	JNE  bf16row

bf16end:
	VZEROUPPER
	RET

// func rowsQ8AVX(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32)
// Each group's elements (group a multiple of 8) are summed, then multiplied by its scale into Y0; a
// row's groups*group weights and groups scales follow the previous row's.
TEXT ·rowsQ8AVX(SB), NOSPLIT, $0-56
	MOVQ  w+8(FP), DI
	MOVQ  scales+16(FP), BX
	MOVQ  group+32(FP), R8
	MOVQ  rows+40(FP), R9
	MOVQ  out+48(FP), R10
	TESTQ R9, R9
	JEQ   q8end

q8row:
	MOVQ   x+0(FP), SI
	MOVQ   groups+24(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ  CX, CX
	JEQ    q8done

q8group:
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ   R8, DX

q8loop:
	CMPQ        DX, $16
	JLT         q8tail
	VPMOVSXBD   (DI), Y3
	VPMOVSXBD   8(DI), Y4
	VCVTDQ2PS   Y3, Y3
	VCVTDQ2PS   Y4, Y4
	VFMADD231PS (SI), Y3, Y1
	VFMADD231PS 32(SI), Y4, Y2
	ADDQ        $64, SI
	ADDQ        $16, DI
	SUBQ        $16, DX
	JMP         q8loop

q8tail:
	CMPQ        DX, $8
	JLT         q8scale
	VPMOVSXBD   (DI), Y3
	VCVTDQ2PS   Y3, Y3
	VFMADD231PS (SI), Y3, Y1
	ADDQ        $32, SI
	ADDQ        $8, DI

q8scale:
	VADDPS       Y2, Y1, Y1
	VBROADCASTSS (BX), Y5
	VFMADD231PS  Y5, Y1, Y0
	ADDQ         $4, BX
	DECQ         CX
	JNE          q8group

q8done:
	HSUM
	MOVSS X0, (R10)
	ADDQ  $4, R10
	DECQ  R9
	JNE   q8row

q8end:
	VZEROUPPER
	RET

// FP8 turns 8 fp8-e4m3 bytes at (DI) into 8 floats in Y3, each 2^-8 times its value: the low 7 bits
// shifted left by 7 are a half with the same mantissa and an exponent 8 lower (subnormals included), and
// the sign moves to bit 15. X14 holds 0x007F and X15 0x0080 in every word.
#define FP8 \
	VPMOVZXBW (DI), X3     \
	VPAND     X14, X3, X4  \
	VPSLLW    $7, X4, X4   \
	VPAND     X15, X3, X3  \
	VPSLLW    $8, X3, X3   \
	VPOR      X3, X4, X3   \
	VCVTPH2PS X3, Y3

// func dotFP8AVX(x *float32, w *uint8, scales *float32, groups, group int) float32
// Like dotQ8AVX for fp8-e4m3; the sum is multiplied by 2^8 at the end (exact). The codes 0x7f and 0xff
// (NaN in e4m3) read as 480 and -480.
TEXT ·dotFP8AVX(SB), NOSPLIT, $0-44
	MOVQ         x+0(FP), SI
	MOVQ         w+8(FP), DI
	MOVQ         scales+16(FP), BX
	MOVQ         groups+24(FP), CX
	MOVQ         group+32(FP), R8
	MOVL         $0x007f007f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, X14
	MOVL         $0x00800080, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, X15
	VXORPS       Y0, Y0, Y0
	TESTQ        CX, CX
	JEQ          fp8done

fp8group:
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ   R8, DX

fp8loop:
	CMPQ        DX, $16
	JLT         fp8tail
	FP8
	VFMADD231PS (SI), Y3, Y1
	ADDQ        $8, DI
	FP8
	VFMADD231PS 32(SI), Y3, Y2
	ADDQ        $64, SI
	ADDQ        $8, DI
	SUBQ        $16, DX
	JMP         fp8loop

fp8tail:
	CMPQ        DX, $8
	JLT         fp8scale
	FP8
	VFMADD231PS (SI), Y3, Y1
	ADDQ        $32, SI
	ADDQ        $8, DI

fp8scale:
	VADDPS       Y2, Y1, Y1
	VBROADCASTSS (BX), Y5
	VFMADD231PS  Y5, Y1, Y0
	ADDQ         $4, BX
	DECQ         CX
	JNE          fp8group

fp8done:
	HSUM
	MOVL  $0x43800000, AX // 256.0
	VMOVD AX, X1
	VMULSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+40(FP)
	RET

// func cpuidF16C() bool
TEXT ·cpuidF16C(SB), NOSPLIT, $0-1
	MOVL  $1, AX
	MOVL  $0, CX
	CPUID
	SHRL  $29, CX
	ANDL  $1, CX
	MOVB  CX, ret+0(FP)
	RET

// Four inputs against one weight row: x rows at x, x+stride, x+2*stride, x+3*stride (stride in bytes),
// each with the two accumulators and the lane reduction of the one-row kernels, so every result has the
// bits the one-row kernel gives (the weight chunk is loaded and converted once for the four).

// HSUMTO reduces the 8 lanes of YA + YB into X(A)'s low lane and stores it at off(DX).
#define HSUMTO(YA, YB, XA, off) \
	VADDPS       YB, YA, YA  \
	VEXTRACTF128 $1, YA, X15 \
	VADDPS       X15, XA, XA \
	VMOVHLPS     XA, XA, X15 \
	VADDPS       X15, XA, XA \
	VMOVSHDUP    XA, X15     \
	VADDSS       X15, XA, XA \
	MOVSS        XA, off(DX)

// DOT4_ZERO clears the eight accumulators and sets R10-R12 to the rows after SI (stride R8).
#define DOT4_ZERO \
	INPUTS4                 \
	VXORPS Y4, Y4, Y4       \
	VXORPS Y5, Y5, Y5       \
	VXORPS Y6, Y6, Y6       \
	VXORPS Y7, Y7, Y7

// FMA2 adds Y8 (chunk 0) and Y9 (chunk 1) times the four rows' two chunks.
#define FMA2 \
	VFMADD231PS (SI), Y8, Y0   \
	VFMADD231PS 32(SI), Y9, Y1 \
	VFMADD231PS (R10), Y8, Y2  \
	VFMADD231PS 32(R10), Y9, Y3 \
	VFMADD231PS (R11), Y8, Y4  \
	VFMADD231PS 32(R11), Y9, Y5 \
	VFMADD231PS (R12), Y8, Y6  \
	VFMADD231PS 32(R12), Y9, Y7 \
	ADDQ        $64, SI        \
	ADDQ        $64, R10       \
	ADDQ        $64, R11       \
	ADDQ        $64, R12

#define FMA1 \
	VFMADD231PS (SI), Y8, Y0  \
	VFMADD231PS (R10), Y8, Y2 \
	VFMADD231PS (R11), Y8, Y4 \
	VFMADD231PS (R12), Y8, Y6

#define DOT4_EPILOGUE \
	HSUMTO(Y0, Y1, X0, 0)  \
	HSUMTO(Y2, Y3, X2, 4)  \
	HSUMTO(Y4, Y5, X4, 8)  \
	HSUMTO(Y6, Y7, X6, 12) \
	VZEROUPPER             \
	RET

// func dot4F32AVX(x *float32, stride uintptr, w *float32, n int, out *[4]float32)
TEXT ·dot4F32AVX(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ stride+8(FP), R8
	MOVQ w+16(FP), DI
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	DOT4_ZERO

d4f32loop:
	CMPQ    CX, $16
	JLT     d4f32tail
	VMOVUPS (DI), Y8
	VMOVUPS 32(DI), Y9
	FMA2
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     d4f32loop

d4f32tail:
	CMPQ    CX, $8
	JLT     d4f32done
	VMOVUPS (DI), Y8
	FMA1

d4f32done:
	DOT4_EPILOGUE

// func dot4F16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)
TEXT ·dot4F16AVX(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ stride+8(FP), R8
	MOVQ w+16(FP), DI
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	DOT4_ZERO

d4f16loop:
	CMPQ      CX, $16
	JLT       d4f16tail
	VCVTPH2PS (DI), Y8
	VCVTPH2PS 16(DI), Y9
	FMA2
	ADDQ      $32, DI
	SUBQ      $16, CX
	JMP       d4f16loop

d4f16tail:
	CMPQ      CX, $8
	JLT       d4f16done
	VCVTPH2PS (DI), Y8
	FMA1

d4f16done:
	DOT4_EPILOGUE

// func dot4BF16AVX(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)
TEXT ·dot4BF16AVX(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ stride+8(FP), R8
	MOVQ w+16(FP), DI
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	DOT4_ZERO

d4bf16loop:
	CMPQ      CX, $16
	JLT       d4bf16tail
	VPMOVZXWD (DI), Y8
	VPMOVZXWD 16(DI), Y9
	VPSLLD    $16, Y8, Y8
	VPSLLD    $16, Y9, Y9
	FMA2
	ADDQ      $32, DI
	SUBQ      $16, CX
	JMP       d4bf16loop

d4bf16tail:
	CMPQ      CX, $8
	JLT       d4bf16done
	VPMOVZXWD (DI), Y8
	VPSLLD    $16, Y8, Y8
	FMA1

d4bf16done:
	DOT4_EPILOGUE

// HSUM1TO reduces the 8 lanes of YA into XA's low lane and stores it at off(DX).
#define HSUM1TO(YA, XA, off) \
	VEXTRACTF128 $1, YA, X15 \
	VADDPS       X15, XA, XA \
	VMOVHLPS     XA, XA, X15 \
	VADDPS       X15, XA, XA \
	VMOVSHDUP    XA, X15     \
	VADDSS       X15, XA, XA \
	MOVSS        XA, off(DX)

// func dot4Q8AVX(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32)
// dotQ8AVX for four inputs: per group, partial sums Y4-Y11 (two per input), then input k's accumulator
// Y(k) += (p0 + p1) * scale.
TEXT ·dot4Q8AVX(SB), NOSPLIT, $0-56
	GROUPED4_SETUP
	TESTQ CX, CX
	JEQ   d4q8done

d4q8group:
	GROUPED4_ZERO
	MOVQ R9, AX

d4q8loop:
	CMPQ        AX, $16
	JLT         d4q8tail
	VPMOVSXBD   (DI), Y12
	VPMOVSXBD   8(DI), Y13
	VCVTDQ2PS   Y12, Y12
	VCVTDQ2PS   Y13, Y13
	VFMADD231PS (SI), Y12, Y4
	VFMADD231PS 32(SI), Y13, Y5
	VFMADD231PS (R10), Y12, Y6
	VFMADD231PS 32(R10), Y13, Y7
	VFMADD231PS (R11), Y12, Y8
	VFMADD231PS 32(R11), Y13, Y9
	VFMADD231PS (R12), Y12, Y10
	VFMADD231PS 32(R12), Y13, Y11
	ADDQ        $64, SI
	ADDQ        $64, R10
	ADDQ        $64, R11
	ADDQ        $64, R12
	ADDQ        $16, DI
	SUBQ        $16, AX
	JMP         d4q8loop

d4q8tail:
	CMPQ        AX, $8
	JLT         d4q8scale
	VPMOVSXBD   (DI), Y12
	VCVTDQ2PS   Y12, Y12
	VFMADD231PS (SI), Y12, Y4
	VFMADD231PS (R10), Y12, Y6
	VFMADD231PS (R11), Y12, Y8
	VFMADD231PS (R12), Y12, Y10
	ADDQ        $32, SI
	ADDQ        $32, R10
	ADDQ        $32, R11
	ADDQ        $32, R12
	ADDQ        $8, DI

d4q8scale:
	GROUPED4_SCALE
	DECQ CX
	JNE  d4q8group

d4q8done:
	HSUM1TO(Y0, X0, 0)
	HSUM1TO(Y1, X1, 4)
	HSUM1TO(Y2, X2, 8)
	HSUM1TO(Y3, X3, 12)
	VZEROUPPER
	RET

// Eight inputs against one weight row, with AVX-512VL's sixteen more vector registers (still 8 lanes
// wide): x rows at x + k*stride (bytes) for k < 8, each with the two accumulators Y(16+2k), Y(17+2k) and
// the lane reduction of the one-row kernels, so every result has the bits the one-row kernel gives. The
// weight chunk is loaded and converted once for the eight inputs, so a batch of 8 reads each weight row
// once per pass. Inputs 0-2 are at SI + {0,1,2}*R8, 3-5 at R10 + {0,1,2}*R8, 6-7 at R11 + {0,1}*R8.
// Each call takes rows consecutive weight rows (of n elements each) and stores each row's eight sums
// at out[8*r..8*r+7], so a block of rows costs one call.

// DOT8_SETUP sets R10, R11 and clears Y16-Y31.
#define DOT8_SETUP \
	LEAQ   (R8)(R8*2), AX    \
	LEAQ   (SI)(AX*1), R10   \
	LEAQ   (R10)(AX*1), R11  \
	VPXORD Y16, Y16, Y16     \
	VPXORD Y17, Y17, Y17     \
	VPXORD Y18, Y18, Y18     \
	VPXORD Y19, Y19, Y19     \
	VPXORD Y20, Y20, Y20     \
	VPXORD Y21, Y21, Y21     \
	VPXORD Y22, Y22, Y22     \
	VPXORD Y23, Y23, Y23     \
	VPXORD Y24, Y24, Y24     \
	VPXORD Y25, Y25, Y25     \
	VPXORD Y26, Y26, Y26     \
	VPXORD Y27, Y27, Y27     \
	VPXORD Y28, Y28, Y28     \
	VPXORD Y29, Y29, Y29     \
	VPXORD Y30, Y30, Y30     \
	VPXORD Y31, Y31, Y31

// FMA8x2 adds Y0 (chunk 0) and Y1 (chunk 1) times the eight inputs' two chunks and steps the inputs on.
#define FMA8x2 \
	VFMADD231PS (SI), Y0, Y16         \
	VFMADD231PS 32(SI), Y1, Y17       \
	VFMADD231PS (SI)(R8*1), Y0, Y18   \
	VFMADD231PS 32(SI)(R8*1), Y1, Y19 \
	VFMADD231PS (SI)(R8*2), Y0, Y20   \
	VFMADD231PS 32(SI)(R8*2), Y1, Y21 \
	VFMADD231PS (R10), Y0, Y22        \
	VFMADD231PS 32(R10), Y1, Y23      \
	VFMADD231PS (R10)(R8*1), Y0, Y24  \
	VFMADD231PS 32(R10)(R8*1), Y1, Y25 \
	VFMADD231PS (R10)(R8*2), Y0, Y26  \
	VFMADD231PS 32(R10)(R8*2), Y1, Y27 \
	VFMADD231PS (R11), Y0, Y28        \
	VFMADD231PS 32(R11), Y1, Y29      \
	VFMADD231PS (R11)(R8*1), Y0, Y30  \
	VFMADD231PS 32(R11)(R8*1), Y1, Y31 \
	ADDQ        $64, SI               \
	ADDQ        $64, R10              \
	ADDQ        $64, R11

// FMA8x1 adds Y0 times the eight inputs' next chunk into the first accumulators.
#define FMA8x1 \
	VFMADD231PS (SI), Y0, Y16        \
	VFMADD231PS (SI)(R8*1), Y0, Y18  \
	VFMADD231PS (SI)(R8*2), Y0, Y20  \
	VFMADD231PS (R10), Y0, Y22       \
	VFMADD231PS (R10)(R8*1), Y0, Y24 \
	VFMADD231PS (R10)(R8*2), Y0, Y26 \
	VFMADD231PS (R11), Y0, Y28       \
	VFMADD231PS (R11)(R8*1), Y0, Y30

// HSUM8TO reduces the 8 lanes of YA + YB (via Y2) as HSUMTO does and stores the sum at off(DX).
#define HSUM8TO(YA, YB, off) \
	VADDPS       YB, YA, Y2 \
	VEXTRACTF128 $1, Y2, X15 \
	VADDPS       X15, X2, X2 \
	VMOVHLPS     X2, X2, X15 \
	VADDPS       X15, X2, X2 \
	VMOVSHDUP    X2, X15     \
	VADDSS       X15, X2, X2 \
	MOVSS        X2, off(DX)

// DOT8_STORE stores a row's eight sums at DX and steps DX to the next row's.
#define DOT8_STORE \
	HSUM8TO(Y16, Y17, 0)  \
	HSUM8TO(Y18, Y19, 4)  \
	HSUM8TO(Y20, Y21, 8)  \
	HSUM8TO(Y22, Y23, 12) \
	HSUM8TO(Y24, Y25, 16) \
	HSUM8TO(Y26, Y27, 20) \
	HSUM8TO(Y28, Y29, 24) \
	HSUM8TO(Y30, Y31, 28) \
	ADDQ $32, DX

// Q8SCALE8 adds (YA + YB) times the group's scale (Y10) into YS and clears YA and YB for the next group.
#define Q8SCALE8(YA, YB, YS) \
	VADDPS      YB, YA, YA  \
	VFMADD231PS Y10, YA, YS \
	VPXORD      YA, YA, YA  \
	VPXORD      YB, YB, YB

// HSUM1TO8 reduces the 8 lanes of YA into XA's low lane (temp X15) and stores it at off(DX).
#define HSUM1TO8(YA, XA, off) \
	VEXTRACTF128 $1, YA, X15 \
	VADDPS       X15, XA, XA \
	VMOVHLPS     XA, XA, X15 \
	VADDPS       X15, XA, XA \
	VMOVSHDUP    XA, X15     \
	VADDSS       X15, XA, XA \
	MOVSS        XA, off(DX)

// func dot8Q8AVX512(x *float32, stride uintptr, w *int8, scales *float32, groups, group, rows int, out *float32)
// dot4Q8AVX for eight inputs: per group partial sums Y16-Y31 (two per input), then input k's accumulator
// Y(2+k) += (p0 + p1) * scale; rows consecutive rows, their weights and scales one after the other.
TEXT ·dot8Q8AVX512(SB), NOSPLIT, $0-64
	MOVQ  stride+8(FP), R8
	MOVQ  w+16(FP), DI
	MOVQ  scales+24(FP), BX
	MOVQ  group+40(FP), R9
	MOVQ  rows+48(FP), R12
	MOVQ  out+56(FP), DX
	TESTQ R12, R12
	JEQ   d8q8end

d8q8row:
	MOVQ   x+0(FP), SI
	MOVQ   groups+32(FP), CX
	DOT8_SETUP
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	TESTQ  CX, CX
	JEQ    d8q8done

d8q8group:
	MOVQ R9, AX

d8q8loop:
	CMPQ      AX, $16
	JLT       d8q8tail
	VPMOVSXBD (DI), Y0
	VPMOVSXBD 8(DI), Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	FMA8x2
	ADDQ      $16, DI
	SUBQ      $16, AX
	JMP       d8q8loop

d8q8tail:
	CMPQ      AX, $8
	JLT       d8q8scale
	VPMOVSXBD (DI), Y0
	VCVTDQ2PS Y0, Y0
	FMA8x1
	ADDQ      $32, SI
	ADDQ      $32, R10
	ADDQ      $32, R11
	ADDQ      $8, DI

d8q8scale:
	VBROADCASTSS (BX), Y10
	Q8SCALE8(Y16, Y17, Y2)
	Q8SCALE8(Y18, Y19, Y3)
	Q8SCALE8(Y20, Y21, Y4)
	Q8SCALE8(Y22, Y23, Y5)
	Q8SCALE8(Y24, Y25, Y6)
	Q8SCALE8(Y26, Y27, Y7)
	Q8SCALE8(Y28, Y29, Y8)
	Q8SCALE8(Y30, Y31, Y9)
	ADDQ         $4, BX
	DECQ         CX
	JNE          d8q8group

d8q8done:
	HSUM1TO8(Y2, X2, 0)
	HSUM1TO8(Y3, X3, 4)
	HSUM1TO8(Y4, X4, 8)
	HSUM1TO8(Y5, X5, 12)
	HSUM1TO8(Y6, X6, 16)
	HSUM1TO8(Y7, X7, 20)
	HSUM1TO8(Y8, X8, 24)
	HSUM1TO8(Y9, X9, 28)
	ADDQ $32, DX
	DECQ R12
	JNE  d8q8row

d8q8end:
	VZEROUPPER
	RET

// FP8TO turns the 8 fp8-e4m3 bytes at M into 8 floats in Y15 as FP8 does (each 2^-8 times its value),
// with X12 = 0x007F and X13 = 0x0080 in every word and X14 as scratch.
#define FP8TO(M) \
	VPMOVZXBW M, X15        \
	VPAND     X12, X15, X14 \
	VPSLLW    $7, X14, X14  \
	VPAND     X13, X15, X15 \
	VPSLLW    $8, X15, X15  \
	VPOR      X15, X14, X15 \
	VCVTPH2PS X15, Y15

// FP8CHUNK4 converts the chunk at M and adds it times the four inputs' chunk at off into A, B, C, D.
#define FP8CHUNK4(M, off, A, B, C, D) \
	FP8TO(M)                     \
	VFMADD231PS off(SI), Y15, A  \
	VFMADD231PS off(R10), Y15, B \
	VFMADD231PS off(R11), Y15, C \
	VFMADD231PS off(R12), Y15, D

// STEP4 moves the four input pointers on by n bytes.
#define STEP4(n) \
	ADDQ n, SI  \
	ADDQ n, R10 \
	ADDQ n, R11 \
	ADDQ n, R12

// HSUMFP8TO reduces the 8 lanes of YA as HSUM does, multiplies by 2^8 (X14 holds 256.0) and stores the
// result at off(DX).
#define HSUMFP8TO(YA, XA, off) \
	VEXTRACTF128 $1, YA, X15 \
	VADDPS       X15, XA, XA \
	VMOVHLPS     XA, XA, X15 \
	VADDPS       X15, XA, XA \
	VMOVSHDUP    XA, X15     \
	VADDSS       X15, XA, XA \
	VMULSS       X14, XA, XA \
	MOVSS        XA, off(DX)

// func dot4FP8AVX(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32)
// dotFP8AVX for four inputs (rows at x + k*stride): per scale region partial sums Y4-Y11 (two per input:
// chunk k of the region to Y(4+2i+k%2)), then input i's accumulator Y(i) += (p0 + p1) * scale; each
// result is the one-input kernel's bits.
TEXT ·dot4FP8AVX(SB), NOSPLIT, $0-56
	GROUPED4_SETUP
	MOVL         $0x007f007f, AX
	VMOVD        AX, X12
	VPBROADCASTD X12, X12
	MOVL         $0x00800080, AX
	VMOVD        AX, X13
	VPBROADCASTD X13, X13
	TESTQ        CX, CX
	JEQ          d4fp8done

d4fp8group:
	GROUPED4_ZERO
	MOVQ R9, AX

d4fp8loop:
	CMPQ        AX, $16
	JLT         d4fp8tail
	FP8CHUNK4((DI), 0, Y4, Y6, Y8, Y10)
	FP8CHUNK4(8(DI), 32, Y5, Y7, Y9, Y11)
	STEP4($64)
	ADDQ        $16, DI
	SUBQ        $16, AX
	JMP         d4fp8loop

d4fp8tail:
	CMPQ        AX, $8
	JLT         d4fp8scale
	FP8CHUNK4((DI), 0, Y4, Y6, Y8, Y10)
	STEP4($32)
	ADDQ        $8, DI

d4fp8scale:
	GROUPED4_SCALE
	DECQ CX
	JNE  d4fp8group

d4fp8done:
	MOVL  $0x43800000, AX // 256.0
	VMOVD AX, X14
	HSUMFP8TO(Y0, X0, 0)
	HSUMFP8TO(Y1, X1, 4)
	HSUMFP8TO(Y2, X2, 8)
	HSUMFP8TO(Y3, X3, 12)
	VZEROUPPER
	RET

// One input against four weight rows at w, w+stride, w+2*stride, w+3*stride (stride in bytes): the input
// chunk is loaded once for the four rows, and each row keeps the two accumulators and the lane reduction
// of the one-row kernel, so each result has the bits the one-row kernel gives for that row. Decode (one
// input per weight) then has eight independent FMA chains instead of two, where the one-row kernel waits
// on FMA latency. Decode takes rows a quarter of a row range apart, so that each of the four streams is
// long and sequential (rows next to each other make short interleaved streams that the hardware
// prefetchers follow badly: half the speed). (For f32 weights dot4F32AVX does this with the roles of x
// and w swapped.)

// ROWS4_SETUP sets R10-R12 to rows 1-3 (row 0 at DI, stride R8) and clears eight accumulators.
#define ROWS4_SETUP \
	LEAQ (DI)(R8*1), R10      \
	LEAQ (R10)(R8*1), R11     \
	LEAQ (R11)(R8*1), R12     \
	VXORPS Y0, Y0, Y0         \
	VXORPS Y1, Y1, Y1         \
	VXORPS Y2, Y2, Y2         \
	VXORPS Y3, Y3, Y3         \
	VXORPS Y4, Y4, Y4         \
	VXORPS Y5, Y5, Y5         \
	VXORPS Y6, Y6, Y6         \
	VXORPS Y7, Y7, Y7

// func rows4F16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)
TEXT ·rows4F16AVX(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ stride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	ROWS4_SETUP

r4f16loop:
	CMPQ        CX, $16
	JLT         r4f16tail
	VMOVUPS     (SI), Y8
	VMOVUPS     32(SI), Y9
	VCVTPH2PS   (DI), Y10
	VCVTPH2PS   16(DI), Y11
	VCVTPH2PS   (R10), Y12
	VCVTPH2PS   16(R10), Y13
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y11, Y1
	VFMADD231PS Y8, Y12, Y2
	VFMADD231PS Y9, Y13, Y3
	VCVTPH2PS   (R11), Y10
	VCVTPH2PS   16(R11), Y11
	VCVTPH2PS   (R12), Y12
	VCVTPH2PS   16(R12), Y13
	VFMADD231PS Y8, Y10, Y4
	VFMADD231PS Y9, Y11, Y5
	VFMADD231PS Y8, Y12, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ        $64, SI
	ADDQ        $32, DI
	ADDQ        $32, R10
	ADDQ        $32, R11
	ADDQ        $32, R12
	SUBQ        $16, CX
	JMP         r4f16loop

r4f16tail:
	CMPQ        CX, $8
	JLT         r4f16done
	VMOVUPS     (SI), Y8
	VCVTPH2PS   (DI), Y10
	VCVTPH2PS   (R10), Y12
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y8, Y12, Y2
	VCVTPH2PS   (R11), Y10
	VCVTPH2PS   (R12), Y12
	VFMADD231PS Y8, Y10, Y4
	VFMADD231PS Y8, Y12, Y6

r4f16done:
	DOT4_EPILOGUE

// BF16TO widens the 8 bfloat16s at off(R) into YD.
#define BF16TO(off, R, YD) \
	VPMOVZXWD off(R), YD \
	VPSLLD    $16, YD, YD

// func rows4BF16AVX(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)
TEXT ·rows4BF16AVX(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ stride+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	ROWS4_SETUP

r4bf16loop:
	CMPQ        CX, $16
	JLT         r4bf16tail
	VMOVUPS     (SI), Y8
	VMOVUPS     32(SI), Y9
	BF16TO(0, DI, Y10)
	BF16TO(16, DI, Y11)
	BF16TO(0, R10, Y12)
	BF16TO(16, R10, Y13)
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y11, Y1
	VFMADD231PS Y8, Y12, Y2
	VFMADD231PS Y9, Y13, Y3
	BF16TO(0, R11, Y10)
	BF16TO(16, R11, Y11)
	BF16TO(0, R12, Y12)
	BF16TO(16, R12, Y13)
	VFMADD231PS Y8, Y10, Y4
	VFMADD231PS Y9, Y11, Y5
	VFMADD231PS Y8, Y12, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ        $64, SI
	ADDQ        $32, DI
	ADDQ        $32, R10
	ADDQ        $32, R11
	ADDQ        $32, R12
	SUBQ        $16, CX
	JMP         r4bf16loop

r4bf16tail:
	CMPQ        CX, $8
	JLT         r4bf16done
	VMOVUPS     (SI), Y8
	BF16TO(0, DI, Y10)
	BF16TO(0, R10, Y12)
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y8, Y12, Y2
	BF16TO(0, R11, Y10)
	BF16TO(0, R12, Y12)
	VFMADD231PS Y8, Y10, Y4
	VFMADD231PS Y8, Y12, Y6

r4bf16done:
	DOT4_EPILOGUE

// Q8ROW adds the 16 int8 weights at (R) times Y12 (x chunk 0) and Y13 (chunk 1) into YA and YB.
#define Q8ROW(R, YA, YB) \
	VPMOVSXBD   (R), Y14      \
	VPMOVSXBD   8(R), Y15     \
	VCVTDQ2PS   Y14, Y14      \
	VCVTDQ2PS   Y15, Y15      \
	VFMADD231PS Y12, Y14, YA  \
	VFMADD231PS Y13, Y15, YB

// Q8ROW1 adds the 8 int8 weights at (R) times Y12 into YA.
#define Q8ROW1(R, YA) \
	VPMOVSXBD   (R), Y14     \
	VCVTDQ2PS   Y14, Y14     \
	VFMADD231PS Y12, Y14, YA

// Q8SCALE adds (YA + YB) times the scale at off into YS.
#define Q8SCALE(YA, YB, off, YS) \
	VADDPS       YB, YA, YA \
	VBROADCASTSS off, Y14   \
	VFMADD231PS  Y14, YA, YS

// func rows4Q8AVX(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32)
// dotQ8AVX for four rows: per group partial sums Y4-Y11 (two per row), then row k's accumulator
// Y(k) += (p0 + p1) * its scale; row k's scales are at scales + k*sstride (bytes).
TEXT ·rows4Q8AVX(SB), NOSPLIT, $0-64
	MOVQ   x+0(FP), SI
	MOVQ   w+8(FP), DI
	MOVQ   stride+16(FP), R8
	MOVQ   scales+24(FP), BX
	MOVQ   sstride+32(FP), R13
	MOVQ   groups+40(FP), CX
	MOVQ   group+48(FP), R9
	MOVQ   out+56(FP), DX
	LEAQ   (DI)(R8*1), R10
	LEAQ   (R10)(R8*1), R11
	LEAQ   (R11)(R8*1), R12
	LEAQ   (R13)(R13*2), R14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ  CX, CX
	JEQ    r4q8done

r4q8group:
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ   R9, AX

r4q8loop:
	CMPQ    AX, $16
	JLT     r4q8tail
	VMOVUPS (SI), Y12
	VMOVUPS 32(SI), Y13
	Q8ROW(DI, Y4, Y5)
	Q8ROW(R10, Y6, Y7)
	Q8ROW(R11, Y8, Y9)
	Q8ROW(R12, Y10, Y11)
	ADDQ    $64, SI
	ADDQ    $16, DI
	ADDQ    $16, R10
	ADDQ    $16, R11
	ADDQ    $16, R12
	SUBQ    $16, AX
	JMP     r4q8loop

r4q8tail:
	CMPQ    AX, $8
	JLT     r4q8scale
	VMOVUPS (SI), Y12
	Q8ROW1(DI, Y4)
	Q8ROW1(R10, Y6)
	Q8ROW1(R11, Y8)
	Q8ROW1(R12, Y10)
	ADDQ    $32, SI
	ADDQ    $8, DI
	ADDQ    $8, R10
	ADDQ    $8, R11
	ADDQ    $8, R12

r4q8scale:
	Q8SCALE(Y4, Y5, (BX), Y0)
	Q8SCALE(Y6, Y7, (BX)(R13*1), Y1)
	Q8SCALE(Y8, Y9, (BX)(R13*2), Y2)
	Q8SCALE(Y10, Y11, (BX)(R14*1), Y3)
	ADDQ $4, BX
	DECQ CX
	JNE  r4q8group

r4q8done:
	HSUM1TO(Y0, X0, 0)
	HSUM1TO(Y1, X1, 4)
	HSUM1TO(Y2, X2, 8)
	HSUM1TO(Y3, X3, 12)
	VZEROUPPER
	RET
