#include "textflag.h"
#include "expf_amd64.h"

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
	EXP1_STEPS                     // t = e^x = 2^z e^r
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
