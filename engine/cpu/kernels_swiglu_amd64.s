#include "textflag.h"

// func swigluAVX(o, gate, up *float32, n int, c *[16][8]float32)
// o[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < n (a multiple of 8, > 0), exp by exp1's steps (separate
// multiplies and adds, as the Go twin rounds them), +Inf past swigluExpMax. c is swigluC: rows of 32 bytes.
// o may be g or u: each chunk is loaded before it is stored.
TEXT ·swigluAVX(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), R8

loop:
	VMOVUPS   (SI), Y6             // g
	VXORPS    480(R8), Y6, Y0      // x = -g
	VCMPPS    $0x1d, (R8), Y0, Y10 // x >= expMin (false for NaN)
	VCMPPS    $0x1e, 416(R8), Y0, Y11 // x > swigluExpMax
	VMULPS    32(R8), Y0, Y1
	VADDPS    64(R8), Y1, Y1
	VROUNDPS  $1, Y1, Y1           // z = floor(x log2e + 0.5)
	VMULPS    96(R8), Y1, Y2
	VSUBPS    Y2, Y0, Y0
	VMULPS    128(R8), Y1, Y2
	VSUBPS    Y2, Y0, Y0           // r = x - z C1 - z C2
	VMULPS    Y0, Y0, Y3
	VMULPS    160(R8), Y0, Y4
	VADDPS    192(R8), Y4, Y4
	VMULPS    Y0, Y4, Y4
	VADDPS    224(R8), Y4, Y4
	VMULPS    Y0, Y4, Y4
	VADDPS    256(R8), Y4, Y4
	VMULPS    Y0, Y4, Y4
	VADDPS    288(R8), Y4, Y4
	VMULPS    Y0, Y4, Y4
	VADDPS    320(R8), Y4, Y4
	VMULPS    Y3, Y4, Y4
	VADDPS    Y0, Y4, Y4
	VADDPS    352(R8), Y4, Y4      // e^r = p r^2 + r + 1
	VCVTPS2DQ Y1, Y5
	VPADDD    384(R8), Y5, Y5
	VPSLLD    $23, Y5, Y5          // 2^z
	VMULPS    Y5, Y4, Y4
	VANDPS    Y10, Y4, Y4          // 0 below expMin
	VMOVUPS   448(R8), Y7
	VBLENDVPS Y11, Y7, Y4, Y4      // +Inf above swigluExpMax
	VADDPS    352(R8), Y4, Y4      // 1 + t
	VDIVPS    Y4, Y6, Y6           // g / (1 + t)
	VMULPS    (DX), Y6, Y6         // * u
	VMOVUPS   Y6, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $32, DI
	SUBQ      $8, CX
	JGT       loop
	VZEROUPPER
	RET
