package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"kvc/engine"
	"kvc/model"
)

// denseHead is one (sequence, KV head) cache in logical order, as plain arrays.
type denseHead struct {
	k, v  [][]float32
	pos   []int32
	table []int32
}

// pagedCase is a random paged cache: heads[seq][kvHead] laid out in shuffled physical blocks.
type pagedCase struct {
	be     *Backend
	pool   *KVPool
	heads  [][]denseHead
	tables []int32
	offs   [][]int32 // [seq][kvHead] offset into tables
}

func buf(t testing.TB, be *Backend, n int) *Buf {
	b, err := be.Alloc(int64(4 * n))
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Buf)
}

func randRow(rng *rand.Rand, d int, f16 bool) []float32 {
	r := make([]float32, d)
	for i := range r {
		r[i] = float32(rng.NormFloat64())
		if f16 { // the dense reference must see what the pool stores
			r[i] = model.F16ToF32(model.F32ToF16(r[i]))
		}
	}
	return r
}

// newPagedCase builds seqs sequences of kvHeads heads with the given context lengths (ctx[s][h]) in a pool
// of shuffled physical blocks. Positions: causal order 0..ctx-1 when ordered, else a random permutation
// (a compacted cache).
func newPagedCase(t *testing.T, rng *rand.Rand, ctx [][]int, bs, d int, typ engine.KVType, ordered bool) *pagedCase {
	need := 0
	for _, hs := range ctx {
		for _, c := range hs {
			need += (c + bs - 1) / bs
		}
	}
	be := &Backend{Threads: 2}
	pl, err := be.NewKVPool(need+3, bs, d, typ)
	if err != nil {
		t.Fatal(err)
	}
	pc := &pagedCase{be: be, pool: pl.(*KVPool)}
	ids := rng.Perm(need + 3)
	for s, hs := range ctx {
		pc.heads = append(pc.heads, make([]denseHead, len(hs)))
		pc.offs = append(pc.offs, make([]int32, len(hs)))
		for h, c := range hs {
			dh := &pc.heads[s][h]
			for i := 0; i < (c+bs-1)/bs; i++ {
				dh.table = append(dh.table, int32(ids[0]))
				ids = ids[1:]
			}
			pc.offs[s][h] = int32(len(pc.tables))
			pc.tables = append(pc.tables, dh.table...)
			perm := rng.Perm(c)
			for i := 0; i < c; i++ {
				dh.k = append(dh.k, randRow(rng, d, typ == engine.KVF16))
				dh.v = append(dh.v, randRow(rng, d, typ == engine.KVF16))
				p := int32(i)
				if !ordered {
					p = int32(perm[i])
				}
				dh.pos = append(dh.pos, p)
			}
			// Write through KVWrite, one token (one head) at a time.
			kb, vb, sb, pb := buf(t, be, d), buf(t, be, d), buf(t, be, 1), buf(t, be, 1)
			for i := 0; i < c; i++ {
				copy(kb.F32(), dh.k[i])
				copy(vb.F32(), dh.v[i])
				sb.I32()[0] = dh.table[i/bs]*int32(bs) + int32(i%bs)
				pb.I32()[0] = dh.pos[i]
				be.KVWrite(pc.pool, kb, vb, sb, pb, 1, 1)
			}
		}
	}
	return pc
}

// denseAttend is softmax(q k^T * scale) over the visible rows of a dense head, and the probabilities.
func denseAttend(q []float32, dh *denseHead, qpos int32, scale float32) (out []float64, p []float64) {
	d := len(q)
	s := make([]float64, len(dh.k))
	m := math.Inf(-1)
	for i := range dh.k {
		s[i] = math.Inf(-1)
		if dh.pos[i] <= qpos {
			var dot float64
			for e := 0; e < d; e++ {
				dot += float64(q[e]) * float64(dh.k[i][e])
			}
			s[i] = dot * float64(scale)
			m = math.Max(m, s[i])
		}
	}
	out, p = make([]float64, d), make([]float64, len(dh.k))
	if math.IsInf(m, -1) {
		return out, p
	}
	var z float64
	for i := range s {
		p[i] = math.Exp(s[i] - m)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
		for e := 0; e < d; e++ {
			out[e] += p[i] * float64(dh.v[i][e])
		}
	}
	return out, p
}

func close32(a float32, b float64, tol float64) bool {
	return math.Abs(float64(a)-b) <= tol*(1+math.Abs(b))
}

// TestAttentionPagedMatchesDense: decode rows (one per sequence, compacted caches with permuted positions)
// against dense attention, over block sizes, GQA ratios, KV types and metric modes.
func TestAttentionPagedMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const kvHeads, d = 2, 12
	for _, bs := range []int{1, 4, 16, 32} {
		for _, r := range []int{1, 2, 4} {
			for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
				for _, mode := range []engine.MetricMode{engine.MetricNone, engine.MetricSquared, engine.MetricPlain} {
					name := fmt.Sprintf("b%d/r%d/t%d/m%d", bs, r, typ, mode)
					t.Run(name, func(t *testing.T) {
						checkDecode(t, rng, bs, r, kvHeads, d, typ, mode)
					})
				}
			}
		}
	}
}

func checkDecode(t *testing.T, rng *rand.Rand, bs, r, kvHeads, d int, typ engine.KVType, mode engine.MetricMode) {
	qHeads := r * kvHeads
	seqs := 3
	ctx := make([][]int, seqs)
	for s := range ctx {
		for h := 0; h < kvHeads; h++ {
			ctx[s] = append(ctx[s], 1+rng.Intn(45)) // rarely a multiple of the block size
		}
	}
	pc := newPagedCase(t, rng, ctx, bs, d, typ, false)
	// Start from a random metric so that the op must add, not overwrite.
	before := make([]float32, len(pc.pool.Metric))
	for i := range before {
		before[i] = rng.Float32()
		pc.pool.Metric[i] = before[i]
	}
	be := pc.be
	q, out := buf(t, be, seqs*qHeads*d), buf(t, be, seqs*qHeads*d)
	for i := range q.F32() {
		q.F32()[i] = float32(rng.NormFloat64())
	}
	for i := range out.F32() {
		out.F32()[i] = float32(math.NaN())
	}
	heads, tables, pos := buf(t, be, seqs*kvHeads*2), buf(t, be, len(pc.tables)), buf(t, be, seqs)
	copy(tables.I32(), pc.tables)
	for s := 0; s < seqs; s++ {
		pos.I32()[s] = int32(30) // positions above 30 are hidden: a mask test as well
		for h := 0; h < kvHeads; h++ {
			heads.I32()[(s*kvHeads+h)*2] = pc.offs[s][h]
			heads.I32()[(s*kvHeads+h)*2+1] = int32(ctx[s][h])
		}
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	be.Attention(out, q, pc.pool, engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: seqs},
		qHeads, kvHeads, scale, mode)
	wantMetric := make([]float64, len(before))
	for i := range before {
		wantMetric[i] = float64(before[i])
	}
	for s := 0; s < seqs; s++ {
		for h := 0; h < qHeads; h++ {
			dh := &pc.heads[s][h/r]
			o := (s*qHeads + h) * d
			want, p := denseAttend(q.F32()[o:o+d], dh, 30, scale)
			for e := 0; e < d; e++ {
				if !close32(out.F32()[o+e], want[e], 1e-5) {
					t.Fatalf("seq %d head %d elem %d: got %v want %v", s, h, e, out.F32()[o+e], want[e])
				}
			}
			for i, pr := range p {
				slot := int(dh.table[i/bs])*bs + i%bs
				switch mode {
				case engine.MetricSquared:
					wantMetric[slot] += pr * pr
				case engine.MetricPlain:
					wantMetric[slot] += pr
				}
			}
		}
	}
	for i, w := range wantMetric {
		if !close32(pc.pool.Metric[i], w, 1e-6) {
			t.Fatalf("metric of slot %d: got %v want %v", i, pc.pool.Metric[i], w)
		}
	}
}

// TestAttentionPrefillCausal: a chunk of query rows over one sequence whose K/V are all written; the
// position mask makes it causal.
func TestAttentionPrefillCausal(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, bs := range []int{1, 4, 16, 32} {
		const kvHeads, r, d, n = 2, 2, 8, 37
		qHeads := r * kvHeads
		pc := newPagedCase(t, rng, [][]int{{n, n}}, bs, d, engine.KVF32, true)
		be := pc.be
		q, out := buf(t, be, n*qHeads*d), buf(t, be, n*qHeads*d)
		for i := range q.F32() {
			q.F32()[i] = float32(rng.NormFloat64())
		}
		heads, tables, pos := buf(t, be, n*kvHeads*2), buf(t, be, len(pc.tables)), buf(t, be, n)
		copy(tables.I32(), pc.tables)
		for row := 0; row < n; row++ {
			pos.I32()[row] = int32(row)
			for h := 0; h < kvHeads; h++ {
				heads.I32()[(row*kvHeads+h)*2] = pc.offs[0][h]
				heads.I32()[(row*kvHeads+h)*2+1] = n
			}
		}
		be.Attention(out, q, pc.pool, engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: n},
			qHeads, kvHeads, 0.3, engine.MetricNone)
		for row := 0; row < n; row++ {
			for h := 0; h < qHeads; h++ {
				// Dense causal reference: only the first row+1 keys exist.
				dh := pc.heads[0][h/r]
				causal := denseHead{k: dh.k[:row+1], v: dh.v[:row+1], pos: dh.pos[:row+1]}
				o := (row*qHeads + h) * d
				want, _ := denseAttend(q.F32()[o:o+d], &causal, math.MaxInt32, 0.3)
				for e := 0; e < d; e++ {
					if !close32(out.F32()[o+e], want[e], 1e-5) {
						t.Fatalf("b%d row %d head %d: got %v want %v", bs, row, h, out.F32()[o+e], want[e])
					}
				}
			}
		}
		for _, m := range pc.pool.Metric {
			if m != 0 {
				t.Fatalf("MetricNone changed a metric to %v", m)
			}
		}
	}
}

// TestWindowMetricMatchesDense: the observation-window metric against a dense computation that builds
// the whole attention matrix of the window rows first.
func TestWindowMetricMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, bs := range []int{1, 4, 16} {
		for _, r := range []int{1, 2, 4} {
			for _, pool7 := range []bool{false, true} {
				for _, squared := range []bool{false, true} {
					checkWindow(t, rng, bs, r, pool7, squared)
				}
			}
		}
	}
}

func checkWindow(t *testing.T, rng *rand.Rand, bs, r int, pool7, squared bool) {
	const kvHeads, d = 2, 8
	qHeads := r * kvHeads
	lens := []int{23, 40}
	ctx := [][]int{{lens[0], lens[0]}, {lens[1], lens[1]}}
	pc := newPagedCase(t, rng, ctx, bs, d, engine.KVF32, true)
	be := pc.be
	rows := lens[0] + lens[1]
	q := buf(t, be, rows*qHeads*d)
	for i := range q.F32() {
		q.F32()[i] = float32(rng.NormFloat64())
	}
	pos := buf(t, be, rows)
	firstRow := []int{0, lens[0]}
	for s, n := range lens {
		for i := 0; i < n; i++ {
			pos.I32()[firstRow[s]+i] = int32(i)
		}
	}
	win := []int{5, 8}
	seqs, tables := buf(t, be, 2*kvHeads*4), buf(t, be, len(pc.tables))
	copy(tables.I32(), pc.tables)
	for s := range lens {
		for h := 0; h < kvHeads; h++ {
			copy(seqs.I32()[(s*kvHeads+h)*4:], []int32{pc.offs[s][h], int32(lens[s]),
				int32(firstRow[s] + lens[s] - win[s]), int32(win[s])})
		}
	}
	before := append([]float32(nil), pc.pool.Metric...)
	for i := range pc.pool.Metric {
		pc.pool.Metric[i] = float32(i % 3)
		before[i] = pc.pool.Metric[i]
	}
	be.WindowMetric(q, pc.pool, engine.WindowSpec{Seqs: seqs, Tables: tables, Pos: pos, NSeqs: 2,
		Squared: squared, Pool7: pool7}, qHeads, kvHeads, 0.5)
	want := make([]float64, len(before))
	for i := range before {
		want[i] = float64(before[i])
	}
	for s, n := range lens {
		for kh := 0; kh < kvHeads; kh++ {
			dh := &pc.heads[s][kh]
			for h := kh * r; h < (kh+1)*r; h++ {
				// A[w][j]: probabilities of each window row.
				sh := make([]float64, n)
				for w := 0; w < win[s]; w++ {
					row := firstRow[s] + n - win[s] + w
					o := (row*qHeads + h) * d
					_, p := denseAttend(q.F32()[o:o+d], dh, int32(n-win[s]+w), 0.5)
					for j := range p {
						if squared {
							sh[j] += p[j] * p[j]
						} else {
							sh[j] += p[j]
						}
					}
				}
				for j := 0; j < n; j++ {
					v := sh[j]
					for k := j - 3; pool7 && k <= j+3; k++ {
						if k >= 0 && k < n && sh[k] > v {
							v = sh[k]
						}
					}
					want[int(dh.table[j/bs])*bs+j%bs] += v
				}
			}
		}
	}
	for i, w := range want {
		if !close32(pc.pool.Metric[i], w, 1e-6) {
			t.Fatalf("b%d r%d pool %v squared %v: metric of slot %d: got %v want %v",
				bs, r, pool7, squared, i, pc.pool.Metric[i], w)
		}
	}
}

func TestCopyMovesAndReadSlots(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		const bs, d = 4, 6
		pc := newPagedCase(t, rng, [][]int{{13, 9}}, bs, d, typ, false)
		p := pc.pool
		for i := range p.Metric {
			p.Metric[i] = rng.Float32()
		}
		type slotState struct {
			k, v   []float32
			m      float32
			pos    int32
			exists bool
		}
		snap := func() []slotState {
			s := make([]slotState, p.Slots())
			for i := range s {
				s[i] = slotState{p.K(i), p.V(i), p.Metric[i], p.Pos[i], true}
			}
			return s
		}
		old := snap()
		// Move head 0's last three slots into holes 0, 2, 5 (no destination is a source).
		tab := pc.heads[0][0].table
		slot := func(i int) int32 { return tab[i/bs]*bs + int32(i%bs) }
		moves := [][2]int32{{slot(12), slot(0)}, {slot(11), slot(2)}, {slot(10), slot(5)}}
		mb := buf(t, pc.be, 2*len(moves))
		for i, m := range moves {
			mb.I32()[2*i], mb.I32()[2*i+1] = m[0], m[1]
		}
		pc.be.CopyMoves(p, mb, len(moves))
		now := snap()
		moved := map[int32]int32{}
		for _, m := range moves {
			moved[m[1]] = m[0]
		}
		for i := range now {
			src := int32(i)
			if s, ok := moved[int32(i)]; ok {
				src = s
			}
			o, n := old[src], now[i]
			if fmt.Sprint(o.k, o.v, o.m, o.pos) != fmt.Sprint(n.k, n.v, n.m, n.pos) {
				t.Fatalf("slot %d after moves: %v, want the state of slot %d: %v", i, n, src, o)
			}
		}
		blocks := []int32{tab[2], tab[0]}
		m, ps := make([]float32, 2*bs), make([]int32, 2*bs)
		if err := pc.be.ReadSlots(p, blocks, m, ps, nil); err != nil {
			t.Fatal(err)
		}
		for i, blk := range blocks {
			for j := 0; j < bs; j++ {
				s := int(blk)*bs + j
				if m[i*bs+j] != p.Metric[s] || ps[i*bs+j] != p.Pos[s] {
					t.Fatalf("ReadSlots block %d slot %d: got (%v, %d) want (%v, %d)", blk, j, m[i*bs+j],
						ps[i*bs+j], p.Metric[s], p.Pos[s])
				}
			}
		}
		// With value norms: the same metric and positions, and each slot's sum |v_e| of its stored V row.
		m2, ps2, vn := make([]float32, 2*bs), make([]int32, 2*bs), make([]float32, 2*bs)
		if err := pc.be.ReadSlots(p, blocks, m2, ps2, vn); err != nil {
			t.Fatal(err)
		}
		for i, blk := range blocks {
			for j := 0; j < bs; j++ {
				s := int(blk)*bs + j
				var want float32
				for _, x := range p.V(s) {
					if x < 0 {
						x = -x
					}
					want += x
				}
				if k := i*bs + j; m2[k] != m[k] || ps2[k] != ps[k] || vn[k] != want || want == 0 {
					t.Fatalf("ReadSlots with norms, block %d slot %d: got (%v, %d, %v) want (%v, %d, %v)", blk, j, m2[k],
						ps2[k], vn[k], m[k], ps[k], want)
				}
			}
		}
		if err := pc.be.ReadSlots(p, blocks, m, ps, vn[:3]); err == nil {
			t.Fatal("ReadSlots accepted a short value norm slice")
		}
		if err := pc.be.ReadSlots(p, []int32{int32(p.Blocks())}, m, ps, nil); err == nil {
			t.Fatal("ReadSlots accepted a block id past the pool")
		}
		if err := pc.be.ReadSlots(p, blocks, m[:3], ps, nil); err == nil {
			t.Fatal("ReadSlots accepted a short metric slice")
		}
	}
}

func TestNewKVPoolInitAndErrors(t *testing.T) {
	be := &Backend{}
	pl, err := be.NewKVPool(3, 4, 8, engine.KVF16)
	if err != nil {
		t.Fatal(err)
	}
	p := pl.(*KVPool)
	for i := range p.Pos {
		if p.Pos[i] != -1 || p.Metric[i] != 0 {
			t.Fatalf("slot %d starts at (%v, %d), want (0, -1)", i, p.Metric[i], p.Pos[i])
		}
	}
	if got, want := p.BlockBytes(), int64(4*(2*8*2+8)); got != want {
		t.Fatalf("BlockBytes %d, want %d", got, want)
	}
	for _, bad := range [][3]int{{0, 4, 8}, {3, 0, 8}, {3, 4, 0}} {
		if _, err := be.NewKVPool(bad[0], bad[1], bad[2], engine.KVF32); err == nil {
			t.Fatalf("NewKVPool%v accepted", bad)
		}
	}
}
