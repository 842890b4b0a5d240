#version 450
// attention: paged decode/prefill attention. One workgroup per (KV head, query row, partition): x = KV head,
// y = row, z = partition (see kv_attn.glsl for the split rule). The workgroup computes the r query heads of
// the KV head's group together (MAX_R at a time), so each K/V row it loads serves the whole group.
// Per tile of WG slots: thread t scores slot t against the group's queries (q pre-scaled in shared
// memory, 4 dims at a time); the tile max updates a running max per head (online softmax, f32). For the
// output, thread t owns 4 consecutive head dims (quad t % nQ, nQ = ceil(hd/4)) for all MAX_R heads, so
// each V element is loaded once for the group; the WG / nQ thread groups take every (WG/nQ)-th slot of
// the tile and are summed in a fixed order at the end. Per-thread arrays are indexed by constants only
// (registers): on SIMD-on-CPU drivers (lavapipe) per-lane indexing and per-element loop overhead dominate.
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

shared vec4 qs[MAX_R * MQ];
shared float ps[MAX_R * WG];
shared float red[MAX_R * WG];
shared vec4 comb[WG];
shared uint tileArena[WG];
shared uint tileBase[WG];
shared float mFin[MAX_GROUP];
shared float lFin[MAX_GROUP];

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

// Quad qd (dims 4qd..4qd+3) of the K or V row at element base of arena A; dims past hd read as 0.
// base is even (hd is even for f16 pools), so a quad is two words.
#if KV_F16
#define QUAD_FULL(ARR, A, base, qd) vec4(unpackHalf2x16(ARR[A].d[((base) >> 1u) + 2u * (qd)]), \
    unpackHalf2x16(ARR[A].d[((base) >> 1u) + 2u * (qd) + 1u]))
#define QUAD_TAIL(ARR, A, base, qd) vec4(unpackHalf2x16(ARR[A].d[((base) >> 1u) + 2u * (qd)]), \
    4u * (qd) + 2u < pc.hd ? unpackHalf2x16(ARR[A].d[((base) >> 1u) + 2u * (qd) + 1u]) : vec2(0.0))
#else
#define QUAD_FULL(ARR, A, base, qd) vec4(ARR[A].d[(base) + 4u * (qd)], ARR[A].d[(base) + 4u * (qd) + 1u], \
    ARR[A].d[(base) + 4u * (qd) + 2u], ARR[A].d[(base) + 4u * (qd) + 3u])
#define QUAD_TAIL(ARR, A, base, qd) vec4(ARR[A].d[(base) + 4u * (qd)], \
    4u * (qd) + 1u < pc.hd ? ARR[A].d[(base) + 4u * (qd) + 1u] : 0.0, \
    4u * (qd) + 2u < pc.hd ? ARR[A].d[(base) + 4u * (qd) + 2u] : 0.0, \
    4u * (qd) + 3u < pc.hd ? ARR[A].d[(base) + 4u * (qd) + 3u] : 0.0)
#endif

// scores: s[h] += dot(qs[h], K row at (arena a, element base)) for every h < MAX_R (qs is 0 past rc).
void scores(uint a, uint base, inout float s[MAX_R]) {
    uint full = pc.hd / 4u;
#define S(A) \
    for (uint qd = 0u; qd < full; qd++) { \
        vec4 k4 = QUAD_FULL(K, A, base, qd); \
        for (uint h = 0u; h < MAX_R; h++) s[h] += dot(k4, qs[h * MQ + qd]); \
    } \
    if (full * 4u < pc.hd) { \
        vec4 k4 = QUAD_TAIL(K, A, base, full); \
        for (uint h = 0u; h < MAX_R; h++) s[h] += dot(k4, qs[h * MQ + full]); \
    }
    KV_SWITCH(a, S)
#undef S
}

vec4 vQuad(uint a, uint base, uint qd) {
#define S(A) return qd * 4u + 4u <= pc.hd ? QUAD_FULL(V, A, base, qd) : QUAD_TAIL(V, A, base, qd);
    KV_SWITCH(a, S)
#undef S
    return vec4(0.0);
}

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    uint partLen = (ctx + nParts - 1u) / nParts;
    uint r = pc.qHeads / pc.kvHeads;
    int qp = qpos[row];
    bool metric = pc.mode != 0u;
    // Output layout: nG thread groups of nQ threads, each thread one quad of head dims.
    uint nQ = (pc.hd + 3u) / 4u;
    uint nG = WG / nQ;
    uint g = t / nQ;
    uint qd = t - g * nQ;
    bool vAct = g < nG;

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
            vec4 acc[MAX_R];
            for (uint h = 0u; h < MAX_R; h++) { m[h] = NEG_BIG; lt[h] = 0.0; acc[h] = vec4(0.0); }
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
                            scores(ka, kb, s);
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
                    acc[h] *= alpha;
                    m[h] = mn;
                }
                barrier();
                uint cnt = min(WG, end - tile);
                if (vAct) {
                    for (uint j = g; j < cnt; j += nG) {
                        uint aj = tileArena[j];
                        if (aj == NONE) continue;
                        vec4 v = vQuad(aj, tileBase[j], qd);
                        for (uint h = 0u; h < MAX_R; h++) acc[h] += ps[h * WG + j] * v;
                    }
                }
                barrier();
            }

            // The thread groups' sums, added in group order, one head at a time.
            for (uint h = 0u; h < MAX_R; h++) {
                if (vAct) comb[t] = acc[h];
                barrier();
                if (g == 0u) {
                    vec4 a = comb[qd];
                    for (uint gg = 1u; gg < nG; gg++) a += comb[gg * nQ + qd];
                    acc[h] = a;
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
                    for (uint c = 0u; c < 4u; c++) {
                        uint dd = qd * 4u + c;
                        if (dd >= pc.hd) continue;
                        float a = acc[h][c];
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

    // Unsplit rows add their metric here; each thread rereads the scores it stored itself.
    if (metric && nParts == 1u && gl_WorkGroupID.z == 0u) {
        for (uint i = t; i < ctx; i += WG) {
            uint slot = KV_SLOT_OF(tables, off, i);
            if (slot == KV_NO_SLOT || posLoad(slot) > qp) continue;
            float add = 0.0;
            for (uint h = 0u; h < r; h++) {
                if (lFin[h] > 0.0) add += metricOf(exp(scratchLoad(slot, h) - mFin[h]) / lFin[h]);
            }
            metricStore(slot, metricLoad(slot) + add);
        }
    }
}
