package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"

	"kvc/engine"
)

// TestFastWindowMetricMatchesReference: the fast backend's window metric against the plain-Go reference
// (&Backend{}) on random caches at odd sizes: contexts 1 to 257 (a whole prompt as the window, as the
// default policy asks, plus a short sequence with a 3-row window), f32 and f16 caches, GQA 1, 2 and 4,
// metric buffer 0 and 10, squared or not, Pool7 or not, causal caches and compacted ones (shuffled
// positions, per-head lengths), block sizes 1, 4 and 16, head widths 12 (kernel tails) and 16, with both
// kernel sets. The fused attention and window metric (fusedAttentionWindow) runs on the same cases: its
// metric against the reference's, its attention output against the fast Attention's.
func TestFastWindowMetricMatchesReference(t *testing.T) {
	withKernels(t, testFastWindowMetric)
}

func testFastWindowMetric(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	fast := New(2)
	defer fast.Close()
	const kvHeads = 2
	worst := 0.0
	ci := 0
	for _, c := range []int{1, 7, 63, 257} {
		for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
			for _, r := range []int{1, 2, 4} {
				for _, mb := range []int{0, 10} {
					for v := 0; v < 4; v++ {
						ci++
						squared, pool7, ordered := v&1 == 1, v&2 == 2, (ci/3)%2 == 0
						bs, d := []int{1, 4, 16}[ci%3], []int{12, 16}[ci%2]
						name := fmt.Sprintf("ctx%d/t%d/r%d/buf%d/sq%v/p7%v/ord%v/b%d/d%d", c, typ, r, mb, squared, pool7, ordered, bs, d)
						e := checkFastWindow(t, rng, fast, name, c, bs, d, r, kvHeads, typ, mb, squared, pool7, ordered)
						worst = max(worst, e)
					}
				}
			}
		}
	}
	t.Logf("largest error / tolerance: %.3g", worst)
}

// checkFastWindow runs one case on both backends and returns the largest error as a fraction of its
// tolerance.
func checkFastWindow(t *testing.T, rng *rand.Rand, fast *Backend, name string, c, bs, d, r, kvHeads int, typ engine.KVType,
	mb int, squared, pool7, ordered bool) float64 {
	qHeads := r * kvHeads
	// Sequence 0: c tokens, all of them the window. Compacted caches keep fewer KVs in head 1.
	c1 := c
	if !ordered {
		c1 = max(1, c/2+1)
	}
	ctx := [][]int{{c, c1}, {5, 9}}
	pc := newPagedCase(t, rng, ctx, bs, d, typ, ordered)
	be := pc.be
	rows := c + 4
	pos := buf(t, be, rows)
	for i := 0; i < rows; i++ {
		switch {
		case i < c && ordered:
			pos.I32()[i] = int32(i)
		case i < c:
			pos.I32()[i] = int32(rng.Intn(c + 2)) // some rows see nothing of head 1, or all of it
		default:
			pos.I32()[i] = int32(rng.Intn(13)) - 1 // -1: a row that sees no slot
		}
	}
	seqs, tables := buf(t, be, 2*kvHeads*4), buf(t, be, len(pc.tables))
	copy(tables.I32(), pc.tables)
	for h := 0; h < kvHeads; h++ {
		copy(seqs.I32()[h*4:], []int32{pc.offs[0][h], int32(ctx[0][h]), 0, int32(c)})
		copy(seqs.I32()[(kvHeads+h)*4:], []int32{pc.offs[1][h], int32(ctx[1][h]), int32(c + 1), 3})
	}
	q := bufOf(t, be, randVec(rng, rows*qHeads*d))
	base := make([]float32, len(pc.pool.Metric))
	for i := range base {
		base[i] = rng.Float32()
	}
	spec := engine.WindowSpec{Seqs: seqs, Tables: tables, Pos: pos, NSeqs: 2, Squared: squared, Pool7: pool7, Buffer: mb}
	var metrics [3][]float32
	for i, b := range []*Backend{be, fast} {
		copy(pc.pool.Metric, base)
		b.WindowMetric(q, pc.pool, spec, qHeads, kvHeads, 0.3)
		metrics[i] = append([]float32(nil), pc.pool.Metric...)
	}
	// The fused attention and window metric: each row reads its sequence's heads (row c is in no window,
	// rows c+1.. in sequence 1's); its attention output must be the plain fast Attention's, bit for bit.
	heads := buf(t, be, rows*kvHeads*2)
	for row := 0; row < rows; row++ {
		s := min(row/c, 1)
		for h := 0; h < kvHeads; h++ {
			copy(heads.I32()[(row*kvHeads+h)*2:], []int32{pc.offs[s][h], int32(ctx[s][h])})
		}
	}
	a := engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: rows}
	want, got := buf(t, be, rows*qHeads*d), buf(t, be, rows*qHeads*d)
	fast.Attention(want, q, pc.pool, a, qHeads, kvHeads, 0.3, engine.MetricNone)
	copy(pc.pool.Metric, base)
	if !fast.fusedAttentionWindow(got.F32(), q.F32(), pc.pool, heads.I32(), tables.I32(), pos.I32(), rows, 0, qHeads, kvHeads, 0.3, engine.MetricNone, 0, spec) {
		t.Fatalf("%s: the fused attention and window metric did not apply", name)
	}
	metrics[2] = append([]float32(nil), pc.pool.Metric...)
	// A window row reading another head cache than its window's: the fused op must decline (AttentionWindow
	// then runs the two ops).
	heads.I32()[((c+1)*kvHeads)*2+1]--
	if fast.fusedAttentionWindow(got.F32(), q.F32(), pc.pool, heads.I32(), tables.I32(), pos.I32(), rows, 0, qHeads, kvHeads, 0.3, engine.MetricNone, 0, spec) {
		t.Fatalf("%s: the fused op applied to a window row with another context", name)
	}
	for i, x := range want.F32() {
		if got.F32()[i] != x && !(math.IsNaN(float64(x)) && math.IsNaN(float64(got.F32()[i]))) {
			t.Fatalf("%s: fused attention output[%d] = %v, Attention's %v", name, i, got.F32()[i], x)
		}
	}
	// Tolerance from f32 rounding: each probability's relative error is that of its score (a d-term f32
	// dot product, scaled), of exp (a few ulp) and of the f32 sum of up to ctx exps; a square doubles it.
	// The added metric is a sum of such positive terms, so its relative error is bounded the same way; the
	// final f32 add to the base adds one rounding of the result.
	const eps = 1.0 / (1 << 24)
	rel := 2 * float64(d+c/8+8) * eps
	if squared {
		rel *= 2
	}
	worst := 0.0
	for k, op := range []string{"WindowMetric", "fused AttentionWindow"} {
		for i, want := range metrics[0] {
			got := metrics[1+k][i]
			added := math.Abs(float64(want) - float64(base[i]))
			tol := 4*rel*added + 2*eps*math.Abs(float64(want))
			err := math.Abs(float64(got) - float64(want))
			if err > tol {
				t.Fatalf("%s: %s metric[%d] = %v, reference %v (base %v, tolerance %.3g)", name, op, i, got, want, base[i], tol)
			}
			if tol > 0 {
				worst = max(worst, err/tol)
			}
		}
	}
	return worst
}

// TestFastAttentionWindowMixedMatchesReference: the fused attention and window metric on a continuous-
// batching pass, decode rows that add the attention metric (plain or squared) first, then prompt rows, some
// of them window rows: its metric against the reference's Attention then WindowMetric, its output against
// the fast Attention's bit for bit. Windows of 1, 7 and 64 rows plus a 3-row one, f32 and f16, GQA 1, 2
// and 4, buffer 0 and 10, causal and compacted (shuffled) caches, two decode rows on one head cache.
func TestFastAttentionWindowMixedMatchesReference(t *testing.T) {
	withKernels(t, testFastAttentionWindowMixed)
}

func testFastAttentionWindowMixed(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	fast := New(2)
	defer fast.Close()
	const kvHeads = 2
	worst := 0.0
	ci := 0
	for _, c := range []int{1, 7, 64} {
		for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
			for _, r := range []int{1, 2, 4} {
				for _, mb := range []int{0, 10} {
					for v := 0; v < 2; v++ {
						ci++
						mode := []engine.MetricMode{engine.MetricPlain, engine.MetricSquared}[v]
						squared, pool7, ordered := ci%3 == 0, ci%2 == 0, (ci/2)%2 == 0
						bs, d := []int{1, 4, 16}[ci%3], []int{12, 16}[(ci/3)%2]
						name := fmt.Sprintf("ctx%d/t%d/r%d/buf%d/m%d/sq%v/p7%v/ord%v/b%d/d%d", c, typ, r, mb, mode, squared, pool7, ordered, bs, d)
						e := checkMixedWindow(t, rng, fast, name, c, bs, d, r, kvHeads, typ, mb, mode, squared, pool7, ordered)
						worst = max(worst, e)
					}
				}
			}
		}
	}
	t.Logf("largest error / tolerance: %.3g", worst)
}

// checkMixedWindow runs one mixed pass: sequences 0 and 1 decode (rows 0, 1 and 2, row 2 on sequence 0's
// heads again), sequence 2's c prompt rows are its window, sequence 3 has a prompt row and then a 3-row
// window. It returns the largest metric error as a fraction of its tolerance.
func checkMixedWindow(t *testing.T, rng *rand.Rand, fast *Backend, name string, c, bs, d, r, kvHeads int, typ engine.KVType,
	mb int, mode engine.MetricMode, squared, pool7, ordered bool) float64 {
	qHeads := r * kvHeads
	c1 := c
	if !ordered {
		c1 = max(1, c/2+1)
	}
	const nd = 3
	ctx := [][]int{{1 + rng.Intn(40), 1 + rng.Intn(40)}, {1 + rng.Intn(40), 1 + rng.Intn(40)}, {c, c1}, {5, 9}}
	pc := newPagedCase(t, rng, ctx, bs, d, typ, ordered)
	be := pc.be
	rows := nd + c + 4
	seqOf := func(row int) int {
		switch {
		case row < nd:
			return []int{0, 1, 0}[row]
		case row < nd+c:
			return 2
		}
		return 3
	}
	pos, heads := buf(t, be, rows), buf(t, be, rows*kvHeads*2)
	for row := 0; row < rows; row++ {
		s := seqOf(row)
		switch {
		case row == 0:
			pos.I32()[row] = 50 // sees all of its cache
		case row < nd:
			pos.I32()[row] = int32(rng.Intn(42)) - 1
		case s == 2 && ordered:
			pos.I32()[row] = int32(row - nd)
		case s == 2:
			pos.I32()[row] = int32(rng.Intn(c + 2))
		default:
			pos.I32()[row] = int32(rng.Intn(13)) - 1
		}
		for h := 0; h < kvHeads; h++ {
			copy(heads.I32()[(row*kvHeads+h)*2:], []int32{pc.offs[s][h], int32(ctx[s][h])})
		}
	}
	seqs, tables := buf(t, be, 2*kvHeads*4), buf(t, be, len(pc.tables))
	copy(tables.I32(), pc.tables)
	for h := 0; h < kvHeads; h++ {
		copy(seqs.I32()[h*4:], []int32{pc.offs[2][h], int32(ctx[2][h]), nd, int32(c)})
		copy(seqs.I32()[(kvHeads+h)*4:], []int32{pc.offs[3][h], int32(ctx[3][h]), int32(nd + c + 1), 3})
	}
	q := bufOf(t, be, randVec(rng, rows*qHeads*d))
	base := make([]float32, len(pc.pool.Metric))
	for i := range base {
		base[i] = rng.Float32()
	}
	spec := engine.WindowSpec{Seqs: seqs, Tables: tables, Pos: pos, NSeqs: 2, Squared: squared, Pool7: pool7, Buffer: mb}
	a := engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: rows, MetricRows: nd, MetricBuffer: mb}
	// The reference: the two ops.
	out := buf(t, be, rows*qHeads*d)
	copy(pc.pool.Metric, base)
	be.Attention(out, q, pc.pool, a, qHeads, kvHeads, 0.3, mode)
	be.WindowMetric(q, pc.pool, spec, qHeads, kvHeads, 0.3)
	ref := append([]float32(nil), pc.pool.Metric...)
	want, got := buf(t, be, rows*qHeads*d), buf(t, be, rows*qHeads*d)
	fast.Attention(want, q, pc.pool, a, qHeads, kvHeads, 0.3, mode)
	copy(pc.pool.Metric, base)
	if !fast.fusedAttentionWindow(got.F32(), q.F32(), pc.pool, heads.I32(), tables.I32(), pos.I32(), rows, nd, qHeads, kvHeads, 0.3, mode, int32(mb), spec) {
		t.Fatalf("%s: the fused attention and window metric did not apply", name)
	}
	fused := append([]float32(nil), pc.pool.Metric...)
	for i, x := range want.F32() {
		if got.F32()[i] != x && !(math.IsNaN(float64(x)) && math.IsNaN(float64(got.F32()[i]))) {
			t.Fatalf("%s: fused attention output[%d] = %v, Attention's %v", name, i, got.F32()[i], x)
		}
	}
	// It declines a window row that collects a metric, and a metric row on a window's head cache (their
	// adds to the same slots would race).
	if fast.fusedAttentionWindow(got.F32(), q.F32(), pc.pool, heads.I32(), tables.I32(), pos.I32(), rows, nd+1, qHeads, kvHeads, 0.3, mode, int32(mb), spec) {
		t.Fatalf("%s: the fused op applied to a window row with a metric", name)
	}
	copy(heads.I32()[2:4], []int32{pc.offs[3][1], int32(ctx[3][1])})
	if fast.fusedAttentionWindow(got.F32(), q.F32(), pc.pool, heads.I32(), tables.I32(), pos.I32(), rows, nd, qHeads, kvHeads, 0.3, mode, int32(mb), spec) {
		t.Fatalf("%s: the fused op applied to a metric row on a window's head cache", name)
	}
	// Tolerance as checkFastWindow's, over the longest context.
	const eps = 1.0 / (1 << 24)
	rel := 2 * float64(d+max(c, 40)/8+8) * eps
	if squared || mode == engine.MetricSquared {
		rel *= 2
	}
	worst := 0.0
	for i, want := range ref {
		added := math.Abs(float64(want) - float64(base[i]))
		tol := 4*rel*added + 2*eps*math.Abs(float64(want))
		err := math.Abs(float64(fused[i]) - float64(want))
		if err > tol {
			t.Fatalf("%s: fused metric[%d] = %v, reference %v (base %v, tolerance %.3g)", name, i, fused[i], want, base[i], tol)
		}
		if tol > 0 {
			worst = max(worst, err/tol)
		}
	}
	return worst
}

// BenchmarkWindowMetric: the default policy's prompt metric over every row of a 256-token prompt in
// stories260K's shape (8 query heads, 4 KV heads, head width 8, blocks of 16), reference and fast, one
// thread; us-cpu/op is the thread's CPU time.
//
//	go test ./engine/cpu -run - -bench WindowMetric
func BenchmarkWindowMetric(b *testing.B) {
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, name := range []string{"reference", "fast"} {
			b.Run(fmt.Sprintf("%s/t%d", name, typ), func(b *testing.B) {
				c := &Backend{Threads: 1}
				if name == "fast" {
					c = New(1)
					defer c.Close()
				}
				benchWindowMetric(b, c, typ, "")
			})
		}
	}
}

// benchWindowMetric times WindowMetric, or with attn "separate" or "fused" every row's attention too, or
// with "attention" only that.
func benchWindowMetric(b *testing.B, c *Backend, typ engine.KVType, attn string) {
	const qHeads, kvHeads, d, ctx, bs = 8, 4, 8, 256, 16
	rng := rand.New(rand.NewSource(3))
	nb := kvHeads * ctx / bs
	p := benchPool(b, c, rng, nb, bs, d, typ, false)
	seqs, tables, pos := buf(b, c, kvHeads*4), buf(b, c, nb), buf(b, c, ctx)
	for i, blk := range rng.Perm(nb) {
		tables.I32()[i] = int32(blk)
	}
	for i := range ctx {
		pos.I32()[i] = int32(i)
	}
	for h := range kvHeads {
		copy(seqs.I32()[4*h:], []int32{int32(h * ctx / bs), ctx, 0, ctx})
		for i := range ctx {
			p.Pos[int(tables.I32()[h*ctx/bs+i/bs])*bs+i%bs] = int32(i)
		}
	}
	q := bufOf(b, c, randVec(rng, ctx*qHeads*d))
	w := engine.WindowSpec{Seqs: seqs, Tables: tables, Pos: pos, NSeqs: 1, Buffer: 10}
	op := func() { c.WindowMetric(q, p, w, qHeads, kvHeads, 0.35) }
	if attn != "" {
		for s := range p.Slots() {
			p.storeRow(p.v32, p.v16, s, randVec(rng, d))
		}
		heads, out := buf(b, c, ctx*kvHeads*2), buf(b, c, ctx*qHeads*d)
		for row := range ctx {
			for h := range kvHeads {
				copy(heads.I32()[(row*kvHeads+h)*2:], []int32{int32(h * ctx / bs), ctx})
			}
		}
		a := engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: ctx, MetricBuffer: 10}
		op = func() {
			c.Attention(out, q, p, a, qHeads, kvHeads, 0.35, engine.MetricNone)
			c.WindowMetric(q, p, w, qHeads, kvHeads, 0.35)
		}
		switch attn {
		case "fused":
			op = func() { c.AttentionWindow(out, q, p, a, w, qHeads, kvHeads, 0.35, engine.MetricNone) }
		case "attention":
			op = func() { c.Attention(out, q, p, a, qHeads, kvHeads, 0.35, engine.MetricNone) }
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	for b.Loop() {
		op()
	}
	b.ReportMetric((threadCPU()-t0)*1e6/float64(b.N), "us-cpu/op")
}

// BenchmarkAttentionWindow: a prefill chunk's attention and the default policy's prompt metric, as two ops
// (separate) and as the fused AttentionWindow, and the attention alone, on the fast backend in
// BenchmarkWindowMetric's shape, one thread.
//
//	go test ./engine/cpu -run - -bench AttentionWindow
func BenchmarkAttentionWindow(b *testing.B) {
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, name := range []string{"attention", "separate", "fused"} {
			b.Run(fmt.Sprintf("%s/t%d", name, typ), func(b *testing.B) {
				c := New(1)
				defer c.Close()
				benchWindowMetric(b, c, typ, name)
			})
		}
	}
}
