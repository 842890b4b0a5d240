#version 450
// matmul: out[t][rowBase + r] = sum_c x[t][c] * W[r][c] for the rows of one weight chunk and all n tokens.
//
// Variants (dense.variants): the weight dtype (DT = DT_F32 ... DT_Q8), NT tokens per pass and R rows per
// workgroup. One workgroup owns R rows; it walks the tokens NT at a time, and for each pass every thread
// accumulates, for each (row, token), the 16-byte chunks j = tid, tid + WG, ... of the row (per chunk:
// the products of its elements summed left to right, times the chunk's scale), then a fixed shared-memory
// tree adds the WG partial sums. So the R rows' weights come from memory once per dispatch (later passes
// hit the cache), each weight chunk is decoded once per pass for NT tokens and R rows (a register tile),
// and the reduction order of every output element is the same for every n, NT and R: a batch gives each
// token the bits it gets alone. `precise` keeps the compiler from fusing or reordering those sums.
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64; // power of two

layout(std430, binding = 0) readonly buffer Wt { uvec4 wq[]; };
layout(std430, binding = 1) readonly buffer Sc { float sc[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) writeonly buffer Out { float outv[]; };

layout(push_constant) uniform Push {
    uint rows;      // rows in this chunk
    uint cols;
    uint n;         // tokens
    uint rowVec4;   // row stride in 16-byte units
    uint outStride; // total rows of the weight
    uint rowBase;   // first row of this chunk in the weight
    uint rowDiv;    // scale index = (r / rowDiv) * scaleStride + c / colDiv
    uint colDiv;
    uint scaleStride;
} pc;

#if DT == DT_F32
#define EPV 4u
#elif DT == DT_F16 || DT == DT_BF16
#define EPV 8u
#else
#define EPV 16u
#endif

shared float red[R * NT][WG];

void decode_chunk(uvec4 q, out float w[EPV]) {
#if DT == DT_F32
    for (uint e = 0u; e < 4u; e++) w[e] = uintBitsToFloat(q[e]);
#elif DT == DT_F16
    for (uint e = 0u; e < 4u; e++) { vec2 h = unpackHalf2x16(q[e]); w[2u*e] = h.x; w[2u*e+1u] = h.y; }
#elif DT == DT_BF16
    for (uint e = 0u; e < 4u; e++) { vec2 h = bf16x2(q[e]); w[2u*e] = h.x; w[2u*e+1u] = h.y; }
#elif DT == DT_FP8
    for (uint e = 0u; e < 4u; e++) { vec4 v = fp8x4(q[e]); w[4u*e] = v.x; w[4u*e+1u] = v.y; w[4u*e+2u] = v.z; w[4u*e+3u] = v.w; }
#else
    for (uint e = 0u; e < 4u; e++) { vec4 v = q8x4(q[e]); w[4u*e] = v.x; w[4u*e+1u] = v.y; w[4u*e+2u] = v.z; w[4u*e+3u] = v.w; }
#endif
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint r0 = group * R;
    if (r0 >= pc.rows) return; // whole workgroup: uniform
    uint nr = min(R, pc.rows - r0);

    for (uint t0 = 0u; t0 < pc.n; t0 += NT) {
        uint nt = min(NT, pc.n - t0);
        precise float acc[R][NT];
        for (uint r = 0u; r < R; r++)
            for (uint t = 0u; t < NT; t++) acc[r][t] = 0.0;

        for (uint j = tid; j < pc.rowVec4; j += WG) {
            uint c0 = j * EPV;
            float w[R][EPV];
            float s[R];
            for (uint r = 0u; r < R; r++) {
                float wr[EPV];
                decode_chunk(r < nr ? wq[(r0 + r) * pc.rowVec4 + j] : uvec4(0u), wr);
#if DT == DT_FP8 || DT == DT_Q8
                s[r] = 0.0;
                if (r < nr) {
                    uint sb = ((r0 + r) / pc.rowDiv) * pc.scaleStride;
                    if (pc.colDiv % EPV == 0u) {
                        s[r] = sc[sb + c0 / pc.colDiv]; // the chunk lies in one scale group
                    } else { // q8_0 groups smaller than a chunk (e.g. 4): scale each element
                        s[r] = 1.0;
                        for (uint e = 0u; e < EPV; e++)
                            if (c0 + e < pc.cols) wr[e] *= sc[sb + (c0 + e) / pc.colDiv];
                    }
                }
#endif
                w[r] = wr;
            }
            uint ne = min(EPV, pc.cols - c0); // the last chunk of a row may be partial (zero padding)
            for (uint t = 0u; t < NT; t++) {
                if (t >= nt) break;
                float xv[EPV];
                uint xb = (t0 + t) * pc.cols + c0;
                for (uint e = 0u; e < EPV; e++) xv[e] = e < ne ? x[xb + e] : 0.0;
                for (uint r = 0u; r < R; r++) {
                    precise float p = 0.0;
                    for (uint e = 0u; e < EPV; e++) p += w[r][e] * xv[e];
#if DT == DT_FP8 || DT == DT_Q8
                    acc[r][t] += p * s[r];
#else
                    acc[r][t] += p;
#endif
                }
            }
        }

        for (uint r = 0u; r < R; r++)
            for (uint t = 0u; t < NT; t++) red[r * NT + t][tid] = acc[r][t];
        for (uint h = WG / 2u; h > 0u; h >>= 1) {
            barrier();
            if (tid < h)
                for (uint o = 0u; o < R * NT; o++) red[o][tid] += red[o][tid + h];
        }
        barrier();
        if (tid < R * NT) {
            uint r = tid / NT, t = tid % NT;
            if (r < nr && t < nt) outv[(t0 + t) * pc.outStride + pc.rowBase + r0 + r] = red[tid][0];
        }
        barrier(); // red is reused by the next pass
    }
}
