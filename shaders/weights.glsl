// weights.glsl: decoding of weights stored in their checkpoint dtype, read through 32-bit words only (no
// 8/16-bit storage or arithmetic features needed).
//
// Layout on the device (engine/gpu/ops_dense.go): a weight is split into chunks of whole rows, each its own
// buffer; within a chunk row r starts at r * rowBytes, rowBytes = Cols * elemBytes rounded up to 16 (the
// padding is zero). Scales live in a per-chunk f32 buffer: the scale of element (local row r, column c) is
// sc[(r / rowDiv) * scaleStride + c / colDiv] (fp8 per tensor, per channel, 128x128 block; q8_0 per group),
// and every weight is value * scale.
//
// DType codes are model.DType's.
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_FP8 3
#define DT_Q8 4

// fp8 e4m3fn -> f32 by bit arithmetic: normal values rebias the exponent (7 -> 127) in place, subnormals are
// m * 2^-9 (computed as a product so no f32 denormal is ever formed), 0x7f/0xff are NaN.
float fp8_to_f32(uint b) {
    uint mag = b & 0x7fu;
    float v = (mag >= 8u) ? uintBitsToFloat((mag << 20) + (120u << 23)) : float(mag) * (1.0 / 512.0);
    if (mag == 0x7fu) v = uintBitsToFloat(0x7fc00000u);
    return (b & 0x80u) != 0u ? -v : v;
}

// Four fp8 at once: e4m3 bits placed in a half (sign 15, exponent 14..10, mantissa 9..7) make a half worth
// exactly value / 256, subnormals included (they become half subnormals, which unpackHalf2x16 converts
// exactly); bytes 0x7f/0xff are fixed up to NaN on a rarely taken path.
vec4 fp8x4(uint w) {
    uint lo = ((w & 0x80u) << 8) | ((w & 0x7fu) << 7) | ((w & 0x8000u) << 16) | ((w & 0x7f00u) << 15);
    uint hi = ((w & 0x800000u) >> 8) | ((w & 0x7f0000u) >> 9) | (w & 0x80000000u) | ((w & 0x7f000000u) >> 1);
    vec4 v = vec4(unpackHalf2x16(lo), unpackHalf2x16(hi)) * 256.0;
    if ((((w & 0x7f7f7f7fu) + 0x01010101u) & 0x80808080u) != 0u) {
        for (uint i = 0u; i < 4u; i++)
            if (((w >> (8u * i)) & 0x7fu) == 0x7fu) v[i] = uintBitsToFloat(0x7fc00000u);
    }
    return v;
}

vec4 q8x4(uint w) {
    ivec4 b = ivec4(int(w << 24), int(w << 16), int(w << 8), int(w)) >> 24; // sign-extending shifts
    return vec4(b);
}

vec2 bf16x2(uint w) { return vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u)); }

// elemBytes of a dtype code.
uint dt_bytes(uint dt) { return dt == DT_F32 ? 4u : (dt == DT_F16 || dt == DT_BF16) ? 2u : 1u; }

// decode_elem decodes the element whose little-endian bytes start at byte b (0..3) of word w.
float decode_elem(uint dt, uint w, uint b) {
    uint s = w >> (8u * b);
    if (dt == DT_F32) return uintBitsToFloat(w);
    if (dt == DT_F16) return unpackHalf2x16(s).x;
    if (dt == DT_BF16) return uintBitsToFloat(s << 16);
    if (dt == DT_FP8) return fp8_to_f32(s & 0xffu);
    return float(int(s << 24) >> 24);
}

#ifdef DT
// The matmul kernels (matmul.comp, matmul_rows.comp; DT is the weight dtype of the variant): bindings,
// push constants and the decoding of one chunk of CW words of a row.
layout(std430, binding = 0) readonly buffer Wt { uint wq[]; };
layout(std430, binding = 1) readonly buffer Sc { float sc[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
#ifdef ADD
// -DADD (engine MatMulAdd): the product is added to what out holds, so out is read as well.
layout(std430, binding = 3) buffer Out { float outv[]; };
#define OUT_STORE(i, v) outv[i] += (v)
#else
layout(std430, binding = 3) writeonly buffer Out { float outv[]; };
#define OUT_STORE(i, v) outv[i] = (v)
#endif

layout(push_constant) uniform Push {
    uint rows;      // rows in this chunk
    uint cols;
    uint n;         // tokens
    uint rowWords;  // row stride in 32-bit words (a multiple of 4)
    uint outStride; // total rows of the weight
    uint rowBase;   // first row of this chunk in the weight
    uint rowDiv;    // scale index = (r / rowDiv) * scaleStride + c / colDiv
    uint colDiv;
    uint scaleStride;
    uint colShift;  // log2(colDiv) when it is a power of two, else 32 (no integer division per chunk then)
#ifdef QKV
    uint rows2;     // rows of the second and third weights (rows, outStride: the first's)
    uint groupsQ;   // workgroups of the first weight, then groupsK of the second, the rest the third's
    uint groupsK;
#endif
} pc;

#if DT == DT_F32
#define EPW 1u
#define CW 4u // words per chunk
#elif DT == DT_F16 || DT == DT_BF16
#define EPW 2u
#define CW 4u
#else
#define EPW 4u
#define CW 2u
#endif
#define EPV (CW * EPW) // elements per chunk

// decode_chunk(base, w): the EPV elements of CW words of wq from word base (weights_chunk.glsl).
#define DECODE_FN decode_chunk
#define DECODE_BUF wq
#include "weights_chunk.glsl"
#undef DECODE_FN
#undef DECODE_BUF

#if defined(GLU) || defined(QKV)
// -DGLU (engine MatMulSwiGLU): a second weight of the same dtype and layout (up; the first is gate).
// -DQKV (engine MatMulQKV): three weights of one dtype and layout (bindings 0-1, 4-5, 6-7), each workgroup
// computing rows of one of them (`which`, uniform in the workgroup) into its own output (3, 8, 9).
layout(std430, binding = 4) readonly buffer Wt2 { uint wq2[]; };
layout(std430, binding = 5) readonly buffer Sc2 { float sc2[]; };
#define DECODE_FN decode_chunk2
#define DECODE_BUF wq2
#include "weights_chunk.glsl"
#undef DECODE_FN
#undef DECODE_BUF
#endif

#ifdef QKV
layout(std430, binding = 6) readonly buffer Wt3 { uint wq3[]; };
layout(std430, binding = 7) readonly buffer Sc3 { float sc3[]; };
layout(std430, binding = 8) writeonly buffer Out2 { float outv2[]; };
layout(std430, binding = 9) writeonly buffer Out3 { float outv3[]; };
#define DECODE_FN decode_chunk3
#define DECODE_BUF wq3
#include "weights_chunk.glsl"
#undef DECODE_FN
#undef DECODE_BUF
// Buffers are chosen by branches on `which` (workgroup-uniform), never by a select that would load all.
void decode_sel(uint which, uint base, out float w[EPV]) {
    if (which == 0u) decode_chunk(base, w);
    else if (which == 1u) decode_chunk2(base, w);
    else decode_chunk3(base, w);
}
float scale_sel(uint which, uint i) {
    if (which == 0u) return sc[i];
    if (which == 1u) return sc2[i];
    return sc3[i];
}
void store_sel(uint which, uint i, float v) {
    if (which == 0u) outv[i] = v;
    else if (which == 1u) outv2[i] = v;
    else outv3[i] = v;
}
// MM_SELECT(group): which weight the workgroup computes, group made relative to it, its rows.
#define MM_SELECT(group) \
    uint which = group < pc.groupsQ ? 0u : (group < pc.groupsQ + pc.groupsK ? 1u : 2u); \
    group -= which == 0u ? 0u : (which == 1u ? pc.groupsQ : pc.groupsQ + pc.groupsK); \
    uint mmRows = which == 0u ? pc.rows : pc.rows2;
#define MM_ROWS mmRows
#define MM_OUT_STRIDE mmRows
#define DECODE(base, w) decode_sel(which, base, w)
#define SCL(i) scale_sel(which, i)
#undef OUT_STORE
#define OUT_STORE(i, v) store_sel(which, i, v)
#else
#define MM_SELECT(group)
#define MM_ROWS pc.rows
#define MM_OUT_STRIDE pc.outStride
#define DECODE(base, w) decode_chunk(base, w)
#define SCL(i) sc[i]
#endif

#endif
