package cpu

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"kvc/engine"
	"kvc/model"
)

// benchWeight is a random rows x cols weight of dtype dt (q8_0 in groups of 32).
func benchWeight(b testing.TB, dt model.DType, rows, cols int) *Weight {
	rng := rand.New(rand.NewSource(1))
	group, sk := 0, model.ScaleNone
	switch dt {
	case model.Q8_0:
		group = 32
	case model.F8E4M3:
		sk = model.ScaleChannel // as FP8 checkpoints (Llama-3.1-*-Instruct-FP8) store them
	}
	w, err := (&Backend{}).UploadWeight(EncodeTensor("w", dt, rows, cols, false, sk, group, randVec(rng, rows*cols)))
	if err != nil {
		b.Fatal(err)
	}
	return w.(*Weight)
}

// BenchmarkPoolDispatch: one empty job on two workers (the pool's fixed cost per op).
func BenchmarkPoolDispatch(b *testing.B) {
	p := newWorkers(2)
	defer p.close()
	var sink [2]int
	for b.Loop() {
		p.run(2, func(part int) { sink[part]++ })
	}
}

// BenchmarkBatchProduct: a weight times n inputs on one thread, per kernel set (fp8 with per-channel
// scales): the 125M synth model's 3072x768 and 768x3072 shapes (batch-8 decode and prompt; from cache) and, at batch 8, weights of
// 36-48 MB with those row lengths (read from memory, as a decode step reads its weights).
func BenchmarkBatchProduct(b *testing.B) {
	saved := useAVX512
	defer func() { useAVX512 = saved }()
	for _, sh := range []struct {
		dt         model.DType
		rows, cols int
	}{{model.F16, 3072, 768}, {model.Q8_0, 3072, 768}, {model.F8E4M3, 3072, 768}, {model.F16, 768, 3072},
		{model.Q8_0, 768, 3072}, {model.F8E4M3, 768, 3072}, {model.F16, 24576, 768}, {model.F16, 6144, 3072},
		{model.Q8_0, 49152, 768}, {model.Q8_0, 12288, 3072}, {model.F8E4M3, 49152, 768}, {model.F8E4M3, 12288, 3072}} {
		dt, rows, cols := sh.dt, sh.rows, sh.cols
		w := benchWeight(b, dt, rows, cols)
		c := New(1)
		for _, n := range []int{8, 64} {
			if n == 64 && rows*cols > 1<<22 {
				continue // the big weights (read from memory) only at batch 8
			}
			x := bufOf(b, c, randVec(rand.New(rand.NewSource(2)), n*cols))
			out := buf(b, c, n*rows)
			for _, wide := range []bool{false, true} {
				if wide && !haveAVX512 {
					continue
				}
				b.Run(fmt.Sprintf("%v/%dx%d/n%d/avx512=%v", dt, rows, cols, n, wide), func(b *testing.B) {
					useAVX512 = wide
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					t0 := threadCPU()
					for b.Loop() {
						c.MatMul(out, x, w, n)
					}
					b.ReportMetric(float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFMA/s")
					b.ReportMetric(float64(rows*cols*n)*float64(b.N)/(threadCPU()-t0)/1e9, "GFMA/s-cpu")
				})
			}
		}
	}
}

// BenchmarkQ8Act: q8_0 products on one thread with float and with 8-bit activations: decode over a 96 MiB
// weight (read from memory), and batches of 8 and 64 over a 3072x768 one (from cache).
func BenchmarkQ8Act(b *testing.B) {
	saved := q8ActOn
	defer func() { q8ActOn = saved }()
	c := New(1)
	for _, s := range [][3]int{{32768, 3072, 1}, {3072, 768, 8}, {3072, 768, 64}} {
		rows, cols, n := s[0], s[1], s[2]
		w := benchWeight(b, model.Q8_0, rows, cols)
		x := bufOf(b, c, randVec(rand.New(rand.NewSource(2)), n*cols))
		out := buf(b, c, n*rows)
		for _, act := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dx%d/n%d/act8=%v", rows, cols, n, act), func(b *testing.B) {
				q8ActOn = act
				for b.Loop() {
					c.MatMul(out, x, w, n)
				}
				b.ReportMetric(float64(rows*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				b.ReportMetric(float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}

// BenchmarkQ8Quantize: one 3072-element input quantized for 8-bit activation products (the AVX-512
// quantizer where VNNI runs, the AVX2 one where AVX2 does (KVC_CPU_NOAVX512=1), else the Go one).
func BenchmarkQ8Quantize(b *testing.B) {
	a := &q8Acts{n: 1, cols: 3072, g: q8ActGroup, q: make([]int8, 3072), s: make([]float32, 96), corr: make([]int32, 768)}
	x := randVec(rand.New(rand.NewSource(1)), 3072)
	for b.Loop() {
		a.quantize(x, 0)
	}
}

// BenchmarkAttentionDecode: one layer's decode attention of the 125M synth model at batch 8 (12 query
// heads over 4 KV heads of width 64, 160 cached tokens each in blocks of 16) on one thread, f32 and f16
// caches.
func BenchmarkAttentionDecode(b *testing.B) {
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		b.Run(map[engine.KVType]string{engine.KVF32: "f32", engine.KVF16: "f16"}[typ], func(b *testing.B) { benchAttention(b, typ) })
	}
}

// BenchmarkAttentionPrefill: one layer's attention over a 256-token prompt chunk in the 125M synth model's
// shape (12 query heads over 4 KV heads of width 64, the chunk's own slots in blocks of 16) on one thread,
// f16 cache: row i sees the slots up to position i.
func BenchmarkAttentionPrefill(b *testing.B) {
	const rows, qHeads, kvHeads, d, bs = 256, 12, 4, 64, 16
	rng := rand.New(rand.NewSource(3))
	c := New(1)
	defer c.Close()
	nb := kvHeads * rows / bs
	p := benchPool(b, c, rng, nb, bs, d, engine.KVF16, true)
	heads, tables, pos := buf(b, c, rows*kvHeads*2), buf(b, c, nb), buf(b, c, rows)
	for i, blk := range rng.Perm(nb) {
		tables.I32()[i] = int32(blk)
	}
	for h := range kvHeads {
		for i := range rows {
			p.Pos[int(tables.I32()[h*rows/bs+i/bs])*bs+i%bs] = int32(i)
		}
	}
	for row := range rows {
		pos.I32()[row] = int32(row)
		for h := range kvHeads {
			j := row*kvHeads + h
			heads.I32()[2*j], heads.I32()[2*j+1] = int32(h*rows/bs), rows
		}
	}
	q := bufOf(b, c, randVec(rng, rows*qHeads*d))
	out := buf(b, c, rows*qHeads*d)
	for b.Loop() {
		c.Attention(out, q, p, engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: rows}, qHeads, kvHeads, 0.125, engine.MetricNone)
	}
}

// benchPool is a pool of nb blocks of bs slots of width d whose every slot has a random K row, and with
// sameV the same row as V.
func benchPool(b *testing.B, c *Backend, rng *rand.Rand, nb, bs, d int, typ engine.KVType, sameV bool) *KVPool {
	pl, err := c.NewKVPool(nb, bs, d, typ)
	if err != nil {
		b.Fatal(err)
	}
	p := pl.(*KVPool)
	for s := range p.Slots() {
		row := randVec(rng, d)
		p.storeRow(p.k32, p.k16, s, row)
		if sameV {
			p.storeRow(p.v32, p.v16, s, row)
		}
	}
	return p
}

func benchAttention(b *testing.B, typ engine.KVType) {
	const rows, qHeads, kvHeads, d, ctx, bs = 8, 12, 4, 64, 160, 16
	rng := rand.New(rand.NewSource(3))
	c := New(1)
	defer c.Close()
	nb := rows * kvHeads * ctx / bs
	p := benchPool(b, c, rng, nb, bs, d, typ, true)
	heads, tables, pos := buf(b, c, rows*kvHeads*2), buf(b, c, nb), buf(b, c, rows)
	for i, blk := range rng.Perm(nb) {
		tables.I32()[i] = int32(blk)
	}
	for row := range rows {
		pos.I32()[row] = ctx - 1
		for h := range kvHeads {
			j := row*kvHeads + h
			heads.I32()[2*j], heads.I32()[2*j+1] = int32(j*ctx/bs), ctx
			for i := range ctx {
				p.Pos[int(tables.I32()[j*ctx/bs+i/bs])*bs+i%bs] = int32(i)
			}
		}
	}
	q := bufOf(b, c, randVec(rng, rows*qHeads*d))
	out := buf(b, c, rows*qHeads*d)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	for b.Loop() {
		c.Attention(out, q, p, engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: rows}, qHeads, kvHeads, 0.125, engine.MetricNone)
	}
	b.ReportMetric((threadCPU()-t0)*1e6/float64(b.N), "us-cpu/op") // less disturbed by other work on the machine
}

// BenchmarkDecodeStream: one input against a weight larger than the last-level cache, on one thread and on
// the pool, f16 and q8_0 (with the activations it runs by default): the decode kernels' weight GB/s, next
// to the probe's read bandwidth with the same threads.
func BenchmarkDecodeStream(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("probe/t%d", threads), func(b *testing.B) {
			for b.Loop() {
				b.ReportMetric(ProbeRead(threads, 3).GBps, "GB/s")
			}
		})
		for _, dt := range []model.DType{model.F16, model.Q8_0} {
			for _, rows := range []int{32768, 512} {
				cols := 1536
				if dt == model.Q8_0 {
					cols = 3072
				}
				w := benchWeight(b, dt, rows, cols)
				c := New(threads)
				defer c.Close()
				x := bufOf(b, c, randVec(rand.New(rand.NewSource(2)), cols))
				out := buf(b, c, rows)
				bytes := float64(rows * cols * dt.ElemBytes())
				if dt == model.Q8_0 {
					bytes += float64(rows * cols / 32 * 4) // the scales
				}
				b.Run(fmt.Sprintf("%v/%dx%d/t%d", dt, rows, cols, threads), func(b *testing.B) {
					if threads == 1 { // threadCPU below: this goroutine's thread. Not with the pool: a locked
						// goroutine that yields while it waits hands its P to another thread, a wake-up each time
						runtime.LockOSThread()
						defer runtime.UnlockOSThread()
					}
					t0 := threadCPU()
					for b.Loop() {
						c.MatMul(out, x, w, 1)
					}
					b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
					if threads == 1 { // per second this thread ran: less disturbed by other work on the machine
						b.ReportMetric(bytes*float64(b.N)/(threadCPU()-t0)/1e9, "GB/s-cpu")
					}
				})
			}
		}
	}
}

// threadCPU is the CPU time of the calling thread, in seconds.
func threadCPU() float64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}
