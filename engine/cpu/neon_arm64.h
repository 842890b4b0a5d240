// NEON instructions that Go's arm64 assembler has no mnemonic for, as WORDs, shared by the arm64 .s files:
// each macro names its instruction; register arguments are vector register numbers.

// fadd vd.4s, vn.4s, vm.4s
#define FADD4(m, n, d) WORD $(0x4e20d400 | ((m)<<16) | ((n)<<5) | (d))
// faddp vd.4s, vn.4s, vm.4s
#define FADDP4(m, n, d) WORD $(0x6e20d400 | ((m)<<16) | ((n)<<5) | (d))
// fmul vd.4s, vn.4s, vm.4s
#define FMUL4(m, n, d) WORD $(0x6e20dc00 | ((m)<<16) | ((n)<<5) | (d))
// fsub vd.4s, vn.4s, vm.4s: vd = vn - vm
#define FSUB4(m, n, d) WORD $(0x4ea0d400 | ((m)<<16) | ((n)<<5) | (d))
// fdiv vd.4s, vn.4s, vm.4s: vd = vn / vm
#define FDIV4(m, n, d) WORD $(0x6e20fc00 | ((m)<<16) | ((n)<<5) | (d))
// fneg vd.4s, vn.4s
#define FNEG4(n, d) WORD $(0x6ea0f800 | ((n)<<5) | (d))
// fcmge vd.4s, vn.4s, vm.4s: all ones where vn >= vm (not for NaN)
#define FCMGE4(m, n, d) WORD $(0x6e20e400 | ((m)<<16) | ((n)<<5) | (d))
// fcmgt vd.4s, vn.4s, vm.4s: all ones where vn > vm
#define FCMGT4(m, n, d) WORD $(0x6ea0e400 | ((m)<<16) | ((n)<<5) | (d))
// frintm vd.4s, vn.4s: floor
#define FRINTM4(n, d) WORD $(0x4e219800 | ((n)<<5) | (d))
// fcvtzs vd.4s, vn.4s: to int32 (the values are whole)
#define FCVTZS4(n, d) WORD $(0x4ea1b800 | ((n)<<5) | (d))
// add vd.4s, vn.4s, vm.4s (int32)
#define IADD4(m, n, d) WORD $(0x4ea08400 | ((m)<<16) | ((n)<<5) | (d))
// shl vd.4s, vn.4s, #23
#define SHL23(n, d) WORD $(0x4f375400 | ((n)<<5) | (d))
// and vd.16b, vn.16b, vm.16b
#define AND16(m, n, d) WORD $(0x4e201c00 | ((m)<<16) | ((n)<<5) | (d))
// bit vd.16b, vn.16b, vm.16b: vd takes vn's bits where vm's are set
#define BIT16(m, n, d) WORD $(0x6ea01c00 | ((m)<<16) | ((n)<<5) | (d))
// eor vd.16b, vn.16b, vm.16b
#define EOR16(m, n, d) WORD $(0x6e201c00 | ((m)<<16) | ((n)<<5) | (d))
// orr vd.16b, vn.16b, vm.16b
#define ORR16(m, n, d) WORD $(0x4ea01c00 | ((m)<<16) | ((n)<<5) | (d))
// ushll vd.8h, vn.8b, #7
#define USHLL7(n, d) WORD $(0x2f0fa400 | ((n)<<5) | (d))
// ushll2 vd.8h, vn.16b, #7
#define USHLL7_2(n, d) WORD $(0x6f0fa400 | ((n)<<5) | (d))
// shll vd.8h, vn.8b, #8
#define SHLL8(n, d) WORD $(0x2e213800 | ((n)<<5) | (d))
// shll2 vd.8h, vn.16b, #8
#define SHLL8_2(n, d) WORD $(0x6e213800 | ((n)<<5) | (d))
// faddp sd, vn.2s
#define FADDP2S(n, d) WORD $(0x7e30d800 | ((n)<<5) | (d))
// fmla vd.4s, vn.4s, vm.4s: vd += vn * vm
#define FMLA4(m, n, d) WORD $(0x4e20cc00 | ((m)<<16) | ((n)<<5) | (d))
// fcvtl vd.4s, vn.4h: the low four halves of vn as floats
#define FCVTL(n, d) WORD $(0x0e217800 | ((n)<<5) | (d))
// fcvtl2 vd.4s, vn.8h: the high four halves
#define FCVTL2(n, d) WORD $(0x4e217800 | ((n)<<5) | (d))

// shll vd.4s, vn.4h, #16: a bfloat16 is the high half of a float32
#define SHLL16(n, d) WORD $(0x2e613800 | ((n)<<5) | (d))
// shll2 vd.4s, vn.8h, #16
#define SHLL16_2(n, d) WORD $(0x6e613800 | ((n)<<5) | (d))
// sxtl vd.8h, vn.8b (sshll #0): the low 8 bytes of vn as int16s
#define SXTL8(n, d) WORD $(0x0f08a400 | ((n)<<5) | (d))
// sxtl2 vd.8h, vn.16b: the high 8 bytes
#define SXTL8_2(n, d) WORD $(0x4f08a400 | ((n)<<5) | (d))
// sxtl vd.4s, vn.4h: the low 4 int16s as int32s
#define SXTL16(n, d) WORD $(0x0f10a400 | ((n)<<5) | (d))
// sxtl2 vd.4s, vn.8h: the high 4
#define SXTL16_2(n, d) WORD $(0x4f10a400 | ((n)<<5) | (d))
// scvtf vd.4s, vn.4s
#define SCVTF4(n, d) WORD $(0x4e21d800 | ((n)<<5) | (d))
// smull vd.8h, vn.8b, vm.8b: the low eight int8 products as int16s
#define SMULL8(m, n, d) WORD $(0x0e20c000 | ((m)<<16) | ((n)<<5) | (d))
// smull2 vd.8h, vn.16b, vm.16b: the high eight
#define SMULL8_2(m, n, d) WORD $(0x4e20c000 | ((m)<<16) | ((n)<<5) | (d))
// smlal vd.8h, vn.8b, vm.8b: vd += the low eight int8 products (int16, wrapping)
#define SMLAL8(m, n, d) WORD $(0x0e208000 | ((m)<<16) | ((n)<<5) | (d))
// smlal2 vd.8h, vn.16b, vm.16b: the high eight
#define SMLAL8_2(m, n, d) WORD $(0x4e208000 | ((m)<<16) | ((n)<<5) | (d))
// saddlp vd.4s, vn.8h: adjacent int16 pairs summed into int32s
#define SADDLP16(n, d) WORD $(0x4e602800 | ((n)<<5) | (d))
// fmul vd.4s, vn.4s, vm.s[0]: times lane 0 of vm
#define FMULE0(m, n, d) WORD $(0x4f809000 | ((m)<<16) | ((n)<<5) | (d))
// ext vd.16b, vn.16b, vm.16b, #8: vn's high half, then vm's low half
#define EXT8(m, n, d) WORD $(0x6e004000 | ((m)<<16) | ((n)<<5) | (d))

// ZERO4 and ZERO16 clear vector registers (ZERO16: V0-V15).
#define ZERO4(a, b, c, d) \
	VEOR a.B16, a.B16, a.B16; \
	VEOR b.B16, b.B16, b.B16; \
	VEOR c.B16, c.B16, c.B16; \
	VEOR d.B16, d.B16, d.B16

#define ZERO16 \
	ZERO4(V0, V1, V2, V3); \
	ZERO4(V4, V5, V6, V7); \
	ZERO4(V8, V9, V10, V11); \
	ZERO4(V12, V13, V14, V15)
// fabs vd.4s, vn.4s
#define FABS4(n, d) WORD $(0x4ea0f800 | ((n)<<5) | (d))
// fmax vd.4s, vn.4s, vm.4s
#define FMAX4(m, n, d) WORD $(0x4e20f400 | ((m)<<16) | ((n)<<5) | (d))
// fmaxv sd, vn.4s: the largest lane
#define FMAXV4(n, d) WORD $(0x6e30f800 | ((n)<<5) | (d))
// frinta vd.4s, vn.4s: round to nearest, halves away from zero (math.Round)
#define FRINTA4(n, d) WORD $(0x6e218800 | ((n)<<5) | (d))
// sqxtn vd.4h, vn.4s: int32 to int16, saturating, into the low half (the high half cleared)
#define SQXTN32(n, d) WORD $(0x0e614800 | ((n)<<5) | (d))
// sqxtn2 vd.8h, vn.4s: into the high half
#define SQXTN32_2(n, d) WORD $(0x4e614800 | ((n)<<5) | (d))
// sqxtn vd.8b, vn.8h: int16 to int8, saturating, into the low half (the high half cleared)
#define SQXTN16(n, d) WORD $(0x0e214800 | ((n)<<5) | (d))
// sqxtn2 vd.16b, vn.8h: into the high half
#define SQXTN16_2(n, d) WORD $(0x4e214800 | ((n)<<5) | (d))
