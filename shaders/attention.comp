#version 450
// attention: paged decode/prefill attention. One workgroup per (KV head, query row, z): x = KV head, y = row;
// workgroup z computes partitions z, z + depth, ... of the row's context (kv_attn.glsl: the split rule).
// The workgroup computes the r query heads of the KV head's group together (MAX_R at a time), so each K/V
// row it loads serves the whole group. Per tile of WG slots: thread t scores slot t against the group's
// queries (q pre-scaled in shared memory, one 16-byte chunk at a time); the tile max updates a running
// max per head (online softmax, f32). For the output, thread t owns one chunk of head dims (chunk t % nC,
// nC = ceil(hd/CH)) for all MAX_R heads, so each V element is loaded once for the group; the WG / nC
// thread groups take every (WG/nC)-th slot of the tile and are summed in a fixed order at the end.
// Per-thread arrays are indexed by constants only (registers): on SIMD-on-CPU drivers (lavapipe) per-lane
// indexing and per-element loop overhead dominate.
#extension GL_GOOGLE_include_directive : require

#define WG 128
#define MAX_R 4    // query heads per pass over the context
#define MAX_D 256  // head dim
#define MQ (MAX_D / 4) // quads per head
layout(local_size_x = WG) in;

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#define KV_K_READONLY
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"
#include "kv_attn.glsl"
#include "kv_pool.glsl"
#include "kv_combine.glsl"
#include "kv_chunk.glsl"

shared vec4 qs[MAX_R * MQ];
shared float ps[MAX_R * WG];
shared float red[MAX_R * WG];
shared vec4 comb[WG * NV];
shared uint tileArena[WG];
shared uint tileBase[WG];

const uint NONE = 0xffffffffu;

// Tree reductions over red[h*WG + t] for h < MAX_R; the result lands in red[h*WG].
void reduceMax(uint t) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < MAX_R; h++) red[h * WG + t] = max(red[h * WG + t], red[h * WG + t + s]);
        }
        barrier();
    }
}
void reduceSum(uint t) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < MAX_R; h++) red[h * WG + t] += red[h * WG + t + s];
        }
        barrier();
    }
}

// scores: s[h] += dot(qs[h], K row at (arena a, element base)) for every h < MAX_R (qs is 0 past rc).
void scores(uint a, uint base, bool fast, inout float s[MAX_R]) {
    uint nC = (pc.hd + CH - 1u) / CH;
    for (uint c = 0u; c < nC; c++) {
        vec4 x[NV];
        loadChunk(false, a, base, c, fast, x);
        for (uint h = 0u; h < MAX_R; h++) {
            for (uint v = 0u; v < NV; v++) s[h] += dot(x[v], qs[h * MQ + c * NV + v]);
        }
    }
}

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y;
    if (kvTiledRow(row, kvh) || kvWindowRow(row, kvh)) return; // attention_tiled.comp's, the fused window's (uniform)
    uint t = gl_LocalInvocationID.x;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    uint partLen = (ctx + nParts - 1u) / nParts;
    uint r = pc.qHeads / pc.kvHeads;
    int qp = qpos[row];
    bool metric = pc.mode != 0u && row < pc.metricRows;
    // Output layout: nG thread groups of nC threads, each thread one chunk (CH head dims).
    uint nC = (pc.hd + CH - 1u) / CH;
    uint nG = WG / nC;
    uint g = t / nC;
    uint cc = t - g * nC;
    bool vAct = g < nG;
    bool fast = pc.hd % CH == 0u;

    // Workgroup z computes partitions z, z + Z, ... (Z = the grid's depth, chosen by the host to fill the
    // device); a partition's arithmetic does not depend on which workgroup computes it.
    for (uint prt = gl_WorkGroupID.z; prt < nParts; prt += gl_NumWorkGroups.z) {
        uint beg = min(ctx, prt * partLen), end = min(ctx, beg + partLen);
        for (uint h0 = 0u; h0 < r; h0 += MAX_R) {
            uint rc = min(MAX_R, r - h0);
            uint qbase = (row * pc.qHeads + kvh * r + h0) * pc.hd;
            for (uint e = t; e < MAX_R * MQ; e += WG) {
                uint h = e / MQ, d4 = (e - h * MQ) * 4u;
                vec4 v = vec4(0.0);
                for (uint c = 0u; c < 4u; c++) {
                    if (h < rc && d4 + c < pc.hd) v[c] = q[qbase + h * pc.hd + d4 + c] * pc.scale;
                }
                qs[e] = v;
            }
            float m[MAX_R], lt[MAX_R];
            vec4 acc[MAX_R * NV];
            for (uint h = 0u; h < MAX_R; h++) { m[h] = NEG_BIG; lt[h] = 0.0; }
            for (uint k = 0u; k < MAX_R * NV; k++) acc[k] = vec4(0.0);
            barrier();

            for (uint tile = beg; tile < end; tile += WG) {
                uint i = tile + t;
                float s[MAX_R];
                for (uint h = 0u; h < MAX_R; h++) s[h] = NEG_BIG;
                uint ka = NONE, kb = 0u;
                if (i < end) {
                    uint slot = KV_SLOT_OF(tables, off, i);
                    if (slot != KV_NO_SLOT) {
                        if (posLoad(slot) <= qp) {
                            ka = slot / pc.kSlots;
                            kb = (slot - ka * pc.kSlots) * pc.hd;
                            for (uint h = 0u; h < MAX_R; h++) s[h] = 0.0;
                            scores(ka, kb, fast, s);
                        }
                        if (metric) {
                            for (uint h = 0u; h < MAX_R; h++) {
                                if (h < rc) scratchStore(slot, h0 + h, s[h]);
                            }
                        }
                    }
                }
                tileArena[t] = ka;
                tileBase[t] = kb;
                for (uint h = 0u; h < MAX_R; h++) red[h * WG + t] = s[h];
                barrier();
                reduceMax(t);
                for (uint h = 0u; h < MAX_R; h++) {
                    float mn = max(m[h], red[h * WG]);
                    float alpha = exp(m[h] - mn);
                    float p = ka != NONE ? exp(s[h] - mn) : 0.0;
                    ps[h * WG + t] = p;
                    lt[h] = lt[h] * alpha + p;
                    for (uint v = 0u; v < NV; v++) acc[h * NV + v] *= alpha;
                    m[h] = mn;
                }
                barrier();
                uint cnt = min(WG, end - tile);
                if (vAct) {
                    for (uint j = g; j < cnt; j += nG) {
                        uint aj = tileArena[j];
                        if (aj == NONE) continue;
                        vec4 x[NV];
                        loadChunk(true, aj, tileBase[j], cc, fast, x);
                        for (uint h = 0u; h < MAX_R; h++) {
                            float p = ps[h * WG + j];
                            for (uint v = 0u; v < NV; v++) acc[h * NV + v] += p * x[v];
                        }
                    }
                }
                barrier();
            }

            // The thread groups' sums, added in group order, one head at a time.
            for (uint h = 0u; h < MAX_R; h++) {
                if (vAct) {
                    for (uint v = 0u; v < NV; v++) comb[t * NV + v] = acc[h * NV + v];
                }
                barrier();
                if (g == 0u) {
                    for (uint v = 0u; v < NV; v++) {
                        vec4 a = comb[cc * NV + v];
                        for (uint gg = 1u; gg < nG; gg++) a += comb[(gg * nC + cc) * NV + v];
                        acc[h * NV + v] = a;
                    }
                }
                barrier();
            }
            // l[h]: the sum of the threads' partial sums, in a fixed order.
            for (uint h = 0u; h < MAX_R; h++) red[h * WG + t] = lt[h];
            barrier();
            reduceSum(t);
            if (g == 0u) {
                for (uint h = 0u; h < MAX_R; h++) {
                    if (h >= rc) continue;
                    float l = red[h * WG];
                    float av[CH];
                    for (uint v = 0u; v < NV; v++) {
                        vec4 a4 = acc[h * NV + v];
                        av[v * 4u] = a4.x; av[v * 4u + 1u] = a4.y; av[v * 4u + 2u] = a4.z; av[v * 4u + 3u] = a4.w;
                    }
                    for (uint c = 0u; c < CH; c++) {
                        uint dd = cc * CH + c;
                        if (dd >= pc.hd) continue;
                        float a = av[c];
                        if (nParts == 1u) {
                            outp[qbase + h * pc.hd + dd] = l > 0.0 ? a / l : 0.0;
                        } else {
                            uint pa = partialAt(row, kvh, prt, h0 + h);
                            part[pa + 2u + dd] = a;
                            if (dd == 0u) { part[pa] = m[h]; part[pa + 1u] = l; }
                        }
                    }
                }
            }
            if (t == 0u) {
                for (uint h = 0u; h < MAX_R; h++) {
                    if (h < rc) { mFin[h0 + h] = m[h]; lFin[h0 + h] = red[h * WG]; }
                }
            }
            barrier(); // red, ps, qs and mFin before the next group pass or the metric pass
        }
    }

    if (nParts == 1u) {
        // Unsplit rows add their metric here; each thread rereads the scores it stored itself.
        if (metric && gl_WorkGroupID.z == 0u) addMetric(off, ctx, r, qp, t);
    } else if (gl_NumWorkGroups.z == 1u) {
        // This workgroup computed every partition: combine them here (no reduce dispatch).
        memoryBarrierBuffer();
        barrier();
        combineParts(row, kvh, nParts, off, ctx, qp, t);
    }
}
