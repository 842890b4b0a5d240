// kv_combine.glsl: the end of paged attention, shared by attention.comp (a workgroup that computed all of a
// row's partitions itself) and attention_reduce.comp (partitions computed by several workgroups), so both
// paths run the same arithmetic in the same order: a row's bits never depend on the grid. `precise` keeps
// drivers from fusing differently in the two shaders. Include after kv_pool.glsl; needs WG.
// KV_COMBINE_BARRIER is the workgroup's control + memory barrier: barrier(), or for a workgroup of one
// subgroup (attention_rows.comp) the subgroup barriers, which a CPU device does not pay for.

#ifndef KV_COMBINE_BARRIER
#define KV_COMBINE_BARRIER barrier()
#endif

shared float mFin[MAX_GROUP]; // per query head of the group: global max and exp-sum of the scores
shared float lFin[MAX_GROUP];

// addMetric adds sum_h f(exp(s_h - mFin[h]) / lFin[h]) to each visible slot of the head, from the scores
// stored in scratch. Thread t handles slots t, t + WG, ... (the slots it scored itself when unsplit).
// Slots inside the metric buffer (less than pc.metricBuffer positions before the row) get nothing.
void addMetric(uint off, uint ctx, uint r, int qp, uint t) {
    for (uint i = t; i < ctx; i += WG) {
        uint slot = KV_SLOT_OF(tables, off, i);
        if (slot == KV_NO_SLOT || posLoad(slot) > qp - pc.metricBuffer) continue;
        precise float add = 0.0;
        for (uint h = 0u; h < r; h++) {
            if (lFin[h] > 0.0) add += metricOf(exp(scratchLoad(slot, h) - mFin[h]) / lFin[h]);
        }
        metricStore(slot, metricLoad(slot) + add);
    }
}

// combineParts merges the nParts partials of (row, kvh): M = max m_p, L = sum l_p exp(m_p - M),
// out = sum out_p exp(m_p - M) / L, in partition order; then the metric. Call in uniform control flow.
void combineParts(uint row, uint kvh, uint nParts, uint off, uint ctx, int qp, uint t) {
    uint r = pc.qHeads / pc.kvHeads;
    for (uint h = 0u; h < r; h++) {
        precise float M = NEG_BIG;
        for (uint p = 0u; p < nParts; p++) M = max(M, part[partialAt(row, kvh, p, h)]);
        precise float L = 0.0;
        for (uint p = 0u; p < nParts; p++) {
            uint pa = partialAt(row, kvh, p, h);
            L += part[pa + 1u] * exp(part[pa] - M);
        }
        uint ob = (row * pc.qHeads + kvh * r + h) * pc.hd;
        for (uint dd = t; dd < pc.hd; dd += WG) {
            precise float o = 0.0;
            for (uint p = 0u; p < nParts; p++) {
                uint pa = partialAt(row, kvh, p, h);
                o += part[pa + 2u + dd] * exp(part[pa] - M);
            }
            outp[ob + dd] = L > 0.0 ? o / L : 0.0;
        }
        if (t == 0u && h < MAX_GROUP) { mFin[h] = M; lFin[h] = L; }
    }
    KV_COMBINE_BARRIER;
    if (pc.mode != 0u && row < pc.metricRows) addMetric(off, ctx, r, qp, t);
}
