#version 450
// matmul_tiled: the matmul of matmul.comp for batches of many tokens on GPUs (prompt processing;
// engine/gpu/ops_dense.go chooses it, see tiledMinRows there). out[t][rowBase + r] = sum_c x[t][c] * W[r][c].
//
// One workgroup of 128 invocations computes a tile of TT = 64 tokens by TR = 64 weight rows. The K
// dimension is walked BK = 32 columns at a time; each slab is staged in shared memory first: the 64
// tokens' activations, and the 64 rows' weights decoded from their dtype and multiplied by their scale
// (so each weight is decoded once per 64 tokens and each activation read once per 64 rows, where
// matmul.comp reads every token's activations again for every 2 rows). Then each invocation accumulates a
// register block of 8 tokens by 4 rows from the two slabs: 12 shared loads per 32 multiply-adds.
//
// Every output element is the sum over c = 0, 1, ... of x[t][c] * (decoded W[r][c] * its scale), left to
// right in one f32 accumulator (columns past the row's end add 0), whatever n, the tile and the token's
// place in it: a token gets the same bits in any batch this kernel runs, though not matmul.comp's bits
// (that kernel sums strided chunks per invocation, then a tree).
//
// Variants (dense.variants): the weight dtype DT; every scale layout of fp8 and q8_0 is handled at run
// time (a chunk's weights are scaled once per 64 tokens, so the choice costs little). The fused variants
// of fused.table: -DADD adds into out (MatMulAdd); -DQKV runs three weights, a workgroup on row tiles of
// one of them (weights.glsl MM_SELECT); -DGLU tiles 32 gate rows and the same 32 up rows (bindings 4-5)
// and writes silu(gate sum) * up sum, each sum reduced as MatMul reduces it here.
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"

#define NTHR 128u // invocations; the Go side checks the device allows them (tiledWG)
#define TT 64u    // tokens per tile
#define TR 64u    // tile rows (GLU: 32 gate rows, then the same 32 rows of up)
#define BK 32u    // columns per slab, a multiple of every EPV
#define BT 8u     // tokens per invocation: ty + 8 j, ty = tid / 16
#define BR 4u     // tile rows per invocation: tx + 16 i, tx = tid % 16
layout(local_size_x = 128) in;

#ifdef GLU
#define GR (TR / 2u) // weight rows per workgroup
#else
#define GR TR
#endif

// The slabs, [BK][64] each (16 KiB together, Vulkan's guaranteed minimum), with the 64-wide index XORed
// by a function of the column so that neither the staging stores (a subgroup writes one token's or a few
// rows' consecutive columns) nor the block loads (one column, consecutive tokens or rows) share banks.
shared float xs[BK * TT];
shared float ws[BK * TR];
#define XS(k, t) xs[(k) * TT + ((t) ^ (k))]
#define WS(k, r) ws[(k) * TR + ((r) ^ ((k) & ~(EPV - 1u)))]

#ifdef GLU
#define TSCALE(i, up) ((up) ? sc2[i] : sc[i])
#else
#define TSCALE(i, up) SCL(i)
#endif

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint group = gl_WorkGroupID.x;
    MM_SELECT(group)
    uint r0 = group * GR;
    if (r0 >= MM_ROWS) return; // whole workgroup: uniform
    uint tx = tid % 16u, ty = tid / 16u;
    uint chunks = pc.rowWords / CW; // chunks a stored (padded) row has

    for (uint tt = gl_WorkGroupID.y; tt * TT < pc.n; tt += gl_NumWorkGroups.y) {
        uint t0 = tt * TT;
        float acc[BT][BR];
        for (uint j = 0u; j < BT; j++)
            for (uint i = 0u; i < BR; i++) acc[j][i] = 0.0;

        for (uint k0 = 0u; k0 < pc.cols; k0 += BK) {
            // Activations: element e of the slab is column e % BK of token e / BK (a subgroup reads
            // consecutive columns); tokens past n and columns past the row read as 0.
            for (uint e = tid; e < BK * TT; e += NTHR) {
                uint kk = e % BK, t = e / BK;
                uint c = k0 + kk, tok = t0 + t;
                XS(kk, t) = (tok < pc.n && c < pc.cols) ? x[tok * pc.cols + c] : 0.0;
            }
            // Weights: chunk q of the slab is chunk q % (BK / EPV) of tile row q / (BK / EPV), decoded
            // and scaled; rows past the weight's end and columns past the row's end are 0.
            for (uint q = tid; q < TR * (BK / EPV); q += NTHR) {
                uint tr = q / (BK / EPV), jj = q % (BK / EPV);
                uint j = k0 / EPV + jj, c0 = j * EPV;
                bool up = false;
                uint row = r0 + tr;
#ifdef GLU
                up = tr >= GR;
                row = r0 + tr % GR;
#endif
                float w[EPV];
                for (uint e = 0u; e < EPV; e++) w[e] = 0.0;
                if (row < MM_ROWS && j < chunks && c0 < pc.cols) {
#ifdef GLU
                    if (up)
                        decode_chunk2(row * pc.rowWords + j * CW, w);
                    else
#endif
                    DECODE(row * pc.rowWords + j * CW, w);
#if DT == DT_FP8 || DT == DT_Q8
                    uint sb = (row / pc.rowDiv) * pc.scaleStride;
                    if (pc.colShift < 32u && (1u << pc.colShift) >= EPV) { // the chunk lies in one scale group
                        float s = TSCALE(sb + (c0 >> pc.colShift), up);
                        for (uint e = 0u; e < EPV; e++) w[e] *= s;
                    } else { // q8_0 groups smaller than a chunk or not a power of two: per element
                        for (uint e = 0u; e < EPV; e++)
                            if (c0 + e < pc.cols)
                                w[e] *= TSCALE(sb + (pc.colShift < 32u ? (c0 + e) >> pc.colShift : (c0 + e) / pc.colDiv), up);
                    }
#endif
                }
                for (uint e = 0u; e < EPV; e++) WS(jj * EPV + e, tr) = c0 + e < pc.cols ? w[e] : 0.0;
            }
            barrier();
            for (uint k = 0u; k < BK; k++) {
                float xv[BT], wv[BR];
                for (uint j = 0u; j < BT; j++) xv[j] = XS(k, ty + 8u * j);
                for (uint i = 0u; i < BR; i++) wv[i] = WS(k, tx + 16u * i);
                for (uint j = 0u; j < BT; j++)
                    for (uint i = 0u; i < BR; i++) acc[j][i] += xv[j] * wv[i];
            }
            barrier(); // the slabs are restaged next
        }

        for (uint j = 0u; j < BT; j++) {
            uint tok = t0 + ty + 8u * j;
#ifdef GLU
            for (uint i = 0u; i < BR / 2u; i++) { // tile rows tx + 16 i (gate) and the same rows + 32 (up)
                uint row = r0 + tx + 16u * i;
                if (tok < pc.n && row < MM_ROWS) { // swiglu.comp's expression
                    float g = acc[j][i];
                    outv[tok * pc.outStride + pc.rowBase + row] = g / (1.0 + exp(-g)) * acc[j][i + BR / 2u];
                }
            }
#else
            for (uint i = 0u; i < BR; i++) {
                uint row = r0 + tx + 16u * i;
                if (tok < pc.n && row < MM_ROWS) OUT_STORE(tok * MM_OUT_STRIDE + pc.rowBase + row, acc[j][i]);
            }
#endif
        }
    }
}
