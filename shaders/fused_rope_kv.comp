#version 450
// fused_rope_kv (engine RopeKVWrite): rope.comp on q [n][qHeads][hd] and on k [n][kvHeads][hd], then
// kv_write.comp's store of k and v into their slots, in one dispatch. One invocation per (token, head of
// q then k, quad m): it rotates pairs 2m and 2m+1 (the second when it exists) in place with rope.comp's
// arithmetic, and for a k head stores the four rotated K elements and the same four V elements. Two pairs
// per invocation because an f16 pool stores half pairs in words: with rotate-half, pairs 2m and 2m+1 fill
// words m and m + hd/4 (so hd must be a multiple of 4 there; the host runs the unfused ops otherwise),
// interleaved they fill words 2m and 2m+1. The invocation with m == 0 of a k head sets the slot's position
// and clears its metric. Slots outside the pool are skipped, as in kv_write.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#include "kv_defs.glsl"

layout(std430, binding = 5) buffer QIn { float qx[]; };
layout(std430, binding = 6) buffer KIn { float kx[]; };
layout(std430, binding = 7) readonly buffer VIn { float vin[]; };
layout(std430, binding = 8) readonly buffer SlotsBuf { int slots[]; };
layout(std430, binding = 9) readonly buffer PosBuf { int pos[]; };
layout(std430, binding = 10) readonly buffer Freq { uvec2 turns[]; }; // rope.comp's fixed-point turns

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint n;
    uint qHeads;
    uint kvHeads;
    uint rotateHalf;
} pc;

#include "kv_pool.glsl"

// The angle of pair i at position p, exactly as rope.comp forms it.
float ropeAngle(int p, uint i) {
    uint ap = uint(abs(p));
    uvec2 f = turns[i];
    uint hi, lo;
    umulExtended(ap, f.x, hi, lo);
    uint top = hi + ap * f.y; // bits 32..63 of ap * F mod 2^64
    float tr = float(int(top)) * (1.0 / 4294967296.0) + float(lo) * (1.0 / 18446744073709551616.0);
    if (p < 0) tr = -tr;
    return tr * 6.28318530717958647692;
}

void main() {
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint half_ = pc.hd / 2u;
    uint quads = (half_ + 1u) / 2u;
    uint heads = pc.qHeads + pc.kvHeads;
    if (idx >= pc.n * heads * quads) return;
    uint m = idx % quads;
    uint th = idx / quads;
    uint t = th / heads, h = th - t * heads;
    bool isK = h >= pc.qHeads;
    uint base = isK ? (t * pc.kvHeads + (h - pc.qHeads)) * pc.hd : (t * pc.qHeads + h) * pc.hd;
    int p = pos[t];

    float y[4];  // rotated elements j[0..3]: pair 2m (j0, j1), pair 2m+1 (j0, j1)
    uint j[4];
    uint np = 2u * m + 1u < half_ ? 2u : 1u;
    for (uint k = 0u; k < 2u; k++) {
        uint pair = min(2u * m + k, half_ - 1u);
        uint j0 = pc.rotateHalf != 0u ? pair : 2u * pair;
        uint j1 = pc.rotateHalf != 0u ? j0 + half_ : j0 + 1u;
        j[2u * k] = j0;
        j[2u * k + 1u] = j1;
        if (k >= np) {
            y[2u * k] = 0.0;
            y[2u * k + 1u] = 0.0;
            continue;
        }
        float a = ropeAngle(p, pair);
        float co = cos(a), si = sin(a);
        float x0 = isK ? kx[base + j0] : qx[base + j0];
        float x1 = isK ? kx[base + j1] : qx[base + j1];
        y[2u * k] = x0 * co - x1 * si;
        y[2u * k + 1u] = x0 * si + x1 * co;
        if (isK) {
            kx[base + j0] = y[2u * k];
            kx[base + j1] = y[2u * k + 1u];
        } else {
            qx[base + j0] = y[2u * k];
            qx[base + j1] = y[2u * k + 1u];
        }
    }
    if (!isK) return;

    int s = slots[t * pc.kvHeads + (h - pc.qHeads)];
    if (s < 0 || uint(s) >= pc.nSlots) return;
    uint slot = uint(s);
    uint a = slot / pc.kSlots, local = slot - a * pc.kSlots;
#if KV_F16
    uint row = local * half_;
    if (pc.rotateHalf != 0u) { // words m (elements 2m, 2m+1) and m + hd/4 (their mates)
        uint w0 = row + m, w1 = row + m + half_ / 2u;
        kWordStore(a, w0, packHalf2x16(vec2(y[0], y[2])));
        kWordStore(a, w1, packHalf2x16(vec2(y[1], y[3])));
        vWordStore(a, w0, packHalf2x16(vec2(vin[base + j[0]], vin[base + j[2]])));
        vWordStore(a, w1, packHalf2x16(vec2(vin[base + j[1]], vin[base + j[3]])));
    } else { // pair i is word i
        for (uint k = 0u; k < np; k++) {
            kWordStore(a, row + 2u * m + k, packHalf2x16(vec2(y[2u * k], y[2u * k + 1u])));
            vWordStore(a, row + 2u * m + k, packHalf2x16(vec2(vin[base + j[2u * k]], vin[base + j[2u * k + 1u]])));
        }
    }
#else
    uint row = local * pc.hd;
    for (uint e = 0u; e < 2u * np; e++) {
        kWordStore(a, row + j[e], y[e]);
        vWordStore(a, row + j[e], vin[base + j[e]]);
    }
#endif
    if (m == 0u) {
        posStore(slot, p);
        metricStore(slot, 0.0);
    }
}
