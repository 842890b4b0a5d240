#version 450
// attention: paged decode/prefill attention. One workgroup per (KV head, query row, partition): x = KV head,
// y = row, z = partition (see kv_attn.glsl for the split rule). The workgroup computes the r query heads of
// the KV head's group together (MAX_R at a time), so each K/V row it loads serves the whole group.
// Per tile of WG slots: thread t scores slot t against the group's queries (q pre-scaled in shared
// memory); the tile max updates a running max per head (online softmax, f32); thread t then accumulates
// its output elements (head, dim) over the tile's probabilities.
#extension GL_GOOGLE_include_directive : require

#define WG 128
#define MAX_R 4    // query heads per pass over the context
#define MAX_D 256  // head dim
#define ACC ((MAX_R * MAX_D) / WG)
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

// Tree reductions over red[h*WG + t] for h < rc; the result lands in red[h*WG].
void reduceMax(uint t, uint rc) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < rc; h++) red[h * WG + t] = max(red[h * WG + t], red[h * WG + t + s]);
        }
        barrier();
    }
}
void reduceSum(uint t, uint rc) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < rc; h++) red[h * WG + t] += red[h * WG + t + s];
        }
        barrier();
    }
}

// scores: s[h] = dot(qs[h], K row at (arena a, element base)) for h < rc.
void scores(uint a, uint base, uint rc, inout float s[MAX_R]) {
#if KV_F16
    uint w0 = base >> 1u;
#define C(A) case A: \
    for (uint e = 0u; e < pc.hd; e += 2u) { \
        vec2 kv = unpackHalf2x16(K[A].d[w0 + (e >> 1u)]); \
        for (uint h = 0u; h < rc; h++) s[h] += kv.x * qs[h * MAX_D + e] + kv.y * qs[h * MAX_D + e + 1u]; \
    } break;
#else
#define C(A) case A: \
    for (uint e = 0u; e < pc.hd; e++) { \
        float kv = K[A].d[base + e]; \
        for (uint h = 0u; h < rc; h++) s[h] += kv * qs[h * MAX_D + e]; \
    } break;
#endif
    switch (a) { KV_ARENA_CASES(C) }
#undef C
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

    for (uint h0 = 0u; h0 < r; h0 += MAX_R) {
        uint rc = min(MAX_R, r - h0);
        uint qbase = (row * pc.qHeads + kvh * r + h0) * pc.hd;
        for (uint e = t; e < rc * pc.hd; e += WG) {
            uint h = e / pc.hd;
            qs[h * MAX_D + e - h * pc.hd] = q[qbase + e] * pc.scale;
        }
        float m[MAX_R], lt[MAX_R], acc[ACC];
        for (uint h = 0u; h < MAX_R; h++) { m[h] = NEG_BIG; lt[h] = 0.0; }
        for (uint k = 0u; k < ACC; k++) acc[k] = 0.0;
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
                        for (uint h = 0u; h < rc; h++) s[h] = 0.0;
                        scores(ka, kb, rc, s);
                    }
                    if (metric) {
                        for (uint h = 0u; h < rc; h++) scratchStore(slot, h0 + h, s[h]);
                    }
                }
            }
            tileArena[t] = ka;
            tileBase[t] = kb;
            for (uint h = 0u; h < rc; h++) red[h * WG + t] = s[h];
            barrier();
            reduceMax(t, rc);
            float alpha[MAX_R];
            for (uint h = 0u; h < rc; h++) {
                float mn = max(m[h], red[h * WG]);
                alpha[h] = exp(m[h] - mn);
                float p = ka != NONE ? exp(s[h] - mn) : 0.0;
                ps[h * WG + t] = p;
                lt[h] = lt[h] * alpha[h] + p;
                m[h] = mn;
            }
            barrier();
            uint cnt = min(WG, end - tile);
            for (uint k = 0u; k < ACC; k++) {
                uint e = t + k * WG;
                if (e < rc * pc.hd) {
                    uint h = e / pc.hd, dd = e - h * pc.hd;
                    float a = acc[k] * alpha[h];
                    for (uint j = 0u; j < cnt; j++) {
                        uint aj = tileArena[j];
                        if (aj != NONE) a += ps[h * WG + j] * vElem(aj, tileBase[j] + dd);
                    }
                    acc[k] = a;
                }
            }
            barrier();
        }

        // l[h]: the sum of the threads' partial sums, in a fixed order.
        for (uint h = 0u; h < rc; h++) red[h * WG + t] = lt[h];
        barrier();
        reduceSum(t, rc);
        for (uint k = 0u; k < ACC; k++) {
            uint e = t + k * WG;
            if (e < rc * pc.hd) {
                uint h = e / pc.hd, dd = e - h * pc.hd;
                float l = red[h * WG];
                if (nParts == 1u) {
                    outp[qbase + e] = l > 0.0 ? acc[k] / l : 0.0;
                } else {
                    uint pa = partialAt(row, kvh, prt, h0 + h);
                    part[pa + 2u + dd] = acc[k];
                    if (dd == 0u) { part[pa] = m[h]; part[pa + 1u] = l; }
                }
            }
        }
        if (t == 0u) {
            for (uint h = 0u; h < rc; h++) { mFin[h0 + h] = m[h]; lFin[h0 + h] = red[h * WG]; }
        }
        barrier(); // red, qs and mFin before the next group pass or the metric pass
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
