// kv_attn.glsl: bindings, push constants and the split rule shared by attention.comp and
// attention_reduce.comp.
//
// Split-K: a (row, KV head) whose context holds ctx slots is cut into
//   nParts = clamp(ceil(ctx / partMin), 1, splitMax)
// partitions of ceil(ctx / nParts) slots. The rule depends on ctx alone, never on the batch, so a row's
// result is bit-identical whether it runs alone or in a batch. With nParts == 1 attention.comp writes the
// output (and the metric) itself; otherwise it writes per-partition (max, sum, unnormalized out) and
// attention_reduce.comp combines them, then adds the metric. The grid's depth (chosen by the host) only
// decides how many workgroups share a row's partitions, never the arithmetic; with depth 1 a workgroup
// computes all partitions of its row and combines them itself (kv_combine.glsl), else attention_reduce
// does.
//
// Metric: attention stores each visible slot's scaled score per query head in the pool's scratch (slot x
// sStride, sStride >= r); once the global max M_h and sum L_h of a head are known the metric adds
// sum_h f(exp(s_h - M_h) / L_h). For a split row this is exactly the v2 rescaling of partition
// probabilities by exp(m_part - M) * (partition exp-sum) / (global exp-sum). Metric modes assume one query
// row per head table (decode); two rows of one call sharing a table with a metric mode is a caller error.

layout(std430, binding = 5) readonly buffer QBuf { float q[]; };
layout(std430, binding = 6) writeonly buffer OutBuf { float outp[]; };
layout(std430, binding = 7) readonly buffer HeadsBuf { int heads[]; };
layout(std430, binding = 8) readonly buffer TablesBuf { int tables[]; };
layout(std430, binding = 9) readonly buffer QPosBuf { int qpos[]; };
layout(std430, binding = 10) coherent buffer PartBuf { float part[]; }; // read back within a workgroup
layout(std430, binding = 11) readonly buffer SeqsBuf { int seqs[]; }; // AttentionWindow's WindowSpec entries

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint rows;
    uint qHeads;
    uint kvHeads;
    float scale;
    uint mode;     // engine.MetricMode: 0 none, 1 squared, 2 plain
    uint splitMax; // most partitions per (row, KV head); 1 disables split-K
    uint partMin;  // fewest slots per partition
    uint metricRows; // rows [0, metricRows) add the metric (decode rows of a mixed pass); later rows do not
    uint tiledMin; // rows in runs of at least tiledMin are attention_tiled.comp's (kvTiledRow); 0: none
    int metricBuffer; // the metric skips slots less than metricBuffer positions before the row
    uint nWin;     // AttentionWindow: the windows of seqs; their fused rows (kvWindowRow) are not this call's
} pc;

#define MAX_GROUP 64 // query heads per KV head (r) the metric can track

uint kvNumParts(uint ctx) {
    if (pc.splitMax <= 1u) return 1u;
    return clamp((ctx + pc.partMin - 1u) / pc.partMin, 1u, pc.splitMax);
}

float metricOf(float p) { return pc.mode == 1u ? p * p : p; }

// Offset of the partial (m, l, out[hd]) of query head h (within the group) of a partition.
uint partialAt(uint row, uint kvh, uint prt, uint h) {
    uint r = pc.qHeads / pc.kvHeads;
    return (((row * pc.kvHeads + kvh) * pc.splitMax + prt) * r + h) * (pc.hd + 2u);
}

#include "kv_window.glsl"

// kvWindowRow: the row's output comes from the fused attention + window metric kernel (kv_window.glsl).
bool kvWindowRow(uint row, uint kvh) {
    return pc.nWin != 0u && kvWindowOf(row, kvh, pc.nWin, pc.kvHeads, pc.mode != 0u ? pc.metricRows : 0u) >= 0;
}

// Tiled prefill: a row whose (row, KV head) entry of heads is shared by a run of at least tiledMin
// consecutive rows (a prefill chunk: the engine gives a chunk's rows one table offset and context) and that
// adds no metric is computed by attention_tiled.comp; attention.comp and attention_reduce.comp skip it. The
// test reads only the row's own run, so a row's kernel (and bits) never depend on the rest of the call.
bool kvTiledRow(uint row, uint kvh) {
    if (pc.tiledMin == 0u || (pc.mode != 0u && row < pc.metricRows)) return false;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    int o = heads[hi], c = heads[hi + 1u];
    uint n = 1u;
    for (uint i = row; i > 0u && n < pc.tiledMin; i--) {
        uint hj = ((i - 1u) * pc.kvHeads + kvh) * 2u;
        if (heads[hj] != o || heads[hj + 1u] != c) break;
        n++;
    }
    for (uint i = row + 1u; i < pc.rows && n < pc.tiledMin; i++) {
        uint hj = (i * pc.kvHeads + kvh) * 2u;
        if (heads[hj] != o || heads[hj + 1u] != c) break;
        n++;
    }
    return n >= pc.tiledMin;
}
