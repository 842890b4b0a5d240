#version 450
// kv_write: stores K and V rows f32 [n][kvHeads][hd] into their slots (int32 [n][kvHeads]), sets each
// slot's position to pos[token] and its metric to 0. One invocation per (token, KV head, stored word);
// a 2D grid (x fastest) so large writes stay within the dispatch limits. Slots outside the pool are
// skipped (a caller bug that must not fault the device).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#include "kv_defs.glsl"

layout(std430, binding = 5) readonly buffer KIn { float kin[]; };
layout(std430, binding = 6) readonly buffer VIn { float vin[]; };
layout(std430, binding = 7) readonly buffer SlotsBuf { int slots[]; };
layout(std430, binding = 9) readonly buffer PosBuf { int pos[]; };

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint n;
    uint kvHeads;
} pc;

#include "kv_pool.glsl"

void main() {
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
#if KV_F16
    uint words = pc.hd / 2u;
#else
    uint words = pc.hd;
#endif
    if (idx >= pc.n * pc.kvHeads * words) return;
    uint th = idx / words, w = idx - th * words;
    int s = slots[th];
    if (s < 0 || uint(s) >= pc.nSlots) return;
    uint slot = uint(s);
    uint a = slot / pc.kSlots, local = slot - a * pc.kSlots;
    uint dst = local * words + w;
#if KV_F16
    uint src = th * pc.hd + 2u * w;
    kWordStore(a, dst, packHalf2x16(vec2(kin[src], kin[src + 1u])));
    vWordStore(a, dst, packHalf2x16(vec2(vin[src], vin[src + 1u])));
#else
    uint src = th * pc.hd + w;
    kWordStore(a, dst, kin[src]);
    vWordStore(a, dst, vin[src]);
#endif
    if (w == 0u) {
        posStore(slot, pos[th / pc.kvHeads]);
        metricStore(slot, 0.0);
    }
}
