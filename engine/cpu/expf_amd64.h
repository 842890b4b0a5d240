// EXP1_STEPS is exp1's steps (attn_kernels.go) on 8 lanes, shared by the attention's expShiftAVX and
// swigluAVX: from x in Y0 and R8 at expC's rows (32 bytes each, in exp1's order), Y4 = 2^z e^r with
// z = floor(x log2e + 0.5) (Y1), r = x - z C1 - z C2 (Y0) and e^r = p(r) r^2 + r + 1. Products and sums
// are separate instructions (no FMA), as the Go twin rounds them. Clobbers Y0-Y5; the caller masks the
// lanes below expMin (row 0).
#define EXP1_STEPS \
	VMULPS    32(R8), Y0, Y1  \
	VADDPS    64(R8), Y1, Y1  \
	VROUNDPS  $1, Y1, Y1      \
	VMULPS    96(R8), Y1, Y2  \
	VSUBPS    Y2, Y0, Y0      \
	VMULPS    128(R8), Y1, Y2 \
	VSUBPS    Y2, Y0, Y0      \
	VMULPS    Y0, Y0, Y3      \
	VMULPS    160(R8), Y0, Y4 \
	VADDPS    192(R8), Y4, Y4 \
	VMULPS    Y0, Y4, Y4      \
	VADDPS    224(R8), Y4, Y4 \
	VMULPS    Y0, Y4, Y4      \
	VADDPS    256(R8), Y4, Y4 \
	VMULPS    Y0, Y4, Y4      \
	VADDPS    288(R8), Y4, Y4 \
	VMULPS    Y0, Y4, Y4      \
	VADDPS    320(R8), Y4, Y4 \
	VMULPS    Y3, Y4, Y4      \
	VADDPS    Y0, Y4, Y4      \
	VADDPS    352(R8), Y4, Y4 \
	VCVTPS2DQ Y1, Y5          \
	VPADDD    384(R8), Y5, Y5 \
	VPSLLD    $23, Y5, Y5     \
	VMULPS    Y5, Y4, Y4
