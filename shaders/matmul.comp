#version 450
// matmul: out[t][rowBase + r] = sum_c x[t][c] * W[r][c] for the rows of one weight chunk and all n tokens.
// The GPU kernel (coalesced: consecutive invocations read consecutive chunks of a row); CPU devices run
// matmul_rows.comp.
//
// Variants (dense.variants): the weight dtype (DT = DT_F32 ... DT_Q8), NT tokens per pass and R rows per
// workgroup. One workgroup owns R rows; it walks the tokens NT at a time, and for each pass every thread
// accumulates, for each (row, token), the chunks j = tid, tid + WG, ... of the row (CW 32-bit words each;
// per chunk the products of its elements summed left to right, times the chunk's scale), then a fixed
// shared-memory tree adds the WG partial sums. So the R rows' weights come from memory once per dispatch
// (later passes hit the cache), each weight chunk is decoded once per pass for NT tokens and R rows (a
// register tile), and every output element is reduced in the same order for every n, NT and R: a batch
// gives each token the bits it gets alone (the decode and batch variants compile the same expressions;
// TestMatMulBatchRowEqualsAlone checks it on the device). `precise` is not used: on lavapipe it cost 5x.
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64; // power of two

// -DQKV (MatMulQKV): three weights, each workgroup on rows of one (weights.glsl MM_SELECT).
// -DADD adds the sums into out (MatMulAdd). -DGLU (MatMulSwiGLU) tiles RT = 2R rows: tile row r < R is
// gate row r0 + r, tile row R + r the same row of up (bindings 4-5, same dtype and layout); the output is
// silu(gate sum) * up sum, each sum reduced exactly as MatMul reduces it.
#ifdef GLU
#define RT (2u * R)
#define TR(r) ((r) % R)                       // weight row (within the R) of tile row r
#define SC(i, r) ((r) < R ? sc[i] : sc2[i]) // scale i of tile row r's weight
#else
#define RT R
#define TR(r) (r)
#define SC(i, r) SCL(i)
#endif

shared float red[RT * NT][WG];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint group = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    MM_SELECT(group)
    uint r0 = group * R;
    if (r0 >= MM_ROWS) return; // whole workgroup: uniform
    uint nr = min(R, MM_ROWS - r0);

    for (uint t0 = 0u; t0 < pc.n; t0 += NT) {
        uint nt = min(NT, pc.n - t0);
        float acc[RT][NT];
        for (uint r = 0u; r < RT; r++)
            for (uint t = 0u; t < NT; t++) acc[r][t] = 0.0;

#if DT == DT_FP8 || DT == DT_Q8
        uint sbase[RT]; // scale row offsets, hoisted out of the chunk loop
        float srow[RT]; // the scale of each row when it does not vary along the row (per tensor, channel)
        bool rowConst = pc.colShift == 31u;
        for (uint r = 0u; r < RT; r++) {
            sbase[r] = ((r0 + TR(r)) / pc.rowDiv) * pc.scaleStride;
            srow[r] = rowConst && TR(r) < nr ? SC(sbase[r], r) : 0.0;
        }
        bool perChunk = pc.colShift < 32u && (1u << pc.colShift) >= EPV;
#endif
        for (uint j = tid; j < pc.rowWords / CW; j += WG) {
            uint c0 = j * EPV;
            uint ne = min(EPV, pc.cols - c0); // the last chunk of a row may be partial (zero padding)
            float w[RT][EPV];
            float s[RT];
            // No break or continue below: the loops over R, NT and EPV must unroll so that w, acc and xv
            // stay in registers (on lavapipe a dynamically indexed array goes to memory, 8x slower).
            for (uint r = 0u; r < RT; r++) {
                s[r] = 1.0;
                float wr[EPV];
                for (uint e = 0u; e < EPV; e++) wr[e] = 0.0;
                if (TR(r) < nr) {
#ifdef GLU
                    if (r >= R)
                        decode_chunk2((r0 + TR(r)) * pc.rowWords + j * CW, wr);
                    else
#endif
                    DECODE((r0 + r) * pc.rowWords + j * CW, wr);
#if DT == DT_FP8 || DT == DT_Q8
                    uint sb = sbase[r];
                    if (rowConst) {
                        s[r] = srow[r];
                    } else if (perChunk) {
                        s[r] = SC(sb + (c0 >> pc.colShift), r); // the chunk lies in one scale group
                    } else { // q8_0 groups smaller than a chunk (e.g. 4) or not a power of two: per element
                        for (uint e = 0u; e < EPV; e++)
                            if (e < ne) wr[e] *= SC(sb + (pc.colShift < 32u ? (c0 + e) >> pc.colShift : (c0 + e) / pc.colDiv), r);
                    }
#endif
                }
                w[r] = wr;
            }
            for (uint t = 0u; t < NT; t++) {
                if (t < nt) {
                    uint xb = (t0 + t) * pc.cols + c0;
                    float xv[EPV];
                    if (ne == EPV) {
                        for (uint e = 0u; e < EPV; e++) xv[e] = x[xb + e];
                    } else {
                        for (uint e = 0u; e < EPV; e++) xv[e] = e < ne ? x[xb + e] : 0.0;
                    }
                    for (uint r = 0u; r < RT; r++) {
                        float p = 0.0;
                        for (uint e = 0u; e < EPV; e++) p += w[r][e] * xv[e];
#if DT == DT_FP8 || DT == DT_Q8
                        acc[r][t] += p * s[r];
#else
                        acc[r][t] += p;
#endif
                    }
                }
            }
        }

        for (uint r = 0u; r < RT; r++)
            for (uint t = 0u; t < NT; t++) red[r * NT + t][tid] = acc[r][t];
        for (uint h = WG / 2u; h > 0u; h >>= 1) {
            barrier();
            if (tid < h)
                for (uint o = 0u; o < RT * NT; o++) red[o][tid] += red[o][tid + h];
        }
        barrier();
        for (uint o = tid; o < R * NT; o += WG) { // WG may be smaller than R * NT (one subgroup on a CPU)
            uint r = o / NT, t = o % NT;
#ifdef GLU
            if (r < nr && t < nt) { // swiglu.comp's expression
                float g = red[o][0];
                outv[(t0 + t) * pc.outStride + pc.rowBase + r0 + r] = g / (1.0 + exp(-g)) * red[o + R * NT][0];
            }
#else
            if (r < nr && t < nt) OUT_STORE((t0 + t) * MM_OUT_STRIDE + pc.rowBase + r0 + r, red[o][0]);
#endif
        }
        barrier(); // red is reused by the next pass
    }
}
