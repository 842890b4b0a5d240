#version 450
// window_metric: the prefill observation-window metric (engine.WindowSpec). One workgroup per (KV head,
// sequence): x = KV head, y = sequence. For each query head h of the group and each window row, two passes
// over the head's slots (max and sum, then the probabilities) add f(p) into scratch entry 0 of each slot
// (s_h, in scratch because contexts can be far larger than shared memory); then s_h is max-pooled over the
// logical slot order (kernel 7, padding 3, padding not contributing) into scratch entry 1 (the group sum),
// which is finally added into the metric. The workgroup owns the head's slots, so no atomics are needed.
#extension GL_GOOGLE_include_directive : require

#define WG 128
#define MAX_D 256
layout(local_size_x = WG) in;

#define KV_USE_K
#define KV_USE_META
#define KV_K_READONLY
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"

layout(std430, binding = 5) readonly buffer QBuf { float q[]; };
layout(std430, binding = 7) readonly buffer SeqsBuf { int seqs[]; };
layout(std430, binding = 8) readonly buffer TablesBuf { int tables[]; };
layout(std430, binding = 9) readonly buffer QPosBuf { int qpos[]; };

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint qHeads;
    uint kvHeads;
    float scale;
    uint squared;
    uint pool7;
    uint qRows; // rows in q and in the position buffer: window rows past them are skipped
} pc;

#include "kv_pool.glsl"

shared float qs[MAX_D];
shared float red[WG];

float score(uint slot) {
    uint a = slot / pc.kSlots, base = (slot - a * pc.kSlots) * pc.hd;
    float s = 0.0;
#if KV_F16
#define S(A) \
    for (uint e = 0u; e < pc.hd; e += 2u) { \
        vec2 kv = unpackHalf2x16(K[A].d[(base + e) >> 1u]); \
        s += kv.x * qs[e] + kv.y * qs[e + 1u]; \
    }
#else
#define S(A) \
    for (uint e = 0u; e < pc.hd; e++) s += K[A].d[base + e] * qs[e];
#endif
    KV_SWITCH(a, S)
#undef S
    return s;
}

void main() {
    uint kvh = gl_WorkGroupID.x, seq = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint si = (seq * pc.kvHeads + kvh) * 4u;
    uint off = uint(max(seqs[si], 0));
    uint ctx = uint(max(seqs[si + 1u], 0));
    uint first = uint(max(seqs[si + 2u], 0));
    uint nw = uint(max(seqs[si + 3u], 0));
    if (first >= pc.qRows) nw = 0u;
    nw = min(nw, pc.qRows - min(first, pc.qRows));
    uint r = pc.qHeads / pc.kvHeads;

    for (uint i = t; i < ctx; i += WG) {
        uint slot = KV_SLOT_OF(tables, off, i);
        if (slot != KV_NO_SLOT) scratchStore(slot, 1u, 0.0);
    }
    for (uint h = kvh * r; h < (kvh + 1u) * r; h++) {
        for (uint i = t; i < ctx; i += WG) {
            uint slot = KV_SLOT_OF(tables, off, i);
            if (slot != KV_NO_SLOT) scratchStore(slot, 0u, 0.0);
        }
        for (uint w = first; w < first + nw; w++) {
            int qp = qpos[w];
            for (uint e = t; e < pc.hd; e += WG) qs[e] = q[(w * pc.qHeads + h) * pc.hd + e] * pc.scale;
            barrier();
            // Pass 1: each thread's running (max, sum) over its slots, then the workgroup's.
            float mt = NEG_BIG, lt = 0.0;
            for (uint i = t; i < ctx; i += WG) {
                uint slot = KV_SLOT_OF(tables, off, i);
                if (slot == KV_NO_SLOT || posLoad(slot) > qp) continue;
                float s = score(slot);
                float mn = max(mt, s);
                lt = lt * exp(mt - mn) + exp(s - mn);
                mt = mn;
            }
            red[t] = mt;
            barrier();
            for (uint s = WG / 2u; s > 0u; s >>= 1u) {
                if (t < s) red[t] = max(red[t], red[t + s]);
                barrier();
            }
            float M = red[0];
            barrier();
            red[t] = lt * exp(mt - M);
            barrier();
            for (uint s = WG / 2u; s > 0u; s >>= 1u) {
                if (t < s) red[t] += red[t + s];
                barrier();
            }
            float L = red[0];
            // Pass 2: f(p) into s_h. Each thread updates only its own slots.
            if (L > 0.0) {
                for (uint i = t; i < ctx; i += WG) {
                    uint slot = KV_SLOT_OF(tables, off, i);
                    if (slot == KV_NO_SLOT || posLoad(slot) > qp) continue;
                    float p = exp(score(slot) - M) / L;
                    scratchStore(slot, 0u, scratchLoad(slot, 0u) + (pc.squared != 0u ? p * p : p));
                }
            }
            barrier(); // qs and red are rewritten by the next window row
        }
        memoryBarrierBuffer();
        barrier(); // every s_h entry is final before the pool reads its neighbours
        for (uint i = t; i < ctx; i += WG) {
            uint slot = KV_SLOT_OF(tables, off, i);
            if (slot == KV_NO_SLOT) continue;
            float v = scratchLoad(slot, 0u);
            if (pc.pool7 != 0u) {
                for (uint j = max(i, 3u) - 3u; j <= min(ctx - 1u, i + 3u); j++) {
                    uint sj = KV_SLOT_OF(tables, off, j);
                    if (sj != KV_NO_SLOT) v = max(v, scratchLoad(sj, 0u));
                }
            }
            scratchStore(slot, 1u, scratchLoad(slot, 1u) + v);
        }
        memoryBarrierBuffer();
        barrier(); // the pool has read s_h before the next head clears it
    }
    for (uint i = t; i < ctx; i += WG) {
        uint slot = KV_SLOT_OF(tables, off, i);
        if (slot != KV_NO_SLOT) metricStore(slot, metricLoad(slot) + scratchLoad(slot, 1u));
    }
}
