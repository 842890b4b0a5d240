package gpu

import (
	"fmt"
	"math"
	"testing"

	"kvc/engine"
)

// TestKVAttentionWindowMatchesCPU: the fused AttentionWindow (window_attention_lanes for the window rows,
// attention_rows for the others) against the CPU's Attention then WindowMetric, on a continuous-batching
// call: decode rows adding a metric first, then prefill chunks of several sequences (odd lengths, a window
// of every chunk row, of the last rows only, of one row), f32 and f16 pools over several arenas, group
// sizes 1, 2, 3 and 5 (two passes of the shader's 4 heads), head dims 6 (element loads) and 8, squared or
// plain with or without Pool7, unsplit and split-K rows (combined in the workgroup or by
// attention_reduce). One window entry names another context than its rows read: those rows must stay
// Attention's (the device-side decline) while the window metric follows the entry.
func TestKVAttentionWindowMatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	if g.cpuLanes() == 0 {
		t.Skip("the fused kernel runs on CPU devices with subgroup arithmetic only (AttentionWindow is two ops elsewhere)")
	}
	type tc struct {
		typ            engine.KVType
		r, hd, split   int
		squared, pool7 bool
		mode           engine.MetricMode
		layout         int
	}
	cases := []tc{
		{engine.KVF32, 2, 8, 0, false, false, engine.MetricPlain, rowsAuto},
		{engine.KVF16, 2, 8, 1, false, false, engine.MetricPlain, rowsAuto},
		{engine.KVF32, 3, 6, 2, true, false, engine.MetricSquared, rowsAuto},
		{engine.KVF16, 5, 6, 0, false, true, engine.MetricNone, rowsAuto},
		{engine.KVF32, 1, 8, 1, true, true, engine.MetricSquared, rowsTiles},
		{engine.KVF16, 3, 8, 2, false, false, engine.MetricPlain, rowsLanes},
	}
	for i, c := range cases {
		name := fmt.Sprintf("type%d/r%d/hd%d/split%d/sq%v/pool%v/mode%d", c.typ, c.r, c.hd, c.split, c.squared, c.pool7, c.mode)
		t.Run(name, func(t *testing.T) {
			defer func(layout int) { attnRowsLayout = layout }(attnRowsLayout)
			attnRowsLayout = c.layout
			checkAttentionWindow(t, g, int64(100+i), c.typ, c.r, c.hd, c.split, c.squared, c.pool7, c.mode, true)
		})
	}
}

// TestKVAttentionWindowDeclines: where the fused kernel does not apply (GPU workgroups, a head row wider than
// its accumulators) AttentionWindow runs the two ops and still matches the CPU; with GPU workgroups also
// with the window metric split into 5 parts per head (window_metric_split: at least 4 slots each, so the
// windows' heads of 10 to 51 slots take 3 or 5) after split-K rows that attention_reduce combines (both use
// the pool's partial buffer).
func TestKVAttentionWindowDeclines(t *testing.T) {
	g := OpenForTest(t)
	t.Run("workgroups", func(t *testing.T) {
		defer func(v bool) { forceGPUWorkgroups = v }(forceGPUWorkgroups)
		forceGPUWorkgroups = true
		checkAttentionWindow(t, g, 7, engine.KVF32, 2, 8, 0, false, false, engine.MetricPlain, false)
	})
	t.Run("workgroups-split", func(t *testing.T) {
		defer func(v bool, n int) { forceGPUWorkgroups, windowChunks = v, n }(forceGPUWorkgroups, windowChunks)
		forceGPUWorkgroups, windowChunks = true, 5
		checkAttentionWindow(t, g, 9, engine.KVF16, 3, 8, 2, true, true, engine.MetricSquared, false)
	})
	t.Run("wide", func(t *testing.T) {
		checkAttentionWindow(t, g, 8, engine.KVF16, 2, 8*(windowAttnMaxChunks/2+1), 0, false, false, engine.MetricPlain, false)
	})
}

// checkAttentionWindow builds the call TestKVAttentionWindowMatchesCPU describes and compares the device's
// AttentionWindow (fused as wantFused says) with the CPU's two ops: output and every slot of the pool.
func checkAttentionWindow(t *testing.T, g *Backend, seed int64, typ engine.KVType, r, hd, split int, squared, pool7 bool,
	mode engine.MetricMode, wantFused bool) {
	const bs, kvHeads, decode, mb = 4, 2, 3, 3
	h := newKVHarness(t, g, seed, 120, bs, hd, typ, 5000) // several K/V arenas, scratch within 2
	h.splitPartitions(split, 9)
	h.gp.WindowPartMin = 4 // where the window metric is split, parts of the short heads too
	rowHeads, qpos := h.addDecodeRows(decode)
	// Prefill chunks: rows n at the end of a context of prev + n slots, window of the last w rows.
	chunks := []struct{ prev, n, w int }{{0, 23, 23}, {17, 13, 5}, {9, 1, 1}, {40, 11, 11}}
	var win [][4]int32 // per chunk and KV head: {table entry of the head (filled below), ctx, first, n}
	for ci, c := range chunks {
		heads := h.addHeads([]int{c.prev + c.n, c.prev + c.n}, false)
		first := len(rowHeads)
		for i := 0; i < c.n; i++ {
			rowHeads = append(rowHeads, heads)
			qpos = append(qpos, int32(c.prev+i))
		}
		for kh := range heads {
			ctx := int32(c.prev + c.n)
			if ci == 1 && kh == 1 {
				ctx -= 2 // the window's entry differs from its rows': they stay Attention's
			}
			win = append(win, [4]int32{int32(first), ctx, int32(first + c.n - c.w), int32(c.w)})
		}
	}
	h.randomMetrics()
	qh := kvHeads * r
	rows := len(rowHeads)
	heads, tables, pos := h.attnInputs(rowHeads, qpos)
	// A window's table offset is its first row's head entry (attnInputs lays the tables out).
	hs := make([]int32, 0, rows*kvHeads*2)
	hraw := make([]byte, heads.n*4)
	if err := g.Read(heads.g, 0, hraw); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < heads.n; i++ {
		hs = append(hs, int32(uint32(hraw[4*i])|uint32(hraw[4*i+1])<<8|uint32(hraw[4*i+2])<<16|uint32(hraw[4*i+3])<<24))
	}
	var seqs []int32
	for j, e := range win {
		row, kh := int(e[0]), j%kvHeads
		seqs = append(seqs, hs[(row*kvHeads+kh)*2], e[1], e[2], e[3])
	}
	sq := h.i32(seqs)
	q := h.f32(h.randn(rows * qh * hd))
	o := h.out(rows * qh * hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	ac := engine.AttnHeads{Heads: heads.c, Tables: tables.c, Pos: pos.c, Rows: rows, MetricRows: decode, MetricBuffer: mb}
	ag := engine.AttnHeads{Heads: heads.g, Tables: tables.g, Pos: pos.g, Rows: rows, MetricRows: decode, MetricBuffer: mb}
	nw := len(chunks)
	wc := engine.WindowSpec{Seqs: sq.c, Tables: tables.c, Pos: pos.c, NSeqs: nw, Squared: squared, Pool7: pool7, Buffer: mb}
	wg := engine.WindowSpec{Seqs: sq.g, Tables: tables.g, Pos: pos.g, NSeqs: nw, Squared: squared, Pool7: pool7, Buffer: mb}
	h.c.Attention(o.c, q.c, h.cp, ac, qh, kvHeads, scale, mode)
	h.c.WindowMetric(q.c, h.cp, wc, qh, kvHeads, scale)
	if fused := g.attentionWindow(o.g, q.g, h.gp, ag, wg, qh, kvHeads, scale, mode); fused != wantFused {
		t.Fatalf("fused %v, want %v", fused, wantFused)
	}
	compareOut(t, "output", h.readF32(o.g, o.n), o.c.F32(), 2e-4)
	h.checkPool("metric", 2e-4)
}
