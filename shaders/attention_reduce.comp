#version 450
// attention_reduce: combines the split-K partitions that several attention.comp workgroups computed for a
// (row, KV head) (kv_combine.glsl), then adds the metric from the scores they stored. One workgroup per
// (KV head, row); rows that were not split are left alone.
#extension GL_GOOGLE_include_directive : require

#define WG 128
layout(local_size_x = WG) in;

#define KV_USE_META
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"
#include "kv_attn.glsl"
#include "kv_pool.glsl"

#include "kv_combine.glsl"

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y;
    if (kvTiledRow(row, kvh) || kvWindowRow(row, kvh)) return; // attention_tiled.comp's, the fused window's
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    if (nParts <= 1u) return;
    combineParts(row, kvh, nParts, off, ctx, qpos[row], gl_LocalInvocationID.x);
}
