package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"kvc/engine"
	"kvc/engine/vk"
)

// BenchmarkKVAttentionDecode: one decode row of a 32-query-head, 8-KV-head, d=128 layer over an f16 paged
// cache (block 16), and of stories260K's 8-query-head, 4-KV-head, d=8 layer (the small sub-benchmarks),
// on the device and on the CPU reference. The bytes per op are the K and V bytes read,
// so MB/s is the achieved KV bandwidth. gpu is the device's own kernel choice; on a CPU device gpu-wg forces
// attention.comp, gpu-lanes and gpu-tiles attention_rows.comp in that layout.
//
//	go test ./engine/gpu/ -run - -bench KVAttentionDecode -benchtime 5x
func BenchmarkKVAttentionDecode(b *testing.B) {
	const bs = 16
	for _, sh := range []struct {
		name                string
		qHeads, kvHeads, hd int
		ctx                 int
	}{{"", 32, 8, 128, 512}, {"", 32, 8, 128, 4096}, {"small/", 8, 4, 8, 192}} {
		qHeads, kvHeads, hd, ctx := sh.qHeads, sh.kvHeads, sh.hd, sh.ctx
		for _, dev := range []string{"gpu", "gpu-wg", "gpu-lanes", "gpu-tiles", "cpu"} {
			b.Run(fmt.Sprintf("%sctx%d/%s", sh.name, ctx, dev), func(b *testing.B) {
				g := OpenForTest(b)
				if dev != "gpu" && dev != "cpu" && g.info.Type != vk.TypeCPU {
					b.Skip("one attention kernel on a GPU")
				}
				defer func(force bool, layout int) { forceGPUWorkgroups, attnRowsLayout = force, layout }(forceGPUWorkgroups, attnRowsLayout)
				forceGPUWorkgroups = dev == "gpu-wg"
				attnRowsLayout = map[string]int{"gpu-lanes": rowsLanes, "gpu-tiles": rowsTiles}[dev]
				blocks := kvHeads * ((ctx + bs - 1) / bs)
				h := newKVHarness(b, g, 1, blocks, bs, hd, engine.KVF16, g.Caps().MaxStorageBufferRange)
				heads := h.addHeads(repeat(ctx, kvHeads), true)
				q := h.f32(h.randn(qHeads * hd))
				hs, tables, pos := h.attnInputs([][]kvHead{heads}, []int32{int32(ctx)})
				out := h.out(qHeads * hd)
				// Warm up: builds the pipelines outside the timed loop.
				g.Attention(out.g, q.g, h.gp, engine.AttnHeads{Heads: hs.g, Tables: tables.g, Pos: pos.g, Rows: 1},
					qHeads, kvHeads, 0.088, engine.MetricSquared)
				if err := g.Sync(); err != nil {
					b.Fatal(err)
				}
				kvBytes := int64(ctx) * int64(kvHeads) * int64(hd) * 2 * 2
				b.SetBytes(kvBytes)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if dev != "cpu" {
						g.Attention(out.g, q.g, h.gp, engine.AttnHeads{Heads: hs.g, Tables: tables.g, Pos: pos.g, Rows: 1},
							qHeads, kvHeads, 0.088, engine.MetricSquared)
						if err := g.Sync(); err != nil {
							b.Fatal(err)
						}
					} else {
						h.c.Attention(out.c, q.c, h.cp, engine.AttnHeads{Heads: hs.c, Tables: tables.c, Pos: pos.c, Rows: 1},
							qHeads, kvHeads, 0.088, engine.MetricSquared)
					}
				}
				b.ReportMetric(float64(kvBytes)*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "KV-GB/s")
			})
		}
	}
}

func repeat(x, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = x
	}
	return out
}

// BenchmarkKVAttentionPrefill: a prefill chunk of 128 rows at the end of a 640-slot context (32 query heads,
// 8 KV heads, d=128, f16, block 16), and of stories260K's shape. gpu is the device's own choice; gpu-wg
// forces attention.comp alone, gpu-tiled attention_tiled.comp for the chunk (on a CPU device both are
// forced variants, not what it runs).
//
//	go test ./engine/gpu/ -run - -bench KVAttentionPrefill -benchtime 3x
func BenchmarkKVAttentionPrefill(b *testing.B) {
	const bs, rows = 16, 128
	for _, sh := range []struct {
		name                     string
		qHeads, kvHeads, hd, ctx int
	}{{"", 32, 8, 128, 640}, {"small/", 8, 4, 8, 640}} {
		qHeads, kvHeads, hd, ctx := sh.qHeads, sh.kvHeads, sh.hd, sh.ctx
		for _, dev := range []string{"gpu", "gpu-wg", "gpu-tiled"} {
			b.Run(fmt.Sprintf("%sctx%d/%s", sh.name, ctx, dev), func(b *testing.B) {
				g := OpenForTest(b)
				defer func(force bool, tmin int) { forceGPUWorkgroups, attnTiledMin = force, tmin }(forceGPUWorkgroups, attnTiledMin)
				forceGPUWorkgroups = dev != "gpu"
				attnTiledMin = map[string]int{"gpu-wg": -1, "gpu-tiled": 1}[dev]
				blocks := kvHeads * ((ctx + bs - 1) / bs)
				h := newKVHarness(b, g, 1, blocks, bs, hd, engine.KVF16, g.Caps().MaxStorageBufferRange)
				heads := h.addHeads(repeat(ctx, kvHeads), false)
				rowHeads := make([][]kvHead, rows)
				qpos := make([]int32, rows)
				for i := range rowHeads {
					rowHeads[i], qpos[i] = heads, int32(ctx-rows+i)
				}
				q := h.f32(h.randn(rows * qHeads * hd))
				hs, tables, pos := h.attnInputs(rowHeads, qpos)
				out := h.out(rows * qHeads * hd)
				a := engine.AttnHeads{Heads: hs.g, Tables: tables.g, Pos: pos.g, Rows: rows}
				g.Attention(out.g, q.g, h.gp, a, qHeads, kvHeads, 0.088, engine.MetricNone) // builds the pipelines
				if err := g.Sync(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					g.Attention(out.g, q.g, h.gp, a, qHeads, kvHeads, 0.088, engine.MetricNone)
					if err := g.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/chunk")
			})
		}
	}
}

// BenchmarkKVWindowMetric: the prompt metric over every row of 4 sequences of 256 tokens (what l1-avg's
// default collection does after a 256-token prefill chunk), stories260K's shape (8 query heads, 4 KV heads,
// d=8, f16, block 16). gpu is the device's own choice (window_metric_lanes on a CPU device); gpu-wg forces
// window_metric.comp's workgroups; gpu-wg-split forces them with a GPU's FillGroups and parts of at least
// 64 slots, so that each of the 16 (KV head, sequence) pairs is split into 4 parts (window_metric_split: on
// a CPU device, whose cores the 16 pairs already fill and where every workgroup barrier costs a switch, this
// is the split's overhead only).
//
//	go test ./engine/gpu/ -run - -bench KVWindowMetric -benchtime 5x
func BenchmarkKVWindowMetric(b *testing.B) {
	const bs, qHeads, kvHeads, hd, n, nSeqs = 16, 8, 4, 8, 256, 4
	for _, dev := range []string{"gpu", "gpu-wg", "gpu-wg-split"} {
		b.Run(dev, func(b *testing.B) {
			g := OpenForTest(b)
			defer func(force bool) { forceGPUWorkgroups = force }(forceGPUWorkgroups)
			forceGPUWorkgroups = dev != "gpu"
			h := newKVHarness(b, g, 1, nSeqs*kvHeads*(n/bs), bs, hd, engine.KVF16, g.Caps().MaxStorageBufferRange)
			if dev == "gpu-wg-split" {
				h.gp.FillGroups, h.gp.WindowPartMin = kvFillGroups, 64
			}
			var seqs, tab, pos []int32
			for s := 0; s < nSeqs; s++ {
				for _, kh := range h.addHeads(repeat(n, kvHeads), false) {
					seqs = append(seqs, int32(len(tab)), n, int32(s*n), n)
					tab = append(tab, kh.table...)
				}
				for i := 0; i < n; i++ {
					pos = append(pos, int32(i))
				}
			}
			q := h.f32(h.randn(nSeqs * n * qHeads * hd))
			sq, tb, ps := h.i32(seqs), h.i32(tab), h.i32(pos)
			w := engine.WindowSpec{Seqs: sq.g, Tables: tb.g, Pos: ps.g, NSeqs: nSeqs}
			g.WindowMetric(q.g, h.gp, w, qHeads, kvHeads, 0.35) // builds the pipeline
			if err := g.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g.WindowMetric(q.g, h.gp, w, qHeads, kvHeads, 0.35)
				if err := g.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
		})
	}
}

// BenchmarkKVAttentionWindow: a prefill pass of 4 sequences of 256 tokens whose every row adds to the
// prompt metric (l1-avg's default collection with --chunk 256), as Attention then WindowMetric (two) and
// as the fused AttentionWindow (fused: window_attention_lanes on a CPU device, else the same two ops);
// stories260K's shape (8 query heads, 4 KV heads, d=8) and d=32, f16, block 16.
//
//	go test ./engine/gpu/ -run - -bench KVAttentionWindow -benchtime 5x
func BenchmarkKVAttentionWindow(b *testing.B) {
	const bs, qHeads, kvHeads, n, nSeqs = 16, 8, 4, 256, 4
	for _, hd := range []int{8, 32} {
		for _, op := range []string{"two", "fused", "attn", "wm"} {
			b.Run(fmt.Sprintf("d%d/%s", hd, op), func(b *testing.B) {
				g := OpenForTest(b)
				h := newKVHarness(b, g, 1, nSeqs*kvHeads*(n/bs), bs, hd, engine.KVF16, g.Caps().MaxStorageBufferRange)
				var rowHeads [][]kvHead
				var qpos []int32
				for s := 0; s < nSeqs; s++ {
					heads := h.addHeads(repeat(n, kvHeads), false)
					for i := 0; i < n; i++ {
						rowHeads = append(rowHeads, heads)
						qpos = append(qpos, int32(i))
					}
				}
				hs, tables, pos := h.attnInputs(rowHeads, qpos)
				hraw := make([]byte, hs.n*4)
				if err := g.Read(hs.g, 0, hraw); err != nil {
					b.Fatal(err)
				}
				var seqs []int32
				for s := 0; s < nSeqs; s++ {
					for kh := 0; kh < kvHeads; kh++ {
						e := (s*n*kvHeads + kh) * 2 * 4
						off := int32(binary.LittleEndian.Uint32(hraw[e:]))
						seqs = append(seqs, off, n, int32(s*n), n)
					}
				}
				rows := nSeqs * n
				q := h.f32(h.randn(rows * qHeads * hd))
				out := h.out(rows * qHeads * hd)
				sq := h.i32(seqs)
				a := engine.AttnHeads{Heads: hs.g, Tables: tables.g, Pos: pos.g, Rows: rows, MetricBuffer: 10}
				w := engine.WindowSpec{Seqs: sq.g, Tables: tables.g, Pos: pos.g, NSeqs: nSeqs, Buffer: 10}
				scale := float32(1 / math.Sqrt(float64(hd)))
				run := func() {
					if op == "fused" {
						g.AttentionWindow(out.g, q.g, h.gp, a, w, qHeads, kvHeads, scale, engine.MetricNone)
					} else if op == "attn" {
						g.Attention(out.g, q.g, h.gp, a, qHeads, kvHeads, scale, engine.MetricNone)
					} else if op == "wm" {
						g.WindowMetric(q.g, h.gp, w, qHeads, kvHeads, scale)
					} else {
						g.Attention(out.g, q.g, h.gp, a, qHeads, kvHeads, scale, engine.MetricNone)
						g.WindowMetric(q.g, h.gp, w, qHeads, kvHeads, scale)
					}
					if err := g.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				run() // builds the pipelines
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					run()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/pass")
			})
		}
	}
}
