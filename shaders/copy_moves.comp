#version 450
// copy_moves: for each move (src, dst) of int32 [n][2], copies the K and V rows, the metric and the
// position of slot src to slot dst (kv-compress.md §6 item 8). One invocation per (move, stored word);
// no destination is a source in one call, so all moves run in parallel. Moves naming a slot outside the
// pool are skipped.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#include "kv_defs.glsl"

layout(std430, binding = 5) readonly buffer MovesBuf { int moves[]; };

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint n;
} pc;

#include "kv_pool.glsl"

void main() {
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
#if KV_F16
    uint words = pc.hd / 2u;
#else
    uint words = pc.hd;
#endif
    if (idx >= pc.n * words) return;
    uint mv = idx / words, w = idx - mv * words;
    int s = moves[2u * mv], d = moves[2u * mv + 1u];
    if (s < 0 || d < 0 || uint(s) >= pc.nSlots || uint(d) >= pc.nSlots) return;
    uint src = uint(s), dst = uint(d);
    uint sa = src / pc.kSlots, sw = (src - sa * pc.kSlots) * words + w;
    uint da = dst / pc.kSlots, dw = (dst - da * pc.kSlots) * words + w;
    kWordStore(da, dw, kWord(sa, sw));
    vWordStore(da, dw, vWord(sa, sw));
    if (w == 0u) {
        metricStore(dst, metricLoad(src));
        posStore(dst, posLoad(src));
    }
}
