#include "textflag.h"
#include "neon_arm64.h"

// q8_0 x 8-bit activation kernels for arm64 NEON (ARMv8.0: no SDOT), in q8act.go's fixed order. VLD2 splits
// a group's 32 codes into its even and odd elements, the same for both operands; SMULL then SMLAL put
// element 2j's product plus element 2j+1's into int16 lane j (at most 2*128*127 = 32512: activation codes
// are within +-127, so no wrap), and SADDLP sums adjacent int16 lanes into int32 lanes: lane l holds
// elements 4l..4l+3, exactly q8DotGo's integer lane l (elements 0-15 from the low halves, 16-31 from the
// high ones by SMULL2/SMLAL2). Each lane becomes a float times c = ws*xs (FMUL, then FADD: no fused
// multiply-add) into the even group's eight float lanes or the odd group's, and the sixteen are reduced as
// q8DotGo does.
//
// Registers: V0-V15 accumulators (output k: even groups V2k, V2k+1, odd groups V8+2k, V9+2k), V16, V17 the
// operand shared by the four outputs (even, odd codes), F25 its scale, V18-V21, V24, V26 temporaries.

// Q8N_SHARED(R, RS) loads the shared operand's group (codes at R, scale at RS; both advanced).
#define Q8N_SHARED(R, RS) \
	VLD2.P  32(R), [V16.B16, V17.B16]; \
	FMOVS.P 4(RS), F25

// Q8N_DOT(R, RS, A) adds the group at R (scale at RS; both advanced) times the shared one into the float
// lanes in vector registers A, A+1.
#define Q8N_DOT(R, RS, A) \
	VLD2.P  32(R), [V18.B16, V19.B16]; \
	FMOVS.P 4(RS), F24; \
	FMULS   F25, F24, F24; \
	SMULL8(18, 16, 20); \
	SMLAL8(19, 17, 20); \
	SMULL8_2(18, 16, 21); \
	SMLAL8_2(19, 17, 21); \
	SADDLP16(20, 20); \
	SADDLP16(21, 21); \
	SCVTF4(20, 20); \
	SCVTF4(21, 21); \
	FMULE0(24, 20, 20); \
	FMULE0(24, 21, 21); \
	FADD4(20, A, A); \
	FADD4(21, (A)+1, (A)+1)

// Q8N_REDUCE(A, B) sums the even lanes A, A+1 and the odd ones B, B+1 in the fixed order into lane 0 of
// A: (l + l+8), (l + l+4), (l + l+2), 0 + 1.
#define Q8N_REDUCE(A, B) \
	FADD4(B, A, A); \
	FADD4((B)+1, (A)+1, (A)+1); \
	FADD4((A)+1, A, A); \
	EXT8(A, A, 26); \
	FADD4(26, A, A); \
	FADDP2S(A, A)

// Q8N_FOUR(E) adds one group of the four (rows or inputs: R2, R8, R9, R10, scales at R4, R11, R12, R13)
// times the shared group (at R0, scale at R1) into the accumulators from E (0: even group, 8: odd).
#define Q8N_FOUR(E) \
	Q8N_SHARED(R0, R1); \
	Q8N_DOT(R2, R4, E); \
	Q8N_DOT(R8, R11, (E)+2); \
	Q8N_DOT(R9, R12, (E)+4); \
	Q8N_DOT(R10, R13, (E)+6)

// Q8N_FOURPTRS points the four at R2 + k*R3 (scales R4 + k*R5) for Q8N_FOUR, zeroes the accumulators and
// sets R14 to the group pairs of R6 groups.
#define Q8N_FOURPTRS \
	ADD R3, R2, R8; \
	ADD R3, R8, R9; \
	ADD R3, R9, R10; \
	ADD R5, R4, R11; \
	ADD R5, R11, R12; \
	ADD R5, R12, R13; \
	ZERO16; \
	LSR $1, R6, R14

// Q8N_STORE4 reduces the four outputs' accumulators and stores them at R7.
#define Q8N_STORE4 \
	Q8N_REDUCE(0, 8); \
	FMOVS F0, (R7); \
	Q8N_REDUCE(2, 10); \
	FMOVS F2, 4(R7); \
	Q8N_REDUCE(4, 12); \
	FMOVS F4, 8(R7); \
	Q8N_REDUCE(6, 14); \
	FMOVS F6, 12(R7)

// func q8RowNEON(x *int8, xs *float32, w *byte, ws *float32, groups int) float32
TEXT ·q8RowNEON(SB), NOSPLIT, $0-44
	MOVD x+0(FP), R0
	MOVD xs+8(FP), R1
	MOVD w+16(FP), R2
	MOVD ws+24(FP), R4
	MOVD groups+32(FP), R6
	ZERO4(V0, V1, V8, V9)
	LSR  $1, R6, R14
	CBZ  R14, n1tail

n1pair:
	Q8N_SHARED(R0, R1)
	Q8N_DOT(R2, R4, 0)
	Q8N_SHARED(R0, R1)
	Q8N_DOT(R2, R4, 8)
	SUBS $1, R14
	BNE  n1pair

n1tail:
	TBZ $0, R6, n1done
	Q8N_SHARED(R0, R1)
	Q8N_DOT(R2, R4, 0)

n1done:
	Q8N_REDUCE(0, 8)
	FMOVS F0, ret+40(FP)
	RET

// func q8Rows4NEON(x *int8, xs *float32, w *byte, stride uintptr, ws *float32, sstride uintptr, groups int, out *[4]float32)
// Four rows: w + k*stride, scales ws + k*sstride, for k < 4; row k's sum at out[k].
TEXT ·q8Rows4NEON(SB), NOSPLIT, $0-64
	MOVD x+0(FP), R0
	MOVD xs+8(FP), R1
	MOVD w+16(FP), R2
	MOVD stride+24(FP), R3
	MOVD ws+32(FP), R4
	MOVD sstride+40(FP), R5
	MOVD groups+48(FP), R6
	MOVD out+56(FP), R7
	Q8N_FOURPTRS
	CBZ  R14, n4tail

n4pair:
	Q8N_FOUR(0)
	Q8N_FOUR(8)
	SUBS $1, R14
	BNE  n4pair

n4tail:
	TBZ $0, R6, n4done
	Q8N_FOUR(0)

n4done:
	Q8N_STORE4
	RET

// func q8Inputs4NEON(x *int8, xstride uintptr, xs *float32, sstride uintptr, w *byte, ws *float32, groups, rows int, out *float32)
// Four inputs (x + k*xstride, scales xs + k*sstride, k < 4) with rows consecutive weight rows (from w,
// their scales from ws): row r's four sums at out[4r..4r+3], each with q8RowNEON's bits. The weight row is
// the shared operand here (R0, R1) and the inputs the four.
TEXT ·q8Inputs4NEON(SB), NOSPLIT, $0-72
	MOVD w+32(FP), R0
	MOVD ws+40(FP), R1
	MOVD out+64(FP), R7
	MOVD rows+56(FP), R15
	CBZ  R15, m4end

m4row: // R0 and R1 are at the row's weights and scales: where the last row's ended
	MOVD x+0(FP), R2
	MOVD xstride+8(FP), R3
	MOVD xs+16(FP), R4
	MOVD sstride+24(FP), R5
	MOVD groups+48(FP), R6
	Q8N_FOURPTRS
	CBZ  R14, m4tail

m4pair:
	Q8N_FOUR(0)
	Q8N_FOUR(8)
	SUBS $1, R14
	BNE  m4pair

m4tail:
	TBZ $0, R6, m4done
	Q8N_FOUR(0)

m4done:
	Q8N_STORE4
	ADD  $16, R7
	SUBS $1, R15
	BNE  m4row

m4end:
	RET

// Q8N_QUANT4(V) turns the four floats in vector V into whole int32s: V / d (d broadcast in V16, an IEEE
// division as Go's), rounded half away from zero (frinta, as math.Round), converted.
#define Q8N_QUANT4(V) \
	FDIV4(16, V, V); \
	FRINTA4(V, V); \
	FCVTZS4(V, V)

// func q8QuantizeNEON(x *float32, groups int, q *int8, s *float32)
// model.QuantizeQ8_0To for groups of 32, with its bits: per group the scale d = absmax/127 and the codes
// round(x/d) (within +-127 since |x| <= absmax; saturating narrows), all zero where d is 0. No corr (only
// the VNNI kernels use it).
TEXT ·q8QuantizeNEON(SB), NOSPLIT, $0-32
	MOVD  x+0(FP), R0
	MOVD  groups+8(FP), R3
	MOVD  q+16(FP), R1
	MOVD  s+24(FP), R2
	MOVW  $0x42fe0000, R4 // 127
	FMOVS R4, F30
	VEOR  V28.B16, V28.B16, V28.B16
	VEOR  V29.B16, V29.B16, V29.B16
	CBZ   R3, qdone

qgroup:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	FABS4(0, 16)
	FABS4(1, 17)
	FABS4(2, 18)
	FABS4(3, 19)
	FABS4(4, 20)
	FABS4(5, 21)
	FABS4(6, 22)
	FABS4(7, 23)
	FMAX4(17, 16, 16)
	FMAX4(19, 18, 18)
	FMAX4(21, 20, 20)
	FMAX4(23, 22, 22)
	FMAX4(18, 16, 16)
	FMAX4(22, 20, 20)
	FMAX4(20, 16, 16)
	FMAXV4(16, 16)
	FDIVS   F30, F16, F16
	FMOVS.P F16, 4(R2)
	FCMPS   $(0.0), F16
	BEQ     qzero
	VDUP    V16.S[0], V16.S4
	Q8N_QUANT4(0)
	Q8N_QUANT4(1)
	Q8N_QUANT4(2)
	Q8N_QUANT4(3)
	Q8N_QUANT4(4)
	Q8N_QUANT4(5)
	Q8N_QUANT4(6)
	Q8N_QUANT4(7)
	SQXTN32(0, 24)
	SQXTN32_2(1, 24)
	SQXTN32(2, 25)
	SQXTN32_2(3, 25)
	SQXTN32(4, 26)
	SQXTN32_2(5, 26)
	SQXTN32(6, 27)
	SQXTN32_2(7, 27)
	SQXTN16(24, 0)
	SQXTN16_2(25, 0)
	SQXTN16(26, 1)
	SQXTN16_2(27, 1)
	VST1.P [V0.B16, V1.B16], 32(R1)
	SUBS   $1, R3
	BNE    qgroup
	RET

qzero:
	VST1.P [V28.B16, V29.B16], 32(R1)
	SUBS   $1, R3
	BNE    qgroup

qdone:
	RET
