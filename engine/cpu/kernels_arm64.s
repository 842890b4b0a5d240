#include "textflag.h"

// Dot-product kernels for arm64 NEON (ASIMD). n is a multiple of 8. The f32, f16 and bf16 kernels keep
// four 4-lane accumulators per output: each 16 elements go 0-3, 4-7, 8-11, 12-15 to accumulators 0, 1, 2,
// 3 (a last 8 to 0, 1), with fused multiply-adds; then (a0 + a2) + (a1 + a3), then lanes (0 + 1) +
// (2 + 3). (q8_0's order is described at its kernels.) The order depends only on the shape, so the
// one-row, four-row and four-input kernels give one output the same bits.
//
// Go's assembler has no mnemonics for NEON's float arithmetic and conversions, so those are WORDs
// (neon_arm64.h), each macro naming its instruction; register arguments are vector register numbers.

#include "neon_arm64.h"

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

// BF16TO4 and BF16TO2 are F16TO4 and F16TO2 for bfloat16s.
#define BF16TO4(h, d) \
	SHLL16(h, d); \
	SHLL16_2(h, (d)+1); \
	SHLL16((h)+1, (d)+2); \
	SHLL16_2((h)+1, (d)+3)

#define BF16TO2(h, d) \
	SHLL16(h, d); \
	SHLL16_2(h, (d)+1)

// Q8TO4 turns the 16 int8s in b into floats in d..d+3 (h, h+1 scratch).
#define Q8TO4(b, h, d) \
	SXTL8(b, h); \
	SXTL8_2(b, (h)+1); \
	SXTL16(h, d); \
	SXTL16_2(h, (d)+1); \
	SXTL16((h)+1, (d)+2); \
	SXTL16_2((h)+1, (d)+3); \
	SCVTF4(d, d); \
	SCVTF4((d)+1, (d)+1); \
	SCVTF4((d)+2, (d)+2); \
	SCVTF4((d)+3, (d)+3)

// Q8TO2 turns the 8 int8s in the low half of b into floats in d, d+1 (h scratch).
#define Q8TO2(b, h, d) \
	SXTL8(b, h); \
	SXTL16(h, d); \
	SXTL16_2(h, (d)+1); \
	SCVTF4(d, d); \
	SCVTF4((d)+1, (d)+1)

// The kernels' bodies are macros over the half-to-float conversion (F16TO*, BF16TO*), shared by f16 and
// bf16. They and DOT4_SETUP are defined before the first TEXT, where vet does not tie the argument names
// to one function.

// ROWS_HALF(TO4, TO2): the row-range kernel over 16-bit weights (rowsF32NEON below, converting each
// weight chunk).
#define ROWS_HALF(TO4, TO2) \
	MOVD x+0(FP), R0; \
	MOVD w+8(FP), R1; \
	MOVD n+16(FP), R2; \
	MOVD rows+24(FP), R3; \
	MOVD out+32(FP), R4; \
	CBZ  R3, done; \
row: \
	MOVD R0, R5; \
	MOVD R2, R6; \
	ZERO4(V0, V1, V2, V3); \
	CMP  $16, R6; \
	BLT  tail; \
loop: \
	VLD1.P 64(R5), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	VLD1.P 32(R1), [V24.H8, V25.H8]; \
	TO4(24, 20); \
	FMA16(16, 20, 0); \
	SUB    $16, R6; \
	CMP    $16, R6; \
	BGE    loop; \
tail: \
	CBZ    R6, end; \
	VLD1.P 32(R5), [V16.S4, V17.S4]; \
	VLD1.P 16(R1), [V24.H8]; \
	TO2(24, 20); \
	FMA8(16, 20, 0); \
end: \
	HSUM(0, 1, 2, 3); \
	FMOVS F0, (R4); \
	ADD   $4, R4; \
	SUBS  $1, R3; \
	BNE   row; \
done: \
	RET

// DOT4_SETUP loads the four-input kernels' arguments (R0 input 0, R1 stride, R2 w, R3 n, R4 out), sets
// R5-R7 to inputs 1-3 and clears the accumulators V0-V15.
#define DOT4_SETUP \
	MOVD x+0(FP), R0; \
	MOVD stride+8(FP), R1; \
	MOVD w+16(FP), R2; \
	MOVD n+24(FP), R3; \
	MOVD out+32(FP), R4; \
	ADD  R1, R0, R5; \
	ADD  R1, R5, R6; \
	ADD  R1, R6, R7; \
	ZERO16

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

// STORE4 reduces the four outputs' accumulators and stores the sums at out[0..3] (R4).
#define STORE4 \
	HSUM(0, 1, 2, 3); \
	HSUM(4, 5, 6, 7); \
	HSUM(8, 9, 10, 11); \
	HSUM(12, 13, 14, 15); \
	FMOVS F0, 0(R4); \
	FMOVS F4, 4(R4); \
	FMOVS F8, 8(R4); \
	FMOVS F12, 12(R4)

// DOT4_HALF(TO4, TO2): the four-input kernel over a 16-bit weight row.
#define DOT4_HALF(TO4, TO2) \
	DOT4_SETUP; \
	CMP $16, R3; \
	BLT tail; \
loop: \
	VLD1.P 32(R2), [V28.H8, V29.H8]; \
	TO4(28, 16); \
	INPUTS16; \
	SUB    $16, R3; \
	CMP    $16, R3; \
	BGE    loop; \
tail: \
	CBZ    R3, end; \
	VLD1.P 16(R2), [V28.H8]; \
	TO2(28, 16); \
	INPUTS8; \
end: \
	STORE4; \
	RET

// ROWS4_HALF(TO4, TO2): one input against four 16-bit weight rows.
#define ROWS4_HALF(TO4, TO2) \
	MOVD x+0(FP), R0; \
	MOVD w+8(FP), R2; \
	MOVD stride+16(FP), R1; \
	MOVD n+24(FP), R3; \
	MOVD out+32(FP), R4; \
	ADD  R1, R2, R5; \
	ADD  R1, R5, R6; \
	ADD  R1, R6, R7; \
	ZERO16; \
	CMP  $16, R3; \
	BLT  tail; \
loop: \
	VLD1.P 64(R0), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	VLD1.P 32(R2), [V28.H8, V29.H8]; \
	VLD1.P 32(R5), [V30.H8, V31.H8]; \
	TO4(28, 20); \
	TO4(30, 24); \
	FMA16(16, 20, 0); \
	FMA16(16, 24, 4); \
	VLD1.P 32(R6), [V28.H8, V29.H8]; \
	VLD1.P 32(R7), [V30.H8, V31.H8]; \
	TO4(28, 20); \
	TO4(30, 24); \
	FMA16(16, 20, 8); \
	FMA16(16, 24, 12); \
	SUB    $16, R3; \
	CMP    $16, R3; \
	BGE    loop; \
tail: \
	CBZ    R3, end; \
	VLD1.P 32(R0), [V16.S4, V17.S4]; \
	VLD1.P 16(R2), [V28.H8]; \
	VLD1.P 16(R5), [V29.H8]; \
	VLD1.P 16(R6), [V30.H8]; \
	VLD1.P 16(R7), [V31.H8]; \
	TO2(28, 20); \
	TO2(29, 22); \
	TO2(30, 24); \
	TO2(31, 26); \
	FMA8(16, 20, 0); \
	FMA8(16, 22, 4); \
	FMA8(16, 24, 8); \
	FMA8(16, 26, 12); \
end: \
	STORE4; \
	RET

// The q8_0 kernels. Per group (group a multiple of 8): two partial sums per output, elements 0-3 of
// each 8 to the first and 4-7 to the second (16 at a time while 16 are left), added (p0 + p1) and
// multiplied by the group's scale into the output's accumulator by a fused multiply-add; then the lanes
// (0 + 1) + (2 + 3). The one-row, four-row and four-input kernels keep that order for every output.

// QCHUNK16(TO4, w, x, p) converts the 16 bytes at (w) (post-incremented) by TO4 (Q8TO4, FP8TO4) and adds
// them times the input vectors x..x+3 into partials p, p+1 (scratch V20-V24, V26, V27).
#define QCHUNK16(TO4, w, x, p) \
	VLD1.P 16(w), [V24.B16]; \
	TO4(24, 26, 20); \
	FMLA4(20, x, p); \
	FMLA4(21, (x)+1, (p)+1); \
	FMLA4(22, (x)+2, p); \
	FMLA4(23, (x)+3, (p)+1)

// QCHUNK8(TO2, w, x, p): the same for the 8 bytes at (w) and input vectors x, x+1.
#define QCHUNK8(TO2, w, x, p) \
	VLD1.P 8(w), [V24.B8]; \
	TO2(24, 26, 20); \
	FMLA4(20, x, p); \
	FMLA4(21, (x)+1, (p)+1)

// Q8SCALE(s, p, a): a += (p + p+1) * the scale at (s) (post-incremented; V28 scratch).
#define Q8SCALE(s, p, a) \
	FADD4((p)+1, p, p); \
	VLD1R.P 4(s), [V28.S4]; \
	FMLA4(28, p, a)

// HSUM1 reduces the lanes of accumulator a into lane 0 (register Fa).
#define HSUM1(a) \
	FADDP4(a, a, a); \
	FADDP2S(a, a)

// The attention's block kernels (attn_kernels.go): products and sums are separate instructions (FMUL,
// FADD; no fused multiply-add) in the 8 lanes of the pure-Go twins (two 4-lane vectors), so the twins,
// which round every product, give the same bits.

// SCLOAD_F32 and SCLOAD_F16 load the 8 K (or V) values at (R), post-incremented, as floats into vectors
// a, a+1 (registers VA, VB); the f16 one converts through V28.
#define SCLOAD_F32(R, VA, VB, a) \
	VLD1.P 32(R), [VA.S4, VB.S4]

#define SCLOAD_F16(R, VA, VB, a) \
	VLD1.P 16(R), [V28.H8]; \
	F16TO2(28, a)

// SCADD adds q's chunk (V16, V17) times the values in a, a+1 to the lanes l, l+1 (product into a, a+1).
#define SCADD(a, l) \
	FMUL4(16, a, a); \
	FMUL4(17, (a)+1, (a)+1); \
	FADD4(a, l, l); \
	FADD4((a)+1, (l)+1, (l)+1)

// HSUM8 reduces the 8 lanes l (0-3), l+1 (4-7) into lane 0 of l as hsum8: (0+1 + 2+3) + (4+5 + 6+7).
#define HSUM8(l) \
	FADDP4((l)+1, l, l); \
	FADDP4(l, l, l); \
	FADDP2S(l, l)

// SCORES(LOAD): out[i] = q . K row i over d8 elements in hsum8's order, four rows at a time (q's
// chunk loaded once for them), then one by one.
#define SCORES(LOAD) \
	MOVD q+0(FP), R0; \
	MOVD k+8(FP), R1; \
	MOVD stride+16(FP), R2; \
	MOVD d8+24(FP), R3; \
	MOVD n+32(FP), R4; \
	MOVD out+40(FP), R5; \
	CMP  $4, R4; \
	BLT  one; \
four: \
	MOVD R1, R6; \
	ADD  R2, R6, R7; \
	ADD  R2, R7, R8; \
	ADD  R2, R8, R9; \
	MOVD R0, R10; \
	MOVD R3, R11; \
	ZERO4(V0, V1, V2, V3); \
	ZERO4(V4, V5, V6, V7); \
four8: \
	VLD1.P 32(R10), [V16.S4, V17.S4]; \
	LOAD(R6, V20, V21, 20); \
	LOAD(R7, V22, V23, 22); \
	LOAD(R8, V24, V25, 24); \
	LOAD(R9, V26, V27, 26); \
	SCADD(20, 0); \
	SCADD(22, 2); \
	SCADD(24, 4); \
	SCADD(26, 6); \
	SUBS $8, R11; \
	BNE  four8; \
	HSUM8(0); \
	HSUM8(2); \
	HSUM8(4); \
	HSUM8(6); \
	FMOVS F0, 0(R5); \
	FMOVS F2, 4(R5); \
	FMOVS F4, 8(R5); \
	FMOVS F6, 12(R5); \
	ADD  $16, R5; \
	ADD  R2<<2, R1, R1; \
	SUB  $4, R4; \
	CMP  $4, R4; \
	BGE  four; \
one: \
	CBZ  R4, done; \
	MOVD R1, R6; \
	MOVD R0, R10; \
	MOVD R3, R11; \
	VEOR V0.B16, V0.B16, V0.B16; \
	VEOR V1.B16, V1.B16, V1.B16; \
one8: \
	VLD1.P 32(R10), [V16.S4, V17.S4]; \
	LOAD(R6, V20, V21, 20); \
	SCADD(20, 0); \
	SUBS $8, R11; \
	BNE  one8; \
	HSUM8(0); \
	FMOVS F0, (R5); \
	ADD  $4, R5; \
	ADD  R2, R1, R1; \
	SUBS $1, R4; \
	BNE  one; \
done: \
	RET

// SRLOAD16_F32 and SRLOAD16_F16 load the 16 V values at (R) as floats into V20-V23.
#define SRLOAD16_F32(R) \
	VLD1 (R), [V20.S4, V21.S4, V22.S4, V23.S4]

#define SRLOAD16_F16(R) \
	VLD1 (R), [V28.H8, V29.H8]; \
	F16TO4(28, 20)

#define SRLOAD8_F32(R) \
	VLD1 (R), [V20.S4, V21.S4]

#define SRLOAD8_F16(R) \
	VLD1 (R), [V28.H8]; \
	F16TO2(28, 20)

// SUMROWS(LOAD16, LOAD8, esize): acc[e] += w[i] * V row i [e] for e < d8, row after row (each product
// rounded, then added): 16 columns at a time in V0-V3 over all the rows, then the last 8.
#define SUMROWS(LOAD16, LOAD8, esize) \
	MOVD w+0(FP), R0; \
	MOVD v+8(FP), R1; \
	MOVD stride+16(FP), R2; \
	MOVD d8+24(FP), R3; \
	MOVD n+32(FP), R4; \
	MOVD acc+40(FP), R5; \
	CMP  $16, R3; \
	BLT  last8; \
cols16: \
	VLD1 (R5), [V0.S4, V1.S4, V2.S4, V3.S4]; \
	MOVD R1, R6; \
	MOVD R0, R7; \
	MOVD R4, R8; \
rows16: \
	VLD1R.P 4(R7), [V16.S4]; \
	LOAD16(R6); \
	ADD  R2, R6, R6; \
	FMUL4(16, 20, 20); \
	FMUL4(16, 21, 21); \
	FMUL4(16, 22, 22); \
	FMUL4(16, 23, 23); \
	FADD4(20, 0, 0); \
	FADD4(21, 1, 1); \
	FADD4(22, 2, 2); \
	FADD4(23, 3, 3); \
	SUBS $1, R8; \
	BNE  rows16; \
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R5); \
	ADD  $(16*esize), R1; \
	SUB  $16, R3; \
	CMP  $16, R3; \
	BGE  cols16; \
last8: \
	CBZ  R3, done; \
	VLD1 (R5), [V0.S4, V1.S4]; \
	MOVD R1, R6; \
	MOVD R0, R7; \
	MOVD R4, R8; \
rows8: \
	VLD1R.P 4(R7), [V16.S4]; \
	LOAD8(R6); \
	ADD  R2, R6, R6; \
	FMUL4(16, 20, 20); \
	FMUL4(16, 21, 21); \
	FADD4(20, 0, 0); \
	FADD4(21, 1, 1); \
	SUBS $1, R8; \
	BNE  rows8; \
	VST1 [V0.S4, V1.S4], (R5); \
done: \
	RET

// FP8TO4(b, h, d) turns the 16 fp8-e4m3 bytes in b into floats in d..d+3, each 2^-8 times its value:
// the low 7 bits shifted left by 7 are a half with the same mantissa and an exponent 8 lower (subnormals
// included), and the sign moves to bit 15. V25 holds 0x7f in every byte; h, h+1 scratch. The codes 0x7f
// and 0xff (NaN in e4m3) read as 480 and -480.
#define FP8TO4(b, h, d) \
	AND16(25, b, h); \
	EOR16(h, b, (h)+1); \
	USHLL7(h, (d)+2); \
	USHLL7_2(h, (d)+3); \
	SHLL8((h)+1, h); \
	SHLL8_2((h)+1, (h)+1); \
	ORR16(h, (d)+2, (d)+2); \
	ORR16((h)+1, (d)+3, (d)+3); \
	FCVTL((d)+2, d); \
	FCVTL2((d)+2, (d)+1); \
	FCVTL((d)+3, (d)+2); \
	FCVTL2((d)+3, (d)+3)

// FP8TO2(b, h, d): the same for the 8 bytes in the low half of b into d, d+1.
#define FP8TO2(b, h, d) \
	AND16(25, b, h); \
	EOR16(h, b, (h)+1); \
	USHLL7(h, d); \
	SHLL8((h)+1, h); \
	ORR16(h, d, d); \
	FCVTL2(d, (d)+1); \
	FCVTL(d, d)

// Q8FIN and FP8FIN finish a q8_0 or fp8 sum in register F: nothing, or times 2^8 (exact), undoing
// FP8TO4's scaling.
#define Q8FIN(F)
#define FP8FIN(F) \
	FMOVS $256.0, F29; \
	FMULS F29, F, F

// ROWS_Q and DOT4_Q: the q8_0 and fp8 one-row (row range) and four-input kernels, TO4 and TO2 converting
// the weights, FIN finishing each sum (Q8FIN, FP8FIN).
#define ROWS_Q(TO4, TO2, FIN) \
	MOVD x+0(FP), R0; \
	MOVD w+8(FP), R1; \
	MOVD scales+16(FP), R2; \
	MOVD groups+24(FP), R3; \
	MOVD group+32(FP), R4; \
	MOVD rows+40(FP), R5; \
	MOVD out+48(FP), R6; \
	CBZ  R5, done; \
row: \
	MOVD R0, R7; \
	MOVD R3, R8; \
	VEOR V0.B16, V0.B16, V0.B16; \
	CBZ  R8, end; \
group: \
	MOVD R4, R9; \
	VEOR V1.B16, V1.B16, V1.B16; \
	VEOR V2.B16, V2.B16, V2.B16; \
	CMP  $16, R9; \
	BLT  tail; \
loop: \
	VLD1.P 64(R7), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	QCHUNK16(TO4, R1, 16, 1); \
	SUB    $16, R9; \
	CMP    $16, R9; \
	BGE    loop; \
tail: \
	CBZ    R9, scale; \
	VLD1.P 32(R7), [V16.S4, V17.S4]; \
	QCHUNK8(TO2, R1, 16, 1); \
scale: \
	Q8SCALE(R2, 1, 0); \
	SUBS $1, R8; \
	BNE  group; \
end: \
	HSUM1(0); \
	FIN(F0); \
	FMOVS F0, (R6); \
	ADD   $4, R6; \
	SUBS  $1, R5; \
	BNE   row; \
done: \
	RET

#define DOT4_Q(TO4, TO2, FIN) \
	MOVD x+0(FP), R0; \
	MOVD stride+8(FP), R1; \
	MOVD w+16(FP), R2; \
	MOVD scales+24(FP), R3; \
	MOVD groups+32(FP), R4; \
	MOVD group+40(FP), R5; \
	MOVD out+48(FP), R6; \
	ADD  R1, R0, R7; \
	ADD  R1, R7, R8; \
	ADD  R1, R8, R9; \
	ZERO4(V0, V1, V2, V3); \
	CBZ  R4, end; \
group: \
	MOVD R5, R10; \
	ZERO4(V4, V5, V6, V7); \
	ZERO4(V8, V9, V10, V11); \
	CMP  $16, R10; \
	BLT  tail; \
loop: \
	VLD1.P 16(R2), [V29.B16]; \
	TO4(29, 30, 20); \
	VLD1.P 64(R0), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	VLD1.P 64(R7), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	FMLA4(20, 12, 4); \
	FMLA4(21, 13, 5); \
	FMLA4(22, 14, 4); \
	FMLA4(23, 15, 5); \
	FMLA4(20, 16, 6); \
	FMLA4(21, 17, 7); \
	FMLA4(22, 18, 6); \
	FMLA4(23, 19, 7); \
	VLD1.P 64(R8), [V12.S4, V13.S4, V14.S4, V15.S4]; \
	VLD1.P 64(R9), [V16.S4, V17.S4, V18.S4, V19.S4]; \
	FMLA4(20, 12, 8); \
	FMLA4(21, 13, 9); \
	FMLA4(22, 14, 8); \
	FMLA4(23, 15, 9); \
	FMLA4(20, 16, 10); \
	FMLA4(21, 17, 11); \
	FMLA4(22, 18, 10); \
	FMLA4(23, 19, 11); \
	SUB    $16, R10; \
	CMP    $16, R10; \
	BGE    loop; \
tail: \
	CBZ    R10, scale; \
	VLD1.P 8(R2), [V29.B8]; \
	TO2(29, 30, 20); \
	VLD1.P 32(R0), [V12.S4, V13.S4]; \
	VLD1.P 32(R7), [V14.S4, V15.S4]; \
	VLD1.P 32(R8), [V16.S4, V17.S4]; \
	VLD1.P 32(R9), [V18.S4, V19.S4]; \
	FMLA4(20, 12, 4); \
	FMLA4(21, 13, 5); \
	FMLA4(20, 14, 6); \
	FMLA4(21, 15, 7); \
	FMLA4(20, 16, 8); \
	FMLA4(21, 17, 9); \
	FMLA4(20, 18, 10); \
	FMLA4(21, 19, 11); \
scale: \
	FADD4(5, 4, 4); \
	FADD4(7, 6, 6); \
	FADD4(9, 8, 8); \
	FADD4(11, 10, 10); \
	VLD1R.P 4(R3), [V28.S4]; \
	FMLA4(28, 4, 0); \
	FMLA4(28, 6, 1); \
	FMLA4(28, 8, 2); \
	FMLA4(28, 10, 3); \
	SUBS $1, R4; \
	BNE  group; \
end: \
	HSUM1(0); \
	HSUM1(1); \
	HSUM1(2); \
	HSUM1(3); \
	FIN(F0); \
	FIN(F1); \
	FIN(F2); \
	FIN(F3); \
	FMOVS F0, 0(R6); \
	FMOVS F1, 4(R6); \
	FMOVS F2, 8(R6); \
	FMOVS F3, 12(R6); \
	RET

// The f32 kernels: the same as the 16-bit ones without the conversion.

// func rowsF32NEON(x, w *float32, n, rows int, out *float32)
// The row-range kernel: rows consecutive weight rows of n elements, each dotted with x and its sum
// stored at out[r]. One call streams a whole range of rows front to back.
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

// func dot4F32NEON(x *float32, stride uintptr, w *float32, n int, out *[4]float32)
// Four inputs against one weight row: x rows at x, x+stride, x+2*stride, x+3*stride (stride in bytes),
// input k in accumulators 4k..4k+3, so every result has the bits the one-row kernel gives (the weight
// chunk is loaded and converted once for the four). Decode runs it with the roles swapped: four weight
// rows a quarter of a row range apart against the one input (four long sequential streams, sixteen FMA
// chains).
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

// func rowsF16NEON(x *float32, w *uint16, n, rows int, out *float32)
TEXT ·rowsF16NEON(SB), NOSPLIT, $0-40
	ROWS_HALF(F16TO4, F16TO2)

// func rowsBF16NEON(x *float32, w *uint16, n, rows int, out *float32)
TEXT ·rowsBF16NEON(SB), NOSPLIT, $0-40
	ROWS_HALF(BF16TO4, BF16TO2)

// func dot4F16NEON(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)
TEXT ·dot4F16NEON(SB), NOSPLIT, $0-40
	DOT4_HALF(F16TO4, F16TO2)

// func dot4BF16NEON(x *float32, stride uintptr, w *uint16, n int, out *[4]float32)
TEXT ·dot4BF16NEON(SB), NOSPLIT, $0-40
	DOT4_HALF(BF16TO4, BF16TO2)

// One input against four 16-bit weight rows at w, w+stride, w+2*stride, w+3*stride (stride in bytes):
// the input chunk is loaded once for the four rows, row k in accumulators 4k..4k+3, so each result has
// the bits the one-row kernel gives for that row. Decode takes rows a quarter of a row range apart.

// func rows4F16NEON(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)
TEXT ·rows4F16NEON(SB), NOSPLIT, $0-40
	ROWS4_HALF(F16TO4, F16TO2)

// func rows4BF16NEON(x *float32, w *uint16, stride uintptr, n int, out *[4]float32)
TEXT ·rows4BF16NEON(SB), NOSPLIT, $0-40
	ROWS4_HALF(BF16TO4, BF16TO2)

// func rowsQ8NEON(x *float32, w *int8, scales *float32, groups, group, rows int, out *float32)
// rows consecutive q8_0 rows (groups groups of group weights each, their scales one after the other)
// against x; accumulator V0, partials V1, V2.
TEXT ·rowsQ8NEON(SB), NOSPLIT, $0-56
	ROWS_Q(Q8TO4, Q8TO2, Q8FIN)

// func rowsFP8NEON(x *float32, w *uint8, scales *float32, groups, group, rows int, out *float32)
// rowsQ8NEON for fp8-e4m3 (one row: a row's regions share its scales).
TEXT ·rowsFP8NEON(SB), NOSPLIT, $0-56
	VMOVI $0x7f, V25.B16
	ROWS_Q(FP8TO4, FP8TO2, FP8FIN)

// func dot4Q8NEON(x *float32, stride uintptr, w *int8, scales *float32, groups, group int, out *[4]float32)
// Four inputs (rows at x + k*stride) against one q8_0 row: input k's accumulator V(k), partials
// V(4+2k), V(5+2k); the weight chunk is converted once for the four.
TEXT ·dot4Q8NEON(SB), NOSPLIT, $0-56
	DOT4_Q(Q8TO4, Q8TO2, Q8FIN)

// func dot4FP8NEON(x *float32, stride uintptr, w *uint8, scales *float32, groups, group int, out *[4]float32)
TEXT ·dot4FP8NEON(SB), NOSPLIT, $0-56
	VMOVI $0x7f, V25.B16
	DOT4_Q(FP8TO4, FP8TO2, FP8FIN)

// func rows4Q8NEON(x *float32, w *int8, stride uintptr, scales *float32, sstride uintptr, groups, group int, out *[4]float32)
// One input against four q8_0 rows at w + k*stride (bytes), row k's scales at scales + k*sstride: row k's
// accumulator V(k), partials V(4+2k), V(5+2k); the input chunk is loaded once for the four.
TEXT ·rows4Q8NEON(SB), NOSPLIT, $0-64
	MOVD x+0(FP), R0
	MOVD w+8(FP), R1
	MOVD stride+16(FP), R2
	MOVD scales+24(FP), R3
	MOVD sstride+32(FP), R4
	MOVD groups+40(FP), R5
	MOVD group+48(FP), R6
	MOVD out+56(FP), R7
	ADD  R2, R1, R8
	ADD  R2, R8, R9
	ADD  R2, R9, R10
	ADD  R4, R3, R11
	ADD  R4, R11, R12
	ADD  R4, R12, R13
	ZERO4(V0, V1, V2, V3)
	CBZ  R5, end

group:
	MOVD R6, R14
	ZERO4(V4, V5, V6, V7)
	ZERO4(V8, V9, V10, V11)
	CMP  $16, R14
	BLT  tail

loop:
	VLD1.P 64(R0), [V16.S4, V17.S4, V18.S4, V19.S4]
	QCHUNK16(Q8TO4, R1, 16, 4)
	QCHUNK16(Q8TO4, R8, 16, 6)
	QCHUNK16(Q8TO4, R9, 16, 8)
	QCHUNK16(Q8TO4, R10, 16, 10)
	SUB    $16, R14
	CMP    $16, R14
	BGE    loop

tail:
	CBZ    R14, scale
	VLD1.P 32(R0), [V16.S4, V17.S4]
	QCHUNK8(Q8TO2, R1, 16, 4)
	QCHUNK8(Q8TO2, R8, 16, 6)
	QCHUNK8(Q8TO2, R9, 16, 8)
	QCHUNK8(Q8TO2, R10, 16, 10)

scale:
	Q8SCALE(R3, 4, 0)
	Q8SCALE(R11, 6, 1)
	Q8SCALE(R12, 8, 2)
	Q8SCALE(R13, 10, 3)
	SUBS $1, R5
	BNE  group

end:
	HSUM1(0)
	HSUM1(1)
	HSUM1(2)
	HSUM1(3)
	FMOVS F0, 0(R7)
	FMOVS F1, 4(R7)
	FMOVS F2, 8(R7)
	FMOVS F3, 12(R7)
	RET

// func scoresF32NEON(q, k *float32, stride uintptr, d8, n int, out *float32)
TEXT ·scoresF32NEON(SB), NOSPLIT, $0-48
	SCORES(SCLOAD_F32)

// func scoresF16NEON(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)
TEXT ·scoresF16NEON(SB), NOSPLIT, $0-48
	SCORES(SCLOAD_F16)

// func sumRowsF32NEON(w, v *float32, stride uintptr, d8, n int, acc *float32)
TEXT ·sumRowsF32NEON(SB), NOSPLIT, $0-48
	SUMROWS(SRLOAD16_F32, SRLOAD8_F32, 4)

// func sumRowsF16NEON(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)
TEXT ·sumRowsF16NEON(SB), NOSPLIT, $0-48
	SUMROWS(SRLOAD16_F16, SRLOAD8_F16, 2)

// EXP4(x, z, t, xx, p) is exp1's steps (attn_kernels.go) on the 4 lanes of vector x: p = 2^z e^r with
// z = floor(x log2e + 0.5), r = x - z C1 - z C2 (left in x) and e^r = p(r) r^2 + r + 1, products and sums
// separate (no fused multiply-add) as the Go twin rounds them. V16-V28 hold expC's rows 0-12 (4 lanes of
// each). Clobbers x, z, t, xx; the caller masks the lanes below expMin.
#define EXP4(x, z, t, xx, p) \
	FMUL4(17, x, z); \
	FADD4(18, z, z); \
	FRINTM4(z, z); \
	FMUL4(19, z, t); \
	FSUB4(t, x, x); \
	FMUL4(20, z, t); \
	FSUB4(t, x, x); \
	FMUL4(x, x, xx); \
	FMUL4(21, x, p); \
	FADD4(22, p, p); \
	FMUL4(x, p, p); \
	FADD4(23, p, p); \
	FMUL4(x, p, p); \
	FADD4(24, p, p); \
	FMUL4(x, p, p); \
	FADD4(25, p, p); \
	FMUL4(x, p, p); \
	FADD4(26, p, p); \
	FMUL4(xx, p, p); \
	FADD4(x, p, p); \
	FADD4(27, p, p); \
	FCVTZS4(z, z); \
	IADD4(28, z, z); \
	SHL23(z, z); \
	FMUL4(z, p, p)

// EXPC loads 4 lanes of the constant row at (R) into register V and steps R to the next row (32 bytes).
#define EXPC(R, V) \
	VLD1 (R), [V.S4]; \
	ADD  $32, R

// EXPC13 loads expC's 13 rows from (R) into V16-V28.
#define EXPC13(R) \
	EXPC(R, V16); \
	EXPC(R, V17); \
	EXPC(R, V18); \
	EXPC(R, V19); \
	EXPC(R, V20); \
	EXPC(R, V21); \
	EXPC(R, V22); \
	EXPC(R, V23); \
	EXPC(R, V24); \
	EXPC(R, V25); \
	EXPC(R, V26); \
	EXPC(R, V27); \
	EXPC(R, V28)

// func expShiftNEON(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32)
// x[i] = exp(x[i] - m) for i < n (a multiple of 8, > 0) by exp1's steps, added into lane i%8 of lanes
// (V14 lanes 0-3, V15 4-7). c is expC.
TEXT ·expShiftNEON(SB), NOSPLIT, $0-40
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	MOVD $m+16(FP), R4
	VLD1R (R4), [V29.S4]
	MOVD c+24(FP), R2
	MOVD lanes+32(FP), R3
	EXPC13(R2)
	VLD1 (R3), [V14.S4, V15.S4]

loop:
	VLD1     (R0), [V0.S4, V1.S4]
	FSUB4(29, 0, 0)  // x - m
	FSUB4(29, 1, 1)
	FCMGE4(16, 0, 6) // x >= expMin (false for -Inf and NaN)
	FCMGE4(16, 1, 11)
	EXP4(0, 2, 3, 4, 5)
	EXP4(1, 7, 8, 9, 10)
	AND16(6, 5, 5)
	AND16(11, 10, 10)
	FADD4(5, 14, 14)
	FADD4(10, 15, 15)
	VST1.P   [V5.S4], 16(R0)
	VST1.P   [V10.S4], 16(R0)
	SUBS     $8, R1
	BNE      loop
	VST1     [V14.S4, V15.S4], (R3)
	RET

// func swigluNEON(o, gate, up *float32, n int, c *[16][8]float32)
// o[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < n (a multiple of 8, > 0), exp by exp1's steps, +Inf past
// swigluExpMax (c's row 13, in V29; row 14, +Inf, in V30). o may be g or u: each chunk is loaded before
// it is stored.
TEXT ·swigluNEON(SB), NOSPLIT, $0-40
	MOVD o+0(FP), R0
	MOVD gate+8(FP), R1
	MOVD up+16(FP), R2
	MOVD n+24(FP), R3
	MOVD c+32(FP), R4
	EXPC13(R4)
	EXPC(R4, V29)
	EXPC(R4, V30)

loop:
	VLD1.P   16(R1), [V6.S4] // g
	VLD1.P   16(R2), [V7.S4] // u
	FNEG4(6, 0)              // x = -g
	FCMGE4(16, 0, 11)        // x >= expMin (false for NaN)
	FCMGT4(29, 0, 12)        // x > swigluExpMax
	EXP4(0, 2, 3, 4, 5)      // t = e^x
	AND16(11, 5, 5)          // 0 below expMin
	BIT16(12, 30, 5)         // +Inf above swigluExpMax
	FADD4(27, 5, 5)          // 1 + t
	FDIV4(5, 6, 6)           // g / (1 + t)
	FMUL4(7, 6, 6)           // * u
	VST1.P   [V6.S4], 16(R0)
	SUBS     $4, R3
	BNE      loop
	RET
