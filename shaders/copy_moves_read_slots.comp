#version 450
// copy_moves_read_slots: gathers the metric and position of listed blocks into two dense arrays
// (block after block) for one readback (engine.Backend.ReadSlots), and with pc.norms each slot's V row
// L1 norm into a third (an f32 sum in element order). One invocation per output slot.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;

#define KV_USE_V
#define KV_K_READONLY
#define KV_USE_META
#include "kv_defs.glsl"

layout(std430, binding = 5) readonly buffer BlocksBuf { int blocks[]; };
layout(std430, binding = 6) writeonly buffer MetricOut { float metricOut[]; };
layout(std430, binding = 7) writeonly buffer PosOut { int posOut[]; };
layout(std430, binding = 8) writeonly buffer NormOut { float normOut[]; };

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint n;     // blocks listed
    uint norms; // 1: write the V row norms too
} pc;

#include "kv_pool.glsl"

void main() {
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (idx >= pc.n * pc.bs) return;
    uint slot = kvSlotOf(blocks[idx / pc.bs], idx);
    if (slot == KV_NO_SLOT) return;
    metricOut[idx] = metricLoad(slot);
    posOut[idx] = posLoad(slot);
    if (pc.norms != 0u) {
        uint a = slot / pc.kSlots, base = (slot - a * pc.kSlots) * pc.hd;
        precise float s = 0.0;
        for (uint e = 0u; e < pc.hd; e++) s += abs(vElem(a, base + e));
        normOut[idx] = s;
    }
}
