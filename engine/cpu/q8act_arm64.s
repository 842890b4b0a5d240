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
	ADD  R3, R2, R8
	ADD  R3, R8, R9
	ADD  R3, R9, R10
	ADD  R5, R4, R11
	ADD  R5, R11, R12
	ADD  R5, R12, R13
	ZERO16
	LSR  $1, R6, R14
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
	ADD  R3, R2, R8
	ADD  R3, R8, R9
	ADD  R3, R9, R10
	ADD  R5, R4, R11
	ADD  R5, R11, R12
	ADD  R5, R12, R13
	ZERO16
	LSR  $1, R6, R14
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
