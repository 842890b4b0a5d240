#version 450
// attention: paged decode/prefill attention. One workgroup per (KV head, query row, partition): x = KV head,
// y = row, z = partition (see kv_attn.glsl for the split rule). The workgroup computes the r query heads of
// the KV head's group together (MAX_R at a time), so each K/V row it loads serves the whole group.
// Per tile of WG slots: thread t scores slot t against the group's queries (q pre-scaled in shared
// memory); the tile max updates a running max per head (online softmax, f32). For the output, thread t
// owns head dim t % hd (and t + WG when hd > WG) for all MAX_R heads, so each V element is loaded once
// for the group; with hd < WG the WG / hd thread groups take every (WG/hd)-th slot of the tile and are
// summed in a fixed order at the end. Every per-thread array is indexed by constants (registers).
#extension GL_GOOGLE_include_directive : require

#define WG 128
#define MAX_R 4    // query heads per pass over the context
#define MAX_D 256  // head dim
#define DPT ((MAX_D + WG - 1) / WG) // head dims per thread when hd > WG
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

shared float qs[MAX_R * MAX_D];
shared float ps[MAX_R * WG];
shared float red[MAX_R * WG];
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

// scores: s[h] += dot(qs[h], K row at (arena a, element base)) for every h < MAX_R (qs is 0 past rc).
void scores(uint a, uint base, inout float s[MAX_R]) {
#if KV_F16
    uint w0 = base >> 1u;
#define S(A) \
    for (uint e = 0u; e < pc.hd; e += 2u) { \
        vec2 kv = unpackHalf2x16(K[A].d[w0 + (e >> 1u)]); \
        for (uint h = 0u; h < MAX_R; h++) s[h] += kv.x * qs[h * MAX_D + e] + kv.y * qs[h * MAX_D + e + 1u]; \
    }
#else
#define S(A) \
    for (uint e = 0u; e < pc.hd; e++) { \
        float kv = K[A].d[base + e]; \
        for (uint h = 0u; h < MAX_R; h++) s[h] += kv * qs[h * MAX_D + e]; \
    }
#endif
    KV_SWITCH(a, S)
#undef S
}

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y, prt = gl_WorkGroupID.z;
    uint t = gl_LocalInvocationID.x;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    if (prt >= nParts) return; // the whole workgroup: uniform
    uint partLen = (ctx + nParts - 1u) / nParts;
    uint beg = min(ctx, prt * partLen), end = min(ctx, beg + partLen);
    uint r = pc.qHeads / pc.kvHeads;
    int qp = qpos[row];
    bool metric = pc.mode != 0u;
    // Output layout: nG thread groups of hd threads (or one group covering hd > WG with DPT dims each).
    uint nG = pc.hd <= WG ? WG / pc.hd : 1u;
    uint g = pc.hd <= WG ? t / pc.hd : 0u;
    uint d0 = pc.hd <= WG ? t - g * pc.hd : t;
    bool vAct = g < nG;

    for (uint h0 = 0u; h0 < r; h0 += MAX_R) {
        uint rc = min(MAX_R, r - h0);
        uint qbase = (row * pc.qHeads + kvh * r + h0) * pc.hd;
        for (uint e = t; e < MAX_R * pc.hd; e += WG) {
            uint h = e / pc.hd;
            qs[h * MAX_D + e - h * pc.hd] = h < rc ? q[qbase + e] * pc.scale : 0.0;
        }
        float m[MAX_R], lt[MAX_R], acc[DPT * MAX_R];
        for (uint h = 0u; h < MAX_R; h++) { m[h] = NEG_BIG; lt[h] = 0.0; }
        for (uint k = 0u; k < DPT * MAX_R; k++) acc[k] = 0.0;
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
            float alpha[MAX_R];
            for (uint h = 0u; h < MAX_R; h++) {
                float mn = max(m[h], red[h * WG]);
                alpha[h] = exp(m[h] - mn);
                float p = ka != NONE ? exp(s[h] - mn) : 0.0;
                ps[h * WG + t] = p;
                lt[h] = lt[h] * alpha[h] + p;
                m[h] = mn;
            }
            for (uint k = 0u; k < DPT; k++) {
                for (uint h = 0u; h < MAX_R; h++) acc[k * MAX_R + h] *= alpha[h];
            }
            barrier();
            uint cnt = min(WG, end - tile);
            if (vAct) {
                for (uint j = g; j < cnt; j += nG) {
                    uint aj = tileArena[j];
                    if (aj == NONE) continue;
                    float pj[MAX_R];
                    for (uint h = 0u; h < MAX_R; h++) pj[h] = ps[h * WG + j];
                    for (uint k = 0u; k < DPT; k++) {
                        uint dd = d0 + k * WG;
                        if (dd < pc.hd) {
                            float v = vElem(aj, tileBase[j] + dd);
                            for (uint h = 0u; h < MAX_R; h++) acc[k * MAX_R + h] += pj[h] * v;
                        }
                    }
                }
            }
            barrier();
        }

        // The thread groups' sums, added in group order (ps is free after the last tile's barrier).
        if (nG > 1u) {
            if (vAct) {
                for (uint h = 0u; h < MAX_R; h++) ps[(g * pc.hd + d0) * MAX_R + h] = acc[h];
            }
            barrier();
            if (g == 0u) {
                for (uint h = 0u; h < MAX_R; h++) {
                    float a = ps[d0 * MAX_R + h];
                    for (uint gg = 1u; gg < nG; gg++) a += ps[(gg * pc.hd + d0) * MAX_R + h];
                    acc[h] = a;
                }
            }
        }
        // l[h]: the sum of the threads' partial sums, in a fixed order.
        for (uint h = 0u; h < MAX_R; h++) red[h * WG + t] = lt[h];
        barrier();
        reduceSum(t);
        if (g == 0u) {
            for (uint k = 0u; k < DPT; k++) {
                uint dd = d0 + k * WG;
                if (dd >= pc.hd) continue;
                for (uint h = 0u; h < MAX_R; h++) {
                    if (h >= rc) continue;
                    float l = red[h * WG];
                    float a = acc[k * MAX_R + h];
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

    // Unsplit rows add their metric here; each thread rereads the scores it stored itself.
    if (metric && nParts == 1u) {
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
