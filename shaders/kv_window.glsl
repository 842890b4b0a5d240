// kv_window.glsl: which prefill rows the fused attention + window metric (window_metric.comp with WM_ATTN,
// engine.AttentionWindower) computes, shared by it and the attention kernels that then skip those rows, so
// that every (row, KV head) output is written by exactly one of them. Needs int buffers seqs (the
// engine.WindowSpec entries) and heads (the AttnHeads entries).
//
// kvWindowOf is the window j whose fused workgroup writes the row's output for KV head kvh, or -1 when the
// attention kernels keep it: a row that adds a decode metric (row < metricRows), a row in no window, and a
// row whose head entry is not its window's (offset and context; the lowest window holding the row decides).
// The window metric itself follows the WindowSpec whatever this says.
int kvWindowOf(uint row, uint kvh, uint nWin, uint kvHeads, uint metricRows) {
    if (row < metricRows) return -1;
    uint hi = (row * kvHeads + kvh) * 2u;
    for (uint j = 0u; j < nWin; j++) {
        uint e = (j * kvHeads + kvh) * 4u;
        int first = seqs[e + 2u], n = seqs[e + 3u];
        if (seqs[e + 1u] <= 0 || n <= 0 || first < 0 || int(row) < first || int(row) - first >= n) continue;
        return heads[hi] == seqs[e] && heads[hi + 1u] == seqs[e + 1u] ? int(j) : -1;
    }
    return -1;
}
