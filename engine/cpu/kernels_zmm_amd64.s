#include "textflag.h"

// The eight-input kernels for f32, f16 and bf16 weights in 16-lane AVX-512 registers. An accumulator Z
// holds the one-row kernels' two 8-lane accumulators side by side (lanes 0-7: the even chunks of 8,
// lanes 8-15: the odd ones), so one 16-element FMA does what two 8-lane FMAs do there, on the same
// operands in the same order. At the end an odd last chunk is added into the low half, the halves are
// added, and the lanes are reduced as (0..3 + 4..7), then (0,1 + 2,3), then 0 + 1, as in the one-row
// kernels; every sum has their bits. Eight inputs' reductions run together (a transpose of adds) and
// store the eight sums with one store.
//
// func dot8xxxZMM(x *float32, stride uintptr, w *T, n, rows int, out *float32): x rows at x + k*stride
// (bytes) for k < 8, rows consecutive weight rows of n elements (n a multiple of 8), row r's eight sums
// at out[8*r..8*r+7]. Rows go in pairs: each input chunk is loaded once for two rows (Z2-Z9), the row
// pair's 16 accumulators are Z16-Z23 (first row) and Z24-Z31 (second); an odd last row runs alone.
// Each step of a pair prefetches the same columns of the rows four ahead (the next pair but one) into L1
// and of the rows sixteen ahead (the next block) into L2: the hardware prefetchers follow a tile's short
// row streams poorly.

// SETUP points SI, R10, R11 at inputs 0, 3, 6 (stride R8), DI at the row at R13, CX at n.
#define SETUP \
	MOVQ   x+0(FP), SI      \
	MOVQ   n+32(FP), CX     \
	LEAQ   (R8)(R8*2), AX   \
	LEAQ   (SI)(AX*1), R10  \
	LEAQ   (R10)(AX*1), R11 \
	MOVQ   R13, DI

// ZERO16 clears the accumulators Z16-Z31.
#define ZERO16 \
	VPXORD Z16, Z16, Z16    \
	VPXORD Z17, Z17, Z17    \
	VPXORD Z18, Z18, Z18    \
	VPXORD Z19, Z19, Z19    \
	VPXORD Z20, Z20, Z20    \
	VPXORD Z21, Z21, Z21    \
	VPXORD Z22, Z22, Z22    \
	VPXORD Z23, Z23, Z23    \
	VPXORD Z24, Z24, Z24    \
	VPXORD Z25, Z25, Z25    \
	VPXORD Z26, Z26, Z26    \
	VPXORD Z27, Z27, Z27    \
	VPXORD Z28, Z28, Z28    \
	VPXORD Z29, Z29, Z29    \
	VPXORD Z30, Z30, Z30    \
	VPXORD Z31, Z31, Z31

// PAIR16 adds Z0 (first row's 16 elements) and Z1 (second row's) times the eight inputs' next 16
// elements into Z16-Z23 and Z24-Z31, and steps the inputs on.
#define PAIR16 \
	VMOVUPS     (SI), Z2            \
	VMOVUPS     (SI)(R8*1), Z3      \
	VMOVUPS     (SI)(R8*2), Z4      \
	VMOVUPS     (R10), Z5           \
	VFMADD231PS Z2, Z0, Z16         \
	VFMADD231PS Z2, Z1, Z24         \
	VMOVUPS     (R10)(R8*1), Z6     \
	VFMADD231PS Z3, Z0, Z17         \
	VFMADD231PS Z3, Z1, Z25         \
	VMOVUPS     (R10)(R8*2), Z7     \
	VFMADD231PS Z4, Z0, Z18         \
	VFMADD231PS Z4, Z1, Z26         \
	VMOVUPS     (R11), Z8           \
	VFMADD231PS Z5, Z0, Z19         \
	VFMADD231PS Z5, Z1, Z27         \
	VMOVUPS     (R11)(R8*1), Z9     \
	VFMADD231PS Z6, Z0, Z20         \
	VFMADD231PS Z6, Z1, Z28         \
	VFMADD231PS Z7, Z0, Z21         \
	VFMADD231PS Z7, Z1, Z29         \
	VFMADD231PS Z8, Z0, Z22         \
	VFMADD231PS Z8, Z1, Z30         \
	VFMADD231PS Z9, Z0, Z23         \
	VFMADD231PS Z9, Z1, Z31         \
	ADDQ        $64, SI             \
	ADDQ        $64, R10            \
	ADDQ        $64, R11

// ONE16 adds Z0 times the eight inputs' next 16 elements into Z16-Z23 and steps the inputs on.
#define ONE16 \
	VFMADD231PS (SI), Z0, Z16        \
	VFMADD231PS (SI)(R8*1), Z0, Z17  \
	VFMADD231PS (SI)(R8*2), Z0, Z18  \
	VFMADD231PS (R10), Z0, Z19       \
	VFMADD231PS (R10)(R8*1), Z0, Z20 \
	VFMADD231PS (R10)(R8*2), Z0, Z21 \
	VFMADD231PS (R11), Z0, Z22       \
	VFMADD231PS (R11)(R8*1), Z0, Z23 \
	ADDQ        $64, SI              \
	ADDQ        $64, R10             \
	ADDQ        $64, R11

// FOLD makes YA the sum of ZA's halves (Y2 as scratch).
#define FOLD(ZA, YA) \
	VEXTRACTF64X4 $1, ZA, Y2 \
	VADDPS        Y2, YA, YA

// FOLDTAIL adds YW (the weight row's last chunk) times the chunk at M into ZA's low half, then folds.
#define FOLDTAIL(ZA, YA, YW, M) \
	VEXTRACTF64X4 $1, ZA, Y2 \
	VFMADD231PS   M, YW, YA  \
	VADDPS        Y2, YA, YA

// FOLD8 and FOLD8B fold the first row's accumulators Z16-Z23 and the second's Z24-Z31.
#define FOLD8 \
	FOLD(Z16, Y16) \
	FOLD(Z17, Y17) \
	FOLD(Z18, Y18) \
	FOLD(Z19, Y19) \
	FOLD(Z20, Y20) \
	FOLD(Z21, Y21) \
	FOLD(Z22, Y22) \
	FOLD(Z23, Y23)

#define FOLD8B \
	FOLD(Z24, Y24) \
	FOLD(Z25, Y25) \
	FOLD(Z26, Y26) \
	FOLD(Z27, Y27) \
	FOLD(Z28, Y28) \
	FOLD(Z29, Y29) \
	FOLD(Z30, Y30) \
	FOLD(Z31, Y31)

// FOLD8_TAIL and FOLD8B_TAIL first add the weight row's last chunk YW times the inputs' last chunk.
#define FOLD8_TAIL(YW) \
	FOLDTAIL(Z16, Y16, YW, (SI))        \
	FOLDTAIL(Z17, Y17, YW, (SI)(R8*1))  \
	FOLDTAIL(Z18, Y18, YW, (SI)(R8*2))  \
	FOLDTAIL(Z19, Y19, YW, (R10))       \
	FOLDTAIL(Z20, Y20, YW, (R10)(R8*1)) \
	FOLDTAIL(Z21, Y21, YW, (R10)(R8*2)) \
	FOLDTAIL(Z22, Y22, YW, (R11))       \
	FOLDTAIL(Z23, Y23, YW, (R11)(R8*1))

#define FOLD8B_TAIL(YW) \
	FOLDTAIL(Z24, Y24, YW, (SI))        \
	FOLDTAIL(Z25, Y25, YW, (SI)(R8*1))  \
	FOLDTAIL(Z26, Y26, YW, (SI)(R8*2))  \
	FOLDTAIL(Z27, Y27, YW, (R10))       \
	FOLDTAIL(Z28, Y28, YW, (R10)(R8*1)) \
	FOLDTAIL(Z29, Y29, YW, (R10)(R8*2)) \
	FOLDTAIL(Z30, Y30, YW, (R11))       \
	FOLDTAIL(Z31, Y31, YW, (R11)(R8*1))

// RED8 reduces the 8 lanes of each of A0-A7 (one input each) and stores the eight sums at off(DX).
#define RED8(A0, A1, A2, A3, A4, A5, A6, A7, off) \
	RED8SUMS(A0, A1, A2, A3, A4, A5, A6, A7) \
	VMOVUPS Y8, off(DX)

// RED8SUMS reduces the 8 lanes of each of A0-A7 (one input each) into Y8's lanes 0-7 (Y2-Y9 as
// scratch). Each add pairs the operands the one-row kernels' reduction pairs.
#define RED8SUMS(A0, A1, A2, A3, A4, A5, A6, A7) \
	VSHUFF32X4 $0, A4, A0, Y2    \
	VSHUFF32X4 $3, A4, A0, Y3    \
	VADDPS     Y3, Y2, Y2        \
	VSHUFF32X4 $0, A5, A1, Y3    \
	VSHUFF32X4 $3, A5, A1, Y4    \
	VADDPS     Y4, Y3, Y3        \
	VSHUFF32X4 $0, A6, A2, Y4    \
	VSHUFF32X4 $3, A6, A2, Y5    \
	VADDPS     Y5, Y4, Y4        \
	VSHUFF32X4 $0, A7, A3, Y5    \
	VSHUFF32X4 $3, A7, A3, Y6    \
	VADDPS     Y6, Y5, Y5        \
	VSHUFPS    $0x44, Y3, Y2, Y6 \
	VSHUFPS    $0xEE, Y3, Y2, Y7 \
	VADDPS     Y7, Y6, Y6        \
	VSHUFPS    $0x44, Y5, Y4, Y7 \
	VSHUFPS    $0xEE, Y5, Y4, Y8 \
	VADDPS     Y8, Y7, Y7        \
	VSHUFPS    $0x88, Y7, Y6, Y8 \
	VSHUFPS    $0xDD, Y7, Y6, Y9 \
	VADDPS     Y9, Y8, Y8

#define RED_FIRST RED8(Y16, Y17, Y18, Y19, Y20, Y21, Y22, Y23, 0)
#define RED_SECOND RED8(Y24, Y25, Y26, Y27, Y28, Y29, Y30, Y31, 32)

// PROLOGUE loads the arguments shared by the three kernels: R13 is the next row (or pair), R9 the
// weight rows' stride, R14 sixteen strides (the L2 prefetch's distance), R12 the rows left, DX the next
// output.
#define PROLOGUE \
	MOVQ stride+8(FP), R8   \
	MOVQ w+16(FP), R13      \
	MOVQ wstride+24(FP), R9 \
	MOVQ rows+40(FP), R12   \
	MOVQ out+64(FP), DX     \
	MOVQ R9, R14            \
	SHLQ $4, R14

// ACC_ADDR points AX at the saved accumulators of the next row: acc + 512 * (rows done).
#define ACC_ADDR \
	MOVQ rows+40(FP), AX \
	SUBQ R12, AX         \
	SHLQ $9, AX          \
	ADDQ acc+48(FP), AX

// LOAD8ACC and SAVE8ACC move eight accumulators from and to the 512 bytes at off(AX).
#define LOAD8ACC(A0, A1, A2, A3, A4, A5, A6, A7, off) \
	VMOVUPS off(AX), A0       \
	VMOVUPS off+64(AX), A1    \
	VMOVUPS off+128(AX), A2   \
	VMOVUPS off+192(AX), A3   \
	VMOVUPS off+256(AX), A4   \
	VMOVUPS off+320(AX), A5   \
	VMOVUPS off+384(AX), A6   \
	VMOVUPS off+448(AX), A7

#define SAVE8ACC(A0, A1, A2, A3, A4, A5, A6, A7, off) \
	VMOVUPS A0, off(AX)       \
	VMOVUPS A1, off+64(AX)    \
	VMOVUPS A2, off+128(AX)   \
	VMOVUPS A3, off+192(AX)   \
	VMOVUPS A4, off+256(AX)   \
	VMOVUPS A5, off+320(AX)   \
	VMOVUPS A6, off+384(AX)   \
	VMOVUPS A7, off+448(AX)


// func dot8F32ZMM(x *float32, stride uintptr, w *float32, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)
TEXT ·dot8F32ZMM(SB), NOSPLIT, $0-72
	PROLOGUE

f32zpair:
	CMPQ  R12, $2
	JLT   f32zone
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   f32zpload
	ZERO16
	JMP   f32zpgo

f32zpload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	LOAD8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)

f32zpgo:
	LEAQ (DI)(R9*1), BX

f32zploop:
	CMPQ CX, $16
	JLT  f32zpend
	PREFETCHT0 (DI)(R9*4)
	PREFETCHT0 (BX)(R9*4)
	PREFETCHT1 (DI)(R14*1)
	PREFETCHT1 (BX)(R14*1)
	VMOVUPS (DI), Z0
	VMOVUPS (BX), Z1
	PAIR16
	ADDQ $64, DI
	ADDQ $64, BX
	SUBQ $16, CX
	JMP  f32zploop

f32zpend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   f32zpsave
	CMPQ  CX, $8
	JLT   f32zpfold
	VMOVUPS (DI), Y0
	VMOVUPS (BX), Y1
	FOLD8_TAIL(Y0)
	FOLD8B_TAIL(Y1)
	JMP  f32zpred

f32zpfold:
	FOLD8
	FOLD8B

f32zpred:
	RED_FIRST
	RED_SECOND
	ADDQ $64, DX

f32zpnext:
	LEAQ (R13)(R9*2), R13
	SUBQ $2, R12
	JMP  f32zpair

f32zpsave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	SAVE8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)
	JMP f32zpnext

f32zone:
	TESTQ R12, R12
	JEQ   f32zend
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   f32zoload
	ZERO16
	JMP   f32zoloop

f32zoload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

f32zoloop:
	CMPQ CX, $16
	JLT  f32zoend
	VMOVUPS (DI), Z0
	ONE16
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  f32zoloop

f32zoend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   f32zosave
	CMPQ  CX, $8
	JLT   f32zofold
	VMOVUPS (DI), Y0
	FOLD8_TAIL(Y0)
	JMP  f32zored

f32zofold:
	FOLD8

f32zored:
	RED_FIRST
	JMP f32zend

f32zosave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

f32zend:
	VZEROUPPER
	RET

// func dot8F16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)
TEXT ·dot8F16ZMM(SB), NOSPLIT, $0-72
	PROLOGUE

f16zpair:
	CMPQ  R12, $2
	JLT   f16zone
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   f16zpload
	ZERO16
	JMP   f16zpgo

f16zpload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	LOAD8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)

f16zpgo:
	LEAQ (DI)(R9*1), BX

f16zploop:
	CMPQ CX, $16
	JLT  f16zpend
	PREFETCHT0 (DI)(R9*4)
	PREFETCHT0 (BX)(R9*4)
	PREFETCHT1 (DI)(R14*1)
	PREFETCHT1 (BX)(R14*1)
	VCVTPH2PS (DI), Z0
	VCVTPH2PS (BX), Z1
	PAIR16
	ADDQ $32, DI
	ADDQ $32, BX
	SUBQ $16, CX
	JMP  f16zploop

f16zpend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   f16zpsave
	CMPQ  CX, $8
	JLT   f16zpfold
	VCVTPH2PS (DI), Y0
	VCVTPH2PS (BX), Y1
	FOLD8_TAIL(Y0)
	FOLD8B_TAIL(Y1)
	JMP  f16zpred

f16zpfold:
	FOLD8
	FOLD8B

f16zpred:
	RED_FIRST
	RED_SECOND
	ADDQ $64, DX

f16zpnext:
	LEAQ (R13)(R9*2), R13
	SUBQ $2, R12
	JMP  f16zpair

f16zpsave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	SAVE8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)
	JMP f16zpnext

f16zone:
	TESTQ R12, R12
	JEQ   f16zend
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   f16zoload
	ZERO16
	JMP   f16zoloop

f16zoload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

f16zoloop:
	CMPQ CX, $16
	JLT  f16zoend
	VCVTPH2PS (DI), Z0
	ONE16
	ADDQ $32, DI
	SUBQ $16, CX
	JMP  f16zoloop

f16zoend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   f16zosave
	CMPQ  CX, $8
	JLT   f16zofold
	VCVTPH2PS (DI), Y0
	FOLD8_TAIL(Y0)
	JMP  f16zored

f16zofold:
	FOLD8

f16zored:
	RED_FIRST
	JMP f16zend

f16zosave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

f16zend:
	VZEROUPPER
	RET

// func dot8BF16ZMM(x *float32, stride uintptr, w *uint16, wstride uintptr, n, rows int, acc *float32, flags int, out *float32)
TEXT ·dot8BF16ZMM(SB), NOSPLIT, $0-72
	PROLOGUE

bf16zpair:
	CMPQ  R12, $2
	JLT   bf16zone
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   bf16zpload
	ZERO16
	JMP   bf16zpgo

bf16zpload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	LOAD8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)

bf16zpgo:
	LEAQ (DI)(R9*1), BX

bf16zploop:
	CMPQ CX, $16
	JLT  bf16zpend
	PREFETCHT0 (DI)(R9*4)
	PREFETCHT0 (BX)(R9*4)
	PREFETCHT1 (DI)(R14*1)
	PREFETCHT1 (BX)(R14*1)
	VPMOVZXWD (DI), Z0
	VPMOVZXWD (BX), Z1
	VPSLLD    $16, Z0, Z0
	VPSLLD    $16, Z1, Z1
	PAIR16
	ADDQ $32, DI
	ADDQ $32, BX
	SUBQ $16, CX
	JMP  bf16zploop

bf16zpend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   bf16zpsave
	CMPQ  CX, $8
	JLT   bf16zpfold
	VPMOVZXWD (DI), Y0
	VPMOVZXWD (BX), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	FOLD8_TAIL(Y0)
	FOLD8B_TAIL(Y1)
	JMP  bf16zpred

bf16zpfold:
	FOLD8
	FOLD8B

bf16zpred:
	RED_FIRST
	RED_SECOND
	ADDQ $64, DX

bf16zpnext:
	LEAQ (R13)(R9*2), R13
	SUBQ $2, R12
	JMP  bf16zpair

bf16zpsave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)
	SAVE8ACC(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, 512)
	JMP bf16zpnext

bf16zone:
	TESTQ R12, R12
	JEQ   bf16zend
	SETUP
	MOVQ  flags+56(FP), AX
	TESTQ $1, AX
	JNE   bf16zoload
	ZERO16
	JMP   bf16zoloop

bf16zoload:
	ACC_ADDR
	LOAD8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

bf16zoloop:
	CMPQ CX, $16
	JLT  bf16zoend
	VPMOVZXWD (DI), Z0
	VPSLLD    $16, Z0, Z0
	ONE16
	ADDQ $32, DI
	SUBQ $16, CX
	JMP  bf16zoloop

bf16zoend:
	MOVQ  flags+56(FP), AX
	TESTQ $2, AX
	JNE   bf16zosave
	CMPQ  CX, $8
	JLT   bf16zofold
	VPMOVZXWD (DI), Y0
	VPSLLD    $16, Y0, Y0
	FOLD8_TAIL(Y0)
	JMP  bf16zored

bf16zofold:
	FOLD8

bf16zored:
	RED_FIRST
	JMP bf16zend

bf16zosave:
	ACC_ADDR
	SAVE8ACC(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, 0)

bf16zend:
	VZEROUPPER
	RET

// The eight-input fp8-e4m3 kernel: dot4FP8AVX (kernels_amd64.s) for eight inputs, 16 lanes at a time. A
// scale region's partial sums Z16-Z23 (one per input) hold the one-row kernel's two 8-lane partial sums
// side by side (lanes 0-7: the region's even chunks of 8, lanes 8-15: the odd ones); at the region's
// end an odd last chunk is added into the low half, the halves are added (p0 + p1) and times the
// region's scale into input k's 8-lane accumulator Y(24+k). The lanes are reduced as in RED8 and the sums
// multiplied by 2^8 (exact), as the one-row kernel does; every sum has its bits.
//
// A column tile (kernels.go, fp8Tiles8) runs it on part of a row: flags accLoad takes the accumulators
// from acc+512, accCont starts the first region from the partial sums at acc (a region split between
// tiles), accOpen leaves the last region unfinished with its partial sums stored at acc, and accSave
// stores the accumulators at acc+512 instead of the eight sums.

// FP8X16 turns the 16 fp8-e4m3 bytes at (DI) into 16 floats in Z0, each 2^-8 times its value, as the
// AVX2 kernels' FP8 does 8 (Y14 holds 0x007F and Y15 0x0080 in every word; Y1 as scratch).
#define FP8X16 \
	VPMOVZXBW (DI), Y0    \
	VPAND     Y14, Y0, Y1 \
	VPSLLW    $7, Y1, Y1  \
	VPAND     Y15, Y0, Y0 \
	VPSLLW    $8, Y0, Y0  \
	VPOR      Y0, Y1, Y0  \
	VCVTPH2PS Y0, Z0

// FP8X8 does the same for the 8 bytes at (DI) into Y0.
#define FP8X8 \
	VPMOVZXBW (DI), X0    \
	VPAND     X14, X0, X1 \
	VPSLLW    $7, X1, X1  \
	VPAND     X15, X0, X0 \
	VPSLLW    $8, X0, X0  \
	VPOR      X0, X1, X0  \
	VCVTPH2PS X0, Y0

// FP8STEP adds the row's next 16 elements times the eight inputs' into Z16-Z23 and steps on.
#define FP8STEP \
	FP8X16 \
	ONE16  \
	ADDQ $16, DI

// func dot8FP8ZMM(x *float32, stride uintptr, w *uint8, wstride uintptr, scales *float32, groups, group int, acc *float32, flags int, out *[8]float32)
// groups regions of group elements (a multiple of 8) of one weight row, input k at x + k*stride (bytes).
// Every 64 bytes of the row it prefetches the same columns of the row four rows on (wstride bytes apart)
// into L1 and of the row sixteen on into L2, as the f16 kernels do: a tile's short row streams from
// memory ran at 2/3 of the speed without.
TEXT ·dot8FP8ZMM(SB), NOSPLIT, $0-80
	MOVQ         x+0(FP), SI
	MOVQ         stride+8(FP), R8
	MOVQ         w+16(FP), DI
	MOVQ         wstride+24(FP), R14
	MOVQ         scales+32(FP), BX
	MOVQ         groups+40(FP), CX
	MOVQ         group+48(FP), R9
	MOVQ         acc+56(FP), R12
	MOVQ         flags+64(FP), R13
	MOVQ         out+72(FP), DX
	MOVQ         R14, R15
	SHLQ         $4, R15
	LEAQ         (R8)(R8*2), AX
	LEAQ         (SI)(AX*1), R10
	LEAQ         (R10)(AX*1), R11
	MOVL         $0x007f007f, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	MOVL         $0x00800080, AX
	VMOVD        AX, X15
	VPBROADCASTD X15, Y15
	TESTQ        $1, R13
	JNE          fp8zload
	VPXORD       Y24, Y24, Y24
	VPXORD       Y25, Y25, Y25
	VPXORD       Y26, Y26, Y26
	VPXORD       Y27, Y27, Y27
	VPXORD       Y28, Y28, Y28
	VPXORD       Y29, Y29, Y29
	VPXORD       Y30, Y30, Y30
	VPXORD       Y31, Y31, Y31
	JMP          fp8zstart

fp8zload:
	VMOVUPS 512(R12), Y24
	VMOVUPS 544(R12), Y25
	VMOVUPS 576(R12), Y26
	VMOVUPS 608(R12), Y27
	VMOVUPS 640(R12), Y28
	VMOVUPS 672(R12), Y29
	VMOVUPS 704(R12), Y30
	VMOVUPS 736(R12), Y31

fp8zstart:
	TESTQ CX, CX
	JEQ   fp8zdone
	TESTQ $4, R13
	JEQ   fp8zgroup
	VMOVUPS (R12), Z16
	VMOVUPS 64(R12), Z17
	VMOVUPS 128(R12), Z18
	VMOVUPS 192(R12), Z19
	VMOVUPS 256(R12), Z20
	VMOVUPS 320(R12), Z21
	VMOVUPS 384(R12), Z22
	VMOVUPS 448(R12), Z23
	JMP     fp8zregion

fp8zgroup:
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

fp8zregion:
	MOVQ R9, AX

fp8zloop64:
	CMPQ       AX, $64
	JLT        fp8zloop
	PREFETCHT0 (DI)(R14*4)
	PREFETCHT1 (DI)(R15*1)
	FP8STEP
	FP8STEP
	FP8STEP
	FP8STEP
	SUBQ       $64, AX
	JMP        fp8zloop64

fp8zloop:
	CMPQ AX, $16
	JLT  fp8zend
	FP8STEP
	SUBQ $16, AX
	JMP  fp8zloop

fp8zend:
	CMPQ  CX, $1
	JNE   fp8ztail
	TESTQ $8, R13
	JNE   fp8zopen

fp8ztail:
	CMPQ AX, $8
	JLT  fp8zfold
	FP8X8
	FOLD8_TAIL(Y0)
	ADDQ $32, SI
	ADDQ $32, R10
	ADDQ $32, R11
	ADDQ $8, DI
	JMP  fp8zscale

fp8zfold:
	FOLD8

fp8zscale:
	VBROADCASTSS (BX), Y3
	VFMADD231PS  Y3, Y16, Y24
	VFMADD231PS  Y3, Y17, Y25
	VFMADD231PS  Y3, Y18, Y26
	VFMADD231PS  Y3, Y19, Y27
	VFMADD231PS  Y3, Y20, Y28
	VFMADD231PS  Y3, Y21, Y29
	VFMADD231PS  Y3, Y22, Y30
	VFMADD231PS  Y3, Y23, Y31
	ADDQ         $4, BX
	DECQ         CX
	JNE          fp8zgroup

fp8zdone:
	TESTQ        $2, R13
	JNE          fp8zsave
	RED8SUMS(Y24, Y25, Y26, Y27, Y28, Y29, Y30, Y31)
	MOVL         $0x43800000, AX // 256.0
	VMOVD        AX, X10
	VBROADCASTSS X10, Y10
	VMULPS       Y10, Y8, Y8
	VMOVUPS      Y8, (DX)
	VZEROUPPER
	RET

fp8zopen:
	VMOVUPS Z16, (R12)
	VMOVUPS Z17, 64(R12)
	VMOVUPS Z18, 128(R12)
	VMOVUPS Z19, 192(R12)
	VMOVUPS Z20, 256(R12)
	VMOVUPS Z21, 320(R12)
	VMOVUPS Z22, 384(R12)
	VMOVUPS Z23, 448(R12)

fp8zsave:
	VMOVUPS Y24, 512(R12)
	VMOVUPS Y25, 544(R12)
	VMOVUPS Y26, 576(R12)
	VMOVUPS Y27, 608(R12)
	VMOVUPS Y28, 640(R12)
	VMOVUPS Y29, 672(R12)
	VMOVUPS Y30, 704(R12)
	VMOVUPS Y31, 736(R12)
	VZEROUPPER
	RET
