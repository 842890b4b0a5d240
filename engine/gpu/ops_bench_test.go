package gpu

import (
	"fmt"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// BenchmarkOps: every op that has no benchmark of its own (MatMul: BenchmarkMatVec and BenchmarkMatMulBatch;
// Argmax, TopK, Softmax: BenchmarkRowOps; Attention: BenchmarkKVAttentionDecode), for one decode row of a
// small Llama-shaped layer (dim 512, FFN 1408, 8 query and 2 KV heads of 64, f16 weights, a 4096-entry
// vocabulary, an f16 cache of 256 tokens per head), on the device ("vulkan", with a Sync per op, so the
// submission is included) and on the CPU reference. MB/s counts the bytes the op must read and write
// (weights at their stored size), so it is the achieved bandwidth; ns/op is the time per op.
//
//	go test ./engine/gpu -run - -bench Ops -benchtime 20x
func BenchmarkOps(b *testing.B) {
	const (
		dim, ffn, vocab       = 512, 1408, 4096
		qHeads, kvHeads, hd   = 8, 2, 64
		ctx, bs, rows, window = 256, 16, 8, 8
		kvDim                 = kvHeads * hd
	)
	g := OpenForTest(b)
	h := newKVHarness(b, g, 7, kvHeads*ctx/bs+1, bs, hd, engine.KVF16, g.Caps().MaxStorageBufferRange)
	heads := h.addHeads(repeat(ctx, kvHeads), false)

	type wpair struct {
		c, g  engine.Weight
		bytes int64
	}
	weight := func(name string, rows, cols int, vector bool, dt model.DType) wpair {
		tn := cpu.EncodeTensor(name, dt, rows, cols, vector, 0, 0, h.randn(rows*cols))
		wc, err := h.c.UploadWeight(tn)
		if err != nil {
			b.Fatal(err)
		}
		wg, err := g.UploadWeight(tn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { g.FreeWeight(wg) })
		return wpair{wc, wg, model.TensorStoredBytes(tn)}
	}
	emb := weight("token_embd", vocab, dim, false, model.F16)
	norm := weight("attn_norm", 1, dim, true, model.F32)
	wq, wk, wv := weight("wq", dim, dim, false, model.F16), weight("wk", kvDim, dim, false, model.F16), weight("wv", kvDim, dim, false, model.F16)
	wo := weight("wo", dim, dim, false, model.F16)
	gate, up := weight("gate", ffn, dim, false, model.F16), weight("up", ffn, dim, false, model.F16)

	x, out := h.f32(h.randn(rows*dim)), h.f32(h.randn(rows*dim))
	q, k, v := h.f32(h.randn(window*qHeads*hd)), h.f32(h.randn(kvDim)), h.f32(h.randn(kvDim))
	a, c, hb := h.f32(h.randn(ffn)), h.f32(h.randn(ffn)), h.f32(h.randn(ffn))
	ids, rowIdx := h.i32([]int32{vocab / 3}), h.i32([]int32{3, 0, 7, 1, 6, 2, 5, 4})
	var slot []int32
	var tables, seqs []int32
	for _, hh := range heads {
		slot = append(slot, hh.table[len(hh.table)-1]*bs+bs-1) // the last slot of each head
		seqs = append(seqs, int32(len(tables)), int32(ctx), 0, window)
		tables = append(tables, hh.table...)
	}
	slots, pos := h.i32(slot), h.i32([]int32{ctx - 1})
	winPos := make([]int32, window)
	for i := range winPos {
		winPos[i] = int32(ctx - window + i)
	}
	wpos, tabs, seqsB := h.i32(winPos), h.i32(tables), h.i32(seqs)
	var moves []int32
	for i := 0; i < 32; i++ { // within the first head: slot i+32 onto slot i
		s := func(j int) int32 { return heads[0].table[j/bs]*bs + int32(j%bs) }
		moves = append(moves, s(i+32), s(i))
	}
	movesB := h.i32(moves)
	rope := engine.RopeParams{Layout: model.RopeRotateHalf, Theta: 10000}
	var readBlocks []int32
	for _, hh := range heads {
		readBlocks = append(readBlocks, hh.table...)
	}
	readMetric, readPos := make([]float32, len(readBlocks)*bs), make([]int32, len(readBlocks)*bs)

	type side struct {
		be   engine.Backend
		pool engine.KVPool
		buf  func(twin) engine.Buf
		w    func(wpair) engine.Weight
	}
	kvBytes := int64(kvHeads * hd * (4 + 2)) // f32 in, f16 stored, for K and for V
	for _, op := range []struct {
		name  string
		bytes int64
		run   func(s side)
	}{
		{"Embed", int64(dim*2 + dim*4), func(s side) { s.be.Embed(s.buf(out), s.w(emb), s.buf(ids), 1) }},
		{"RMSNorm", norm.bytes + int64(2*dim*4), func(s side) { s.be.RMSNorm(s.buf(out), s.buf(x), s.w(norm), 1, 1e-5) }},
		{"RoPE", int64(2 * qHeads * hd * 4), func(s side) { s.be.RoPE(s.buf(q), s.buf(pos), 1, qHeads, hd, rope) }},
		{"SwiGLU", int64(3 * ffn * 4), func(s side) { s.be.SwiGLU(s.buf(hb), s.buf(a), s.buf(c), ffn) }},
		{"Add", int64(3 * dim * 4), func(s side) { s.be.Add(s.buf(out), s.buf(out), s.buf(x), dim) }},
		{"CopyRows", int64(2 * rows * dim * 4), func(s side) { s.be.CopyRows(s.buf(out), s.buf(x), s.buf(rowIdx), rows, dim) }},
		{"MatMulAdd", wo.bytes + int64(3*dim*4), func(s side) { s.be.MatMulAdd(s.buf(out), s.buf(x), s.w(wo), 1) }},
		{"MatMulSwiGLU", gate.bytes + up.bytes + int64(dim*4+ffn*4), func(s side) { s.be.MatMulSwiGLU(s.buf(hb), s.buf(x), s.w(gate), s.w(up), 1) }},
		{"MatMulQKV", wq.bytes + wk.bytes + wv.bytes + int64(dim*4+(dim+2*kvDim)*4), func(s side) {
			s.be.MatMulQKV(s.buf(q), s.buf(k), s.buf(v), s.buf(x), s.w(wq), s.w(wk), s.w(wv), 1)
		}},
		{"KVWrite", 2 * kvBytes, func(s side) { s.be.KVWrite(s.pool, s.buf(k), s.buf(v), s.buf(slots), s.buf(pos), 1, kvHeads) }},
		{"RopeKVWrite", 2*kvBytes + int64(2*qHeads*hd*4), func(s side) {
			s.be.RopeKVWrite(s.pool, s.buf(q), s.buf(k), s.buf(v), s.buf(slots), s.buf(pos), 1, qHeads, kvHeads, rope)
		}},
		{"WindowMetric", int64(kvHeads*ctx*(hd*2+4+4)) + int64(window*qHeads*hd*4), func(s side) {
			s.be.WindowMetric(s.buf(q), s.pool, engine.WindowSpec{Seqs: s.buf(seqsB), Tables: s.buf(tabs), Pos: s.buf(wpos), NSeqs: 1,
				Squared: true, Pool7: true}, qHeads, kvHeads, 0.125)
		}},
		{"CopyMoves", int64(len(moves) / 2 * 2 * (2*hd*2 + 8)), func(s side) { s.be.CopyMoves(s.pool, s.buf(movesB), len(moves)/2) }},
		{"ReadSlots", int64(len(readMetric) * 8), func(s side) {
			if err := s.be.ReadSlots(s.pool, readBlocks, readMetric, readPos, nil); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		for _, dev := range []string{"vulkan", "cpu"} {
			s := side{be: g, pool: h.gp, buf: func(t twin) engine.Buf { return t.g }, w: func(p wpair) engine.Weight { return p.g }}
			if dev == "cpu" {
				s = side{be: h.c, pool: h.cp, buf: func(t twin) engine.Buf { return t.c }, w: func(p wpair) engine.Weight { return p.c }}
			}
			b.Run(fmt.Sprintf("%s/%s", op.name, dev), func(b *testing.B) {
				op.run(s) // warm: pipeline creation, first touch
				if err := s.be.Sync(); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(op.bytes)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					op.run(s)
					if err := s.be.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
