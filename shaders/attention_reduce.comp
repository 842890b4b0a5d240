#version 450
// attention_reduce: combines the split-K partitions of attention.comp. One workgroup per (KV head, row):
// per query head, M = max_p m_p, L = sum_p l_p exp(m_p - M), out = sum_p out_p exp(m_p - M) / L, in
// partition order (fixed, so results do not depend on the batch); then the metric from the scores the
// partitions stored (see kv_attn.glsl). Rows that were not split are left alone.
#extension GL_GOOGLE_include_directive : require

#define WG 128
layout(local_size_x = WG) in;

#define KV_USE_META
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"
#include "kv_attn.glsl"
#include "kv_pool.glsl"

shared float mFin[MAX_GROUP];
shared float lFin[MAX_GROUP];

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    if (nParts <= 1u) return;
    uint r = pc.qHeads / pc.kvHeads;
    for (uint h = 0u; h < r; h++) {
        float M = NEG_BIG;
        for (uint p = 0u; p < nParts; p++) M = max(M, part[partialAt(row, kvh, p, h)]);
        float L = 0.0;
        for (uint p = 0u; p < nParts; p++) {
            uint pa = partialAt(row, kvh, p, h);
            L += part[pa + 1u] * exp(part[pa] - M);
        }
        uint ob = (row * pc.qHeads + kvh * r + h) * pc.hd;
        for (uint dd = t; dd < pc.hd; dd += WG) {
            float o = 0.0;
            for (uint p = 0u; p < nParts; p++) {
                uint pa = partialAt(row, kvh, p, h);
                o += part[pa + 2u + dd] * exp(part[pa] - M);
            }
            outp[ob + dd] = L > 0.0 ? o / L : 0.0;
        }
        if (t == 0u && h < MAX_GROUP) { mFin[h] = M; lFin[h] = L; }
    }
    barrier();
    if (pc.mode == 0u) return;
    int qp = qpos[row];
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
