#include "textflag.h"

// Dot-product kernels for arm64 NEON (ASIMD). n is a multiple of 8. Every kernel keeps four 4-lane
// accumulators per output: each 16 elements go 0-3, 4-7, 8-11, 12-15 to accumulators 0, 1, 2, 3 (a last 8
// to 0, 1), with fused multiply-adds; then (a0 + a2) + (a1 + a3), then lanes (0 + 1) + (2 + 3). The order
// depends only on n, so the one-row, four-row and four-input kernels give one output the same bits.
//
// Go's assembler has no mnemonics for NEON's float arithmetic and conversions, so those are WORDs, each
// macro naming its instruction; register arguments are vector register numbers.

// fadd vd.4s, vn.4s, vm.4s
#define FADD4(m, n, d) WORD $(0x4e20d400 | ((m)<<16) | ((n)<<5) | (d))
// faddp vd.4s, vn.4s, vm.4s
#define FADDP4(m, n, d) WORD $(0x6e20d400 | ((m)<<16) | ((n)<<5) | (d))
// faddp sd, vn.2s
#define FADDP2S(n, d) WORD $(0x7e30d800 | ((n)<<5) | (d))
// fmla vd.4s, vn.4s, vm.4s: vd += vn * vm
#define FMLA4(m, n, d) WORD $(0x4e20cc00 | ((m)<<16) | ((n)<<5) | (d))
// fcvtl vd.4s, vn.4h: the low four halves of vn as floats
#define FCVTL(n, d) WORD $(0x0e217800 | ((n)<<5) | (d))
// fcvtl2 vd.4s, vn.8h: the high four halves
#define FCVTL2(n, d) WORD $(0x4e217800 | ((n)<<5) | (d))

// HSUM reduces accumulators a0-a3 into lane 0 of a0 (register Fa0).
#define HSUM(a0, a1, a2, a3) \
	FADD4(a2, a0, a0); \
	FADD4(a3, a1, a1); \
	FADD4(a1, a0, a0); \
	FADDP4(a0, a0, a0); \
	FADDP2S(a0, a0)

// FMA16(x, w, a) adds the 16 products of vectors x..x+3 and w..w+3 into accumulators a..a+3.
#define FMA16(x, w, a) \
	FMLA4(w, x, a); \
	FMLA4((w)+1, (x)+1, (a)+1); \
	FMLA4((w)+2, (x)+2, (a)+2); \
	FMLA4((w)+3, (x)+3, (a)+3)

// FMA8 adds the 8 products of vectors x, x+1 and w, w+1 into accumulators a, a+1.
#define FMA8(x, w, a) \
	FMLA4(w, x, a); \
	FMLA4((w)+1, (x)+1, (a)+1)

// F16TO4 widens the 16 halves in h, h+1 into floats in d..d+3.
#define F16TO4(h, d) \
	FCVTL(h, d); \
	FCVTL2(h, (d)+1); \
	FCVTL((h)+1, (d)+2); \
	FCVTL2((h)+1, (d)+3)

// F16TO2 widens the 8 halves in h into floats in d, d+1.
#define F16TO2(h, d) \
	FCVTL(h, d); \
	FCVTL2(h, (d)+1)

#define ZERO4(a, b, c, d) \
	VEOR a.B16, a.B16, a.B16; \
	VEOR b.B16, b.B16, b.B16; \
	VEOR c.B16, c.B16, c.B16; \
	VEOR d.B16, d.B16, d.B16

// DOT4_SETUP (the four-input kernels below; defined before the first TEXT, where vet does not tie the
// argument names to one function) loads the arguments (R0 input 0, R1 stride, R2 w, R3 n, R4 out), sets R5-R7 to inputs 1-3
// and clears the accumulators V0-V15.
#define DOT4_SETUP \
	MOVD x+0(FP), R0; \
	MOVD stride+8(FP), R1; \
	MOVD w+16(FP), R2; \
	MOVD n+24(FP), R3; \
	MOVD out+32(FP), R4; \
	ADD  R1, R0, R5; \
	ADD  R1, R5, R6; \
	ADD  R1, R6, R7; \
	ZERO4(V0, V1, V2, V3); \
	ZERO4(V4, V5, V6, V7); \
	ZERO4(V8, V9, V10, V11); \
	ZERO4(V12, V13, V14, V15)

// The row-range kernels: rows consecutive weight rows of n elements, each dotted with x and its sum
// stored at out[r]. One call streams a whole range of rows front to back.

// func rowsF32NEON(x, w *float32, n, rows int, out *float32)
TEXT ·rowsF32NEON(SB), NOSPLIT, $0-40
	MOVD x+0(FP), R0
	MOVD w+8(FP), R1
	MOVD n+16(FP), R2
	MOVD rows+24(FP), R3
	MOVD out+32(FP), R4
	CBZ  R3, done

row:
	MOVD R0, R5
	MOVD R2, R6
	ZERO4(V0, V1, V2, V3)
	CMP  $16, R6
	BLT  tail

loop:
	VLD1.P 64(R5), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P 64(R1), [V20.S4, V21.S4, V22.S4, V23.S4]
	FMA16(16, 20, 0)
	SUB    $16, R6
	CMP    $16, R6
	BGE    loop

tail:
	CBZ    R6, end
	VLD1.P 32(R5), [V16.S4, V17.S4]
	VLD1.P 32(R1), [V20.S4, V21.S4]
	FMA8(16, 20, 0)

end:
	HSUM(0, 1, 2, 3)
	FMOVS F0, (R4)
	ADD   $4, R4
	SUBS  $1, R3
	BNE   row

done:
	RET

// func rowsF16NEON(x *float32, w *uint16, n, rows int, out *float32)
TEXT ·rowsF16NEON(SB), NOSPLIT, $0-40
	MOVD x+0(FP), R0
	MOVD w+8(FP), R1
	MOVD n+16(FP), R2
	MOVD rows+24(FP), R3
	MOVD out+32(FP), R4
	CBZ  R3, done

row:
	MOVD R0, R5
	MOVD R2, R6
	ZERO4(V0, V1, V2, V3)
	CMP  $16, R6
	BLT  tail

loop:
	VLD1.P 64(R5), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P 32(R1), [V24.H8, V25.H8]
	F16TO4(24, 20)
	FMA16(16, 20, 0)
	SUB    $16, R6
	CMP    $16, R6
	BGE    loop

tail:
	CBZ    R6, end
	VLD1.P 32(R5), [V16.S4, V17.S4]
	VLD1.P 16(R1), [V24.H8]
	F16TO2(24, 20)
	FMA8(16, 20, 0)

end:
	HSUM(0, 1, 2, 3)
	FMOVS F0, (R4)
	ADD   $4, R4
	SUBS  $1, R3
	BNE   row

done:
	RET

// Four inputs against one weight row: x rows at x, x+stride, x+2*stride, x+3*stride (stride in bytes),
// input k in accumulators 4k..4k+3, so every result has the bits the one-row kernel gives (the weight
// chunk is loaded and converted once for the four). Decode runs the f32 one with the roles swapped: four
// weight rows a quarter of a row range apart against the one input.

// INPUTS16 adds the next 16 elements of the four inputs times the weights in V16-V19.
#define INPUTS16 \
	VLD1.P 64(R0), [V20.S4, V21.S4, V22.S4, V23.S4]; \
	VLD1.P 64(R5), [V24.S4, V25.S4, V26.S4, V27.S4]; \
	FMA16(20, 16, 0); \
	FMA16(24, 16, 4); \
	VLD1.P 64(R6), [V20.S4, V21.S4, V22.S4, V23.S4]; \
	VLD1.P 64(R7), [V24.S4, V25.S4, V26.S4, V27.S4]; \
	FMA16(20, 16, 8); \
	FMA16(24, 16, 12)

// INPUTS8 adds the last 8 elements of the four inputs times the weights in V16, V17.
#define INPUTS8 \
	VLD1.P 32(R0), [V20.S4, V21.S4]; \
	VLD1.P 32(R5), [V22.S4, V23.S4]; \
	VLD1.P 32(R6), [V24.S4, V25.S4]; \
	VLD1.P 32(R7), [V26.S4, V27.S4]; \
	FMA8(20, 16, 0); \
	FMA8(22, 16, 4); \
	FMA8(24, 16, 8); \
	FMA8(26, 16, 12)

// STORE4 reduces the four inputs' accumulators and stores the sums at out[0..3].
#define STORE4 \
	HSUM(0, 1, 2, 3); \
	HSUM(4, 5, 6, 7); \
	HSUM(8, 9, 10, 11); \
	HSUM(12, 13, 14, 15); \
	FMOVS F0, 0(R4); \
	FMOVS F4, 4(R4); \
	FMOVS F8, 8(R4); \
	FMOVS F12, 12(R4)

// func dot4F32NEON(x *float32, stride uintptr, w *float32, n int, out *[4]float32)
TEXT ·dot4F32NEON(SB), NOSPLIT, $0-40
	DOT4_SETUP
	CMP $16, R3
	BLT tail

loop:
	VLD1.P 64(R2), [V16.S4, V17.S4, V18.S4, V19.S4]
	INPUTS16
	SUB    $16, R3
	CMP    $16, R3
	BGE    loop

tail:
	CBZ    R3, end
	VLD1.P 32(R2), [V16.S4, V17.S4]
	INPUTS8

end:
	STORE4
	RET

// func dot4F16NEON(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)
TEXT ·dot4F16NEON(SB), NOSPLIT, $0-40
	DOT4_SETUP
	CMP $16, R3
	BLT tail

loop:
	VLD1.P 32(R2), [V28.H8, V29.H8]
	F16TO4(28, 16)
	INPUTS16
	SUB    $16, R3
	CMP    $16, R3
	BGE    loop

tail:
	CBZ    R3, end
	VLD1.P 16(R2), [V28.H8]
	F16TO2(28, 16)
	INPUTS8

end:
	STORE4
	RET

// One input against four f16 weight rows at w, w+stride, w+2*stride, w+3*stride (stride in bytes): the
// input chunk is loaded once for the four rows, row k in accumulators 4k..4k+3, so each result has the
// bits the one-row kernel gives for that row. Decode takes rows a quarter of a row range apart: four long
// sequential streams, sixteen FMA chains.

// func rows4F16NEON(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)
TEXT ·rows4F16NEON(SB), NOSPLIT, $0-40
	MOVD x+0(FP), R0
	MOVD w+8(FP), R2
	MOVD stride+16(FP), R1
	MOVD n+24(FP), R3
	MOVD out+32(FP), R4
	ADD  R1, R2, R5
	ADD  R1, R5, R6
	ADD  R1, R6, R7
	ZERO4(V0, V1, V2, V3)
	ZERO4(V4, V5, V6, V7)
	ZERO4(V8, V9, V10, V11)
	ZERO4(V12, V13, V14, V15)
	CMP  $16, R3
	BLT  tail

loop:
	VLD1.P 64(R0), [V16.S4, V17.S4, V18.S4, V19.S4]
	VLD1.P 32(R2), [V28.H8, V29.H8]
	VLD1.P 32(R5), [V30.H8, V31.H8]
	F16TO4(28, 20)
	F16TO4(30, 24)
	FMA16(16, 20, 0)
	FMA16(16, 24, 4)
	VLD1.P 32(R6), [V28.H8, V29.H8]
	VLD1.P 32(R7), [V30.H8, V31.H8]
	F16TO4(28, 20)
	F16TO4(30, 24)
	FMA16(16, 20, 8)
	FMA16(16, 24, 12)
	SUB    $16, R3
	CMP    $16, R3
	BGE    loop

tail:
	CBZ    R3, end
	VLD1.P 32(R0), [V16.S4, V17.S4]
	VLD1.P 16(R2), [V28.H8]
	VLD1.P 16(R5), [V29.H8]
	VLD1.P 16(R6), [V30.H8]
	VLD1.P 16(R7), [V31.H8]
	F16TO2(28, 20)
	F16TO2(29, 22)
	F16TO2(30, 24)
	F16TO2(31, 26)
	FMA8(16, 20, 0)
	FMA8(16, 22, 4)
	FMA8(16, 24, 8)
	FMA8(16, 26, 12)

end:
	STORE4
	RET
