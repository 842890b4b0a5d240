#version 450
// matmul_rows: the matmul of matmul.comp for CPU devices (lavapipe). One invocation per output row: it
// walks its row chunk by chunk (CW words; per chunk the products of its elements summed left to right,
// times the chunk's scale) for NT tokens at a time, so each invocation streams its own row. The x values
// of a chunk are the same for the whole subgroup: lane e loads element e and subgroupBroadcast hands it
// to the others, one load per lane instead of EPV (lavapipe pays every load per lane). The workgroup is
// one subgroup of at least EPV (8) invocations. No shared memory, no barriers. Every output element is
// reduced in the same order for every n (the _n1 and _nb variants compile the same expressions).
// -DADD adds the sums into out (MatMulAdd); -DGLU also sums a second weight's row (up, bindings 4-5) and
// writes silu(gate sum) * up sum (MatMulSwiGLU); -DQKV runs three weights, a workgroup on one of them
// (MatMulQKV).
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"
#ifndef SCALE
#define SCALE 0
#endif
#extension GL_KHR_shader_subgroup_ballot : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;

void main() {
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    MM_SELECT(group)
    uint r = group * WG + gl_LocalInvocationID.x; // local row in this weight chunk
    bool live = r < MM_ROWS;
    uint rr = live ? r : 0u; // idle lanes read row 0 and write nothing
    uint chunks = pc.rowWords / CW;
// SCALE (fp8, q8_0): 1 one scale per row (hoisted), 2 one per group of at least a chunk (a power of two),
// 3 one per element (smaller or odd groups). A compile-time choice: a CPU device runs both sides of every
// branch under a mask, so a runtime choice would pay for all three.
#if SCALE > 0
    uint sb = (rr / pc.rowDiv) * pc.scaleStride;
    float s = SCALE == 1 ? SCL(sb) : 1.0;
#ifdef GLU
    float s2 = SCALE == 1 ? sc2[sb] : 1.0;
#endif
#endif
    for (uint t0 = 0u; t0 < pc.n; t0 += NT) {
        uint nt = min(NT, pc.n - t0);
        float acc[NT];
        for (uint t = 0u; t < NT; t++) acc[t] = 0.0;
#ifdef GLU
        float acc2[NT]; // the up row's sums (acc: the gate row's)
        for (uint t = 0u; t < NT; t++) acc2[t] = 0.0;
#endif
        for (uint j = 0u; j < chunks; j++) {
            uint c0 = j * EPV;
            uint ne = min(EPV, pc.cols - c0);
            float w[EPV];
            DECODE(rr * pc.rowWords + j * CW, w);
#ifdef GLU
            float w2[EPV];
            decode_chunk2(rr * pc.rowWords + j * CW, w2);
#endif
#if SCALE == 2
            if ((c0 & ((1u << pc.colShift) - 1u)) < EPV) s = SCL(sb + (c0 >> pc.colShift)); // a new group
#ifdef GLU
            if ((c0 & ((1u << pc.colShift) - 1u)) < EPV) s2 = sc2[sb + (c0 >> pc.colShift)];
#endif
#elif SCALE == 3
            for (uint e = 0u; e < EPV; e++)
                if (e < ne) w[e] *= SCL(sb + (pc.colShift < 32u ? (c0 + e) >> pc.colShift : (c0 + e) / pc.colDiv));
#ifdef GLU
            for (uint e = 0u; e < EPV; e++)
                if (e < ne) w2[e] *= sc2[sb + (pc.colShift < 32u ? (c0 + e) >> pc.colShift : (c0 + e) / pc.colDiv)];
#endif
#endif
            for (uint t = 0u; t < NT; t++) {
                if (t < nt) {
                    uint lane = gl_SubgroupInvocationID;
                    float xl = lane < ne ? x[(t0 + t) * pc.cols + c0 + lane] : 0.0;
                    float p = 0.0;
                    for (uint e = 0u; e < EPV; e++) p += w[e] * subgroupBroadcast(xl, e);
#if SCALE > 0
                    acc[t] += p * s;
#else
                    acc[t] += p;
#endif
#ifdef GLU
                    float p2 = 0.0;
                    for (uint e = 0u; e < EPV; e++) p2 += w2[e] * subgroupBroadcast(xl, e);
#if SCALE > 0
                    acc2[t] += p2 * s2;
#else
                    acc2[t] += p2;
#endif
#endif
                }
            }
        }
        if (live)
            for (uint t = 0u; t < NT; t++)
#ifdef GLU
                if (t < nt) outv[(t0 + t) * pc.outStride + pc.rowBase + r] = acc[t] / (1.0 + exp(-acc[t])) * acc2[t]; // swiglu.comp's
#else
                if (t < nt) OUT_STORE((t0 + t) * MM_OUT_STRIDE + pc.rowBase + r, acc[t]);
#endif
    }
}
