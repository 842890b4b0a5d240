package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/vk"
	"kvc/model"
)

// kvHarness runs every KV op on the CPU reference and on the device with the same inputs.
type kvHarness struct {
	t     testing.TB
	g     *Backend
	c     *cpu.Backend
	gp    *KVPool
	cp    *cpu.KVPool
	rng   *rand.Rand
	bs    int
	hd    int
	typ   engine.KVType
	heads []kvHead // every (sequence, KV head) written so far
	below int      // when > 0, heads get only blocks below it
}

// kvHead is one head's cache: its block table, context length and table offset in the shared Tables.
type kvHead struct {
	table []int32
	ctx   int
}

type twin struct {
	c *cpu.Buf
	g engine.Buf
	n int // 4-byte words
}

const kvPoison = 0x7fc00000 // quiet NaN

func newKVHarness(t testing.TB, g *Backend, seed int64, blocks, bs, hd int, typ engine.KVType, arenaBytes int64) *kvHarness {
	t.Helper()
	h := &kvHarness{t: t, g: g, c: &cpu.Backend{Threads: 2}, rng: rand.New(rand.NewSource(seed)), bs: bs, hd: hd, typ: typ}
	var err error
	if h.gp, err = g.NewKVPoolArenas(blocks, bs, hd, typ, arenaBytes); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.gp.Release)
	// The pool starts undefined; the harness compares whole pools, so it sets them as the CPU pool starts.
	for _, buf := range append(append(append([]*Buffer(nil), h.gp.k...), h.gp.v...), h.gp.met...) {
		g.Fill(Whole(buf), 0)
	}
	for _, buf := range h.gp.pos {
		g.Fill(Whole(buf), 0xffffffff)
	}
	cp, err := h.c.NewKVPool(blocks, bs, hd, typ)
	if err != nil {
		t.Fatal(err)
	}
	h.cp = cp.(*cpu.KVPool)
	return h
}

func (h *kvHarness) buf(words []uint32) twin {
	h.t.Helper()
	cb, err := h.c.Alloc(int64(4 * max(len(words), 1)))
	if err != nil {
		h.t.Fatal(err)
	}
	gb, err := h.g.Alloc(int64(4 * max(len(words), 1)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { h.g.Free(gb) })
	raw := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(raw[4*i:], w)
	}
	if err := h.c.Write(cb, 0, raw); err != nil {
		h.t.Fatal(err)
	}
	if err := h.g.Write(gb, 0, raw); err != nil {
		h.t.Fatal(err)
	}
	return twin{c: cb.(*cpu.Buf), g: gb, n: len(words)}
}

func (h *kvHarness) f32(x []float32) twin {
	w := make([]uint32, len(x))
	for i, v := range x {
		w[i] = math.Float32bits(v)
	}
	return h.buf(w)
}

func (h *kvHarness) i32(x []int32) twin {
	w := make([]uint32, len(x))
	for i, v := range x {
		w[i] = uint32(v)
	}
	return h.buf(w)
}

// out is a poisoned output buffer.
func (h *kvHarness) out(n int) twin {
	w := make([]uint32, n)
	for i := range w {
		w[i] = kvPoison
	}
	return h.buf(w)
}

func (h *kvHarness) randn(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(h.rng.NormFloat64())
	}
	return x
}

func (h *kvHarness) readF32(b engine.Buf, n int) []float32 {
	h.t.Helper()
	raw := make([]byte, 4*n)
	if err := h.g.Read(b, 0, raw); err != nil {
		h.t.Fatal(err)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// addHeads allocates blocks for heads with the given context lengths from shuffled free block ids and writes
// random K/V with positions (a random permutation of 0..ctx-1 when shuffle, else in order) through KVWrite
// on both backends. It returns the new heads.
func (h *kvHarness) addHeads(ctxs []int, shuffle bool) []kvHead {
	h.t.Helper()
	var perm []int
	return h.addHeadsAt(ctxs, func(head, i int) int32 {
		if i == 0 {
			perm = h.rng.Perm(ctxs[head])
		}
		if !shuffle {
			return int32(i)
		}
		return int32(perm[i])
	})
}

// splitPartitions sets how attention splits a head's slots: split 0 not at all, 1 into partitions of at least
// partMin slots combined in the workgroup, 2 the same combined by attention_reduce.
func (h *kvHarness) splitPartitions(split, partMin int) {
	h.gp.SplitMax, h.gp.PartMin, h.gp.FillGroups = 3, partMin, 1+999*(split/2)
	if split == 0 {
		h.gp.SplitMax = 1
	}
}

// addDecodeRows adds n decode rows, each its own sequence at position 1000 over two heads of 3..32 slots at
// shuffled positions.
func (h *kvHarness) addDecodeRows(n int) (rowHeads [][]kvHead, qpos []int32) {
	h.t.Helper()
	for range n {
		rowHeads = append(rowHeads, h.addHeads([]int{3 + h.rng.Intn(30), 3 + h.rng.Intn(30)}, true))
		qpos = append(qpos, 1000)
	}
	return rowHeads, qpos
}

// addHeadsAt is addHeads with slot i of head number head (of ctxs) at position at(head, i), called in
// order of heads and slots.
func (h *kvHarness) addHeadsAt(ctxs []int, at func(head, i int) int32) []kvHead {
	h.t.Helper()
	used := map[int32]bool{}
	for _, hd := range h.heads {
		for _, b := range hd.table {
			used[b] = true
		}
	}
	var free []int32
	for _, b := range h.rng.Perm(h.gp.Blocks()) {
		if !used[int32(b)] && (h.below == 0 || b < h.below) {
			free = append(free, int32(b))
		}
	}
	var slots, pos []int32
	var added []kvHead
	for head, c := range ctxs {
		nb := (c + h.bs - 1) / h.bs
		if nb > len(free) {
			h.t.Fatalf("test pool too small: need %d more blocks", nb)
		}
		hd := kvHead{table: free[:nb], ctx: c}
		free = free[nb:]
		for i := 0; i < c; i++ {
			slots = append(slots, hd.table[i/h.bs]*int32(h.bs)+int32(i%h.bs))
			pos = append(pos, at(head, i))
		}
		added = append(added, hd)
	}
	h.heads = append(h.heads, added...)
	n := len(slots)
	k, v := h.f32(h.randn(n*h.hd)), h.f32(h.randn(n*h.hd))
	s, p := h.i32(slots), h.i32(pos)
	h.c.KVWrite(h.cp, k.c, v.c, s.c, p.c, n, 1)
	h.g.KVWrite(h.gp, k.g, v.g, s.g, p.g, n, 1)
	return added
}

// checkPool compares every slot of the two pools: K, V (bit-exact for f32, within one f16 rounding step
// for f16), metric (within tol), position (exact) and ReadSlots' V row norms (within f32 rounding).
func (h *kvHarness) checkPool(what string, metricTol float64) {
	h.t.Helper()
	gp := h.gp
	all := make([]int32, gp.Blocks())
	for i := range all {
		all[i] = int32(i)
	}
	n := gp.Blocks() * h.bs
	gm, gpos, gn := make([]float32, n), make([]int32, n), make([]float32, n)
	for _, buf := range []*Buffer{gp.rsMetric, gp.rsPos, gp.rsNorm} { // poison ReadSlots' gather outputs
		if buf != nil {
			h.g.Fill(Whole(buf), kvPoison)
		}
	}
	if err := h.g.ReadSlots(gp, all, gm, gpos, nil); err != nil {
		h.t.Fatal(err)
	}
	// The norms in a second read: one without them must not need them.
	gm2, gpos2, cm, cpos, cn := make([]float32, n), make([]int32, n), make([]float32, n), make([]int32, n), make([]float32, n)
	if err := h.g.ReadSlots(gp, all, gm2, gpos2, gn); err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.ReadSlots(h.cp, all, cm, cpos, cn); err != nil {
		h.t.Fatal(err)
	}
	for s := 0; s < n; s++ {
		if gm2[s] != gm[s] || gpos2[s] != gpos[s] {
			h.t.Fatalf("%s: slot %d: metric/position %v/%d with the norms, %v/%d without", what, s, gm2[s], gpos2[s], gm[s], gpos[s])
		}
		// f32 sums of the same terms in the same order; f16 rows may differ by one rounding per element
		tol := 1e-6
		if h.typ == engine.KVF16 {
			tol = 1e-3
		}
		if !near(gn[s], float64(cn[s]), tol) {
			h.t.Fatalf("%s: slot %d V norm %v, CPU %v", what, s, gn[s], cn[s])
		}
	}
	gk, gv := h.readArenas(gp.k), h.readArenas(gp.v)
	for s := 0; s < n; s++ {
		if gpos[s] != h.cp.Pos[s] {
			h.t.Fatalf("%s: slot %d position %d, CPU %d", what, s, gpos[s], h.cp.Pos[s])
		}
		if !near(gm[s], float64(h.cp.Metric[s]), metricTol) {
			h.t.Fatalf("%s: slot %d metric %v, CPU %v", what, s, gm[s], h.cp.Metric[s])
		}
		ck, cv := h.cp.K(s), h.cp.V(s)
		for e := 0; e < h.hd; e++ {
			tol := 0.0
			if h.typ == engine.KVF16 { // the device may round half-way cases differently
				tol = 1e-3
			}
			if !near(gk[s*h.hd+e], float64(ck[e]), tol) || !near(gv[s*h.hd+e], float64(cv[e]), tol) {
				h.t.Fatalf("%s: slot %d elem %d: K/V %v/%v, CPU %v/%v", what, s, e, gk[s*h.hd+e], gv[s*h.hd+e], ck[e], cv[e])
			}
		}
	}
}

// readArenas reads K or V of the whole pool as f32, slot after slot.
func (h *kvHarness) readArenas(arenas []*Buffer) []float32 {
	var out []float32
	for _, a := range arenas {
		raw := make([]byte, a.Size())
		if err := h.g.Read(a, 0, raw); err != nil {
			h.t.Fatal(err)
		}
		if h.typ == engine.KVF16 {
			for i := 0; i+1 < len(raw); i += 2 {
				out = append(out, model.F16ToF32(binary.LittleEndian.Uint16(raw[i:])))
			}
		} else {
			for i := 0; i+3 < len(raw); i += 4 {
				out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(raw[i:])))
			}
		}
	}
	return out
}

func near(got float32, want, tol float64) bool {
	if math.IsNaN(float64(got)) {
		return false
	}
	return math.Abs(float64(got)-want) <= tol*(1+math.Abs(want))
}

// attnInputs builds AttnHeads for rows whose (row, KV head) caches are rowHeads[row][kvHead].
func (h *kvHarness) attnInputs(rowHeads [][]kvHead, qpos []int32) (heads, tables, pos twin) {
	// Consecutive rows with the same head share its table entries, as the engine lays out a prefill chunk.
	var tab, hs []int32
	for i, row := range rowHeads {
		for j, hd := range row {
			if i > 0 && j < len(rowHeads[i-1]) && sameHead(rowHeads[i-1][j], hd) {
				hs = append(hs, hs[len(hs)-2*len(row)], int32(hd.ctx))
				continue
			}
			hs = append(hs, int32(len(tab)), int32(hd.ctx))
			tab = append(tab, hd.table...)
		}
	}
	return h.i32(hs), h.i32(tab), h.i32(qpos)
}

func sameHead(a, b kvHead) bool {
	return a.ctx == b.ctx && len(a.table) == len(b.table) && (len(a.table) == 0 || &a.table[0] == &b.table[0])
}

// runAttention runs Attention on both backends and returns the device output and the CPU output.
func (h *kvHarness) runAttention(q twin, rowHeads [][]kvHead, qpos []int32, qHeads, kvHeads int,
	mode engine.MetricMode) (gpu, ref []float32) {
	h.t.Helper()
	heads, tables, pos := h.attnInputs(rowHeads, qpos)
	rows := len(rowHeads)
	o := h.out(rows * qHeads * h.hd)
	scale := float32(1 / math.Sqrt(float64(h.hd)))
	// The plain metric runs with a metric buffer: the slots nearest each row add nothing.
	mb := map[engine.MetricMode]int{engine.MetricPlain: 3}[mode]
	h.c.Attention(o.c, q.c, h.cp, engine.AttnHeads{Heads: heads.c, Tables: tables.c, Pos: pos.c, Rows: rows, MetricBuffer: mb}, qHeads, kvHeads, scale, mode)
	h.g.Attention(o.g, q.g, h.gp, engine.AttnHeads{Heads: heads.g, Tables: tables.g, Pos: pos.g, Rows: rows, MetricBuffer: mb}, qHeads, kvHeads, scale, mode)
	return h.readF32(o.g, o.n), o.c.F32()
}

func compareOut(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		if !near(got[i], float64(want[i]), tol) {
			t.Fatalf("%s: element %d: device %v, CPU %v", what, i, got[i], want[i])
		}
	}
}

// TestKVAttentionDecodeMatchesCPU: many sequences of different per-head lengths in one decode call (one
// row per sequence, compacted caches with permuted positions, some slots hidden by position), f32 and f16
// pools spread over several arenas, every metric mode, with and without split-K.
func TestKVAttentionDecodeMatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	// hd 12: 16 blocks per K/V arena, 7 arenas. hd 2: metric and position split into 2 arenas too (the
	// scratch of a metric mode would then need more than the shaders bind, so only MetricNone).
	for _, hd := range []int{12, 2} {
		for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
			// split 0: none; 1: partitions combined by the workgroup that computed them; 2: by attention_reduce.
			for _, split := range []int{0, 1, 2} {
				for _, mode := range []engine.MetricMode{engine.MetricNone, engine.MetricSquared, engine.MetricPlain} {
					if hd == 2 && mode != engine.MetricNone {
						continue
					}
					name := fmt.Sprintf("hd%d/type%d/split%d/metric%d", hd, typ, split, mode)
					t.Run(name, func(t *testing.T) {
						attnVariants(t, g, func(t *testing.T) { checkDecode(t, g, hd, typ, split, mode) })
					})
				}
			}
		}
	}
}

func checkDecode(t *testing.T, g *Backend, hd int, typ engine.KVType, split int, mode engine.MetricMode) {
	const bs, kvHeads, r, seqs, blocks = 4, 2, 3, 5, 100
	arena := int64(16 * bs * hd * 4)
	if hd == 2 {
		arena = 1000
	}
	h := newKVHarness(t, g, int64(hd*100)+int64(typ)*10+int64(mode), blocks, bs, hd, typ, arena)
	if h.gp.Arenas() < 2 || (hd == 2 && len(h.gp.met) < 2) {
		t.Fatalf("pool has %d K/V and %d metric arenas, the test wants several", h.gp.Arenas(), len(h.gp.met))
	}
	h.splitPartitions(split, 5)
	rowHeads := make([][]kvHead, seqs)
	qpos := make([]int32, seqs)
	for s := range rowHeads {
		ctx := []int{1 + h.rng.Intn(30), 1 + h.rng.Intn(30)}
		if s == 0 {
			ctx[0] = 0 // an empty head: zero output
		}
		rowHeads[s] = h.addHeads(ctx, true)
		qpos[s] = int32(h.rng.Intn(40)) // hides some slots of the longer heads
	}
	// Random metrics first, so that the op must add.
	h.randomMetrics()
	q := h.f32(h.randn(seqs * kvHeads * r * hd))
	got, want := h.runAttention(q, rowHeads, qpos, kvHeads*r, kvHeads, mode)
	compareOut(t, "output", got, want, 2e-4)
	h.checkPool("after attention", 2e-4)
}

// TestKVBoundArenas: after SetBound(40) on a pool of 7 K/V arenas of 16 blocks (f32; f16: 4 of 32), the
// KV kernels are compiled for the 3 (2) arenas that hold blocks 0-39 and give the CPU's results (decode attention with and
// without a metric, KVWrite) for caches spread over those three; a write to a block past the bound is
// dropped.
func TestKVBoundArenas(t *testing.T) {
	g := OpenForTest(t)
	const bs, hd, kvHeads, r, seqs, blocks, bound = 4, 12, 2, 3, 5, 100, 40
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, mode := range []engine.MetricMode{engine.MetricNone, engine.MetricSquared} {
			t.Run(fmt.Sprintf("type%d/metric%d", typ, mode), func(t *testing.T) {
				// 16 f32 or 32 f16 blocks per arena: 7 or 4 arenas, of which 3 or 2 hold blocks 0-39.
				h := newKVHarness(t, g, 1300+int64(typ)*10+int64(mode), blocks, bs, hd, typ, 16*bs*hd*4)
				arenas, inUse := 7, 3
				if typ == engine.KVF16 {
					arenas, inUse = 4, 2
				}
				if h.gp.Arenas() != arenas {
					t.Fatalf("pool has %d K/V arenas, the test wants %d", h.gp.Arenas(), arenas)
				}
				h.below = bound
				h.gp.SetBound(bound)
				if n := h.gp.ArenasInUse(); n != inUse {
					t.Fatalf("bound %d: kernels for %d arenas, want %d", bound, n, inUse)
				}
				rowHeads := make([][]kvHead, seqs)
				qpos := make([]int32, seqs)
				for s := range rowHeads {
					rowHeads[s] = h.addHeads([]int{1 + h.rng.Intn(12), 1 + h.rng.Intn(12)}, true) // <= 30 blocks in all
					qpos[s] = int32(h.rng.Intn(16))
				}
				h.randomMetrics()
				q := h.f32(h.randn(seqs * kvHeads * r * hd))
				got, want := h.runAttention(q, rowHeads, qpos, kvHeads*r, kvHeads, mode)
				compareOut(t, "output", got, want, 2e-4)
				// A slot past the bound is outside the pool for the kernels: the device drops the write.
				k, v := h.f32(h.randn(hd)), h.f32(h.randn(hd))
				s, p := h.i32([]int32{int32(bound * bs)}), h.i32([]int32{7})
				h.g.KVWrite(h.gp, k.g, v.g, s.g, p.g, 1, 1)
				h.gp.SetBound(0) // the whole pool again, for the comparison
				h.checkPool("after attention", 2e-4)
				var specs []uint32
				for key := range g.kernels {
					if strings.HasPrefix(key.name, "attention") && key.nspec > 0 {
						specs = append(specs, key.spec[0])
					}
				}
				if !slices.Contains(specs, uint32(inUse)) {
					t.Fatalf("no attention kernel was compiled for %d arenas (arena counts compiled: %v)", inUse, specs)
				}
			})
		}
	}
}

// attnVariants runs f once per attention kernel: attention.comp (GPU workgroups forced, tiling off),
// attention_tiled.comp for every row without a metric (GPU workgroups forced, runs of one row tiled) and,
// on a CPU device with subgroup arithmetic, attention_rows.comp in its lane layout (wide heads in several
// output windows) and in its tile layout, for every head width. On a GPU the last two are attention.comp
// again (with tiling at its default).
func attnVariants(t *testing.T, g *Backend, f func(t *testing.T)) {
	for _, v := range []string{"workgroup", "tiled", "lanes", "tiles"} {
		t.Run(v, func(t *testing.T) {
			defer func(force bool, layout, tmin int) {
				forceGPUWorkgroups, attnRowsLayout, attnTiledMin = force, layout, tmin
			}(forceGPUWorkgroups, attnRowsLayout, attnTiledMin)
			forceGPUWorkgroups = v == "workgroup" || v == "tiled"
			attnRowsLayout = map[string]int{"workgroup": rowsAuto, "tiled": rowsAuto, "lanes": rowsLanes, "tiles": rowsTiles}[v]
			attnTiledMin = map[string]int{"workgroup": -1, "tiled": 1}[v]
			f(t)
		})
	}
}

// TestAttentionRowsChosen: a CPU device with subgroup arithmetic runs attention_rows.comp, in lane layout
// for small heads (stories260K's: f16, head dim 8, 2 query heads per KV head) and in tile layout for wide
// ones (f16, head dim 128, 4 query heads); a GPU never does, and forcing GPU workgroups turns it off.
func TestAttentionRowsChosen(t *testing.T) {
	g := OpenForTest(t)
	p, err := g.NewKVPoolArenas(4, 4, 8, engine.KVF16, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	c := g.Caps()
	rowsDevice := g.info.Type == vk.TypeCPU && c.SubgroupCompute &&
		c.SubgroupOps&(vk.SubgroupBasic|vk.SubgroupArithmetic) == vk.SubgroupBasic|vk.SubgroupArithmetic
	got := g.attentionRows(p, 2)
	if (got != nil) != rowsDevice {
		t.Fatalf("attentionRows on %s (type %v, subgroup ops %#x): %v, want rows %v", g.info.Name, g.info.Type, c.SubgroupOps, got, rowsDevice)
	}
	if got != nil && *got != [4]uint32{c.SubgroupSize, 2, 1, 0} {
		t.Fatalf("attentionRows spec %v, want [%d 2 1 0]", *got, c.SubgroupSize)
	}
	wide, err := g.NewKVPoolArenas(4, 4, 128, engine.KVF16, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wide.Release)
	if got := g.attentionRows(wide, 4); rowsDevice && c.SubgroupSize <= 16 {
		kc := (16 + c.SubgroupSize - 1) / c.SubgroupSize
		if got == nil || *got != [4]uint32{c.SubgroupSize, 4, kc, 1} {
			t.Fatalf("attentionRows for head dim 128: %v, want [%d 4 %d 1]", got, c.SubgroupSize, kc)
		}
	}
	if err := g.Sync(); err != nil { // the pools' fills (Close fails with work still recording)
		t.Fatal(err)
	}
	defer func(v bool) { forceGPUWorkgroups = v }(forceGPUWorkgroups)
	forceGPUWorkgroups = true
	if g.attentionRows(p, 2) != nil {
		t.Fatal("attentionRows with GPU workgroups forced")
	}
}

// randomMetrics sets every slot's metric to the same random value on both pools (through CopyMoves-free
// means: a KVWrite would clear it, so write the device buffers and the CPU slice directly).
func (h *kvHarness) randomMetrics() {
	h.t.Helper()
	n := h.gp.Blocks() * h.bs
	per := h.gp.mBlocks * h.bs
	for a, buf := range h.gp.met {
		cnt := min(per, n-a*per)
		raw := make([]byte, 4*cnt)
		for i := 0; i < cnt; i++ {
			v := h.rng.Float32()
			h.cp.Metric[a*per+i] = v
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		if err := h.g.Write(buf, 0, raw); err != nil {
			h.t.Fatal(err)
		}
	}
}

// TestKVAttentionPrefillChunk: a chunk of query rows of one sequence (causal through positions), with and
// without split-K.
func TestKVAttentionPrefillChunk(t *testing.T) {
	g := OpenForTest(t)
	attnVariants(t, g, func(t *testing.T) {
		for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
			for _, split := range []bool{false, true} {
				const bs, hd, kvHeads, r, n = 16, 8, 2, 2, 150 // more than one 128-slot tile
				h := newKVHarness(t, g, 7, 24, bs, hd, typ, 1<<20)
				if split {
					h.gp.SplitMax, h.gp.PartMin = 4, 7
				} else {
					h.gp.SplitMax = 1
				}
				heads := h.addHeads([]int{n, n}, false)
				rowHeads := make([][]kvHead, n)
				qpos := make([]int32, n)
				for i := range rowHeads {
					rowHeads[i], qpos[i] = heads, int32(i)
				}
				q := h.f32(h.randn(n * kvHeads * r * hd))
				got, want := h.runAttention(q, rowHeads, qpos, kvHeads*r, kvHeads, engine.MetricNone)
				compareOut(t, fmt.Sprintf("type %d split %v", typ, split), got, want, 2e-4)
			}
		}
	})
}

// TestKVAttentionPrefillBatch: several sequences' prefill chunks in one call behind decode rows (the metric
// on the decode rows only), each chunk's rows sharing their heads' table entries as the engine lays them
// out, chunks of 13, 1, 21 and 6 rows, causal masks through positions, with and without
// split-K (combined in the workgroup or by attention_reduce). Prefill rows must match the CPU and give the
// same bits whatever else is in the call (a kernel that tiles rows sharing a table must keep this).
func TestKVAttentionPrefillBatch(t *testing.T) {
	g := OpenForTest(t)
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, split := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("type%d/split%d", typ, split), func(t *testing.T) {
				attnVariants(t, g, func(t *testing.T) { checkPrefillBatch(t, g, typ, split) })
			})
		}
	}
}

func checkPrefillBatch(t *testing.T, g *Backend, typ engine.KVType, split int) {
	const bs, hd, kvHeads, r, decode = 4, 8, 2, 2, 3
	chunks := []int{13, 1, 21, 6} // rows per prefill chunk
	h := newKVHarness(t, g, 31+int64(split), 120, bs, hd, typ, 1<<20)
	h.splitPartitions(split, 9)
	rowHeads, qpos := h.addDecodeRows(decode)
	var starts []int
	for _, n := range chunks {
		// The chunk's rows are the last n positions of a context of prev + n slots (causal within it).
		prev := h.rng.Intn(20)
		heads := h.addHeads([]int{prev + n, prev + n}, false)
		starts = append(starts, len(rowHeads))
		for i := 0; i < n; i++ {
			rowHeads = append(rowHeads, heads)
			qpos = append(qpos, int32(prev+i))
		}
	}
	h.randomMetrics()
	qh := kvHeads * r
	qv := h.randn(len(rowHeads) * qh * hd)
	heads, tables, pos := h.attnInputs(rowHeads, qpos)
	rows := len(rowHeads)
	o := h.out(rows * qh * hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	q := h.f32(qv)
	h.c.Attention(o.c, q.c, h.cp, engine.AttnHeads{Heads: heads.c, Tables: tables.c, Pos: pos.c, Rows: rows, MetricRows: decode}, qh, kvHeads, scale, engine.MetricSquared)
	h.g.Attention(o.g, q.g, h.gp, engine.AttnHeads{Heads: heads.g, Tables: tables.g, Pos: pos.g, Rows: rows, MetricRows: decode}, qh, kvHeads, scale, engine.MetricSquared)
	batch := h.readF32(o.g, o.n)
	compareOut(t, "output", batch, o.c.F32(), 2e-4)
	h.checkPool("after attention", 2e-4)
	// Each chunk alone gives the same bits as in the batch.
	for c, n := range chunks {
		lo := starts[c]
		alone, want := h.runAttention(h.f32(qv[lo*qh*hd:(lo+n)*qh*hd]), rowHeads[lo:lo+n], qpos[lo:lo+n], qh, kvHeads, engine.MetricNone)
		compareOut(t, fmt.Sprintf("chunk %d alone", c), alone, want, 2e-4)
		for i, x := range alone {
			if math.Float32bits(x) != math.Float32bits(batch[lo*qh*hd+i]) {
				t.Fatalf("chunk %d element %d: alone %v, in the batch %v", c, i, x, batch[lo*qh*hd+i])
			}
		}
	}
}

// TestKVAttentionLargeGroup: more query heads per KV head than one pass of the shader handles (MAX_R),
// and contexts of several tiles.
func TestKVAttentionLargeGroup(t *testing.T) {
	g := OpenForTest(t)
	attnVariants(t, g, func(t *testing.T) {
		const bs, hd, kvHeads, r = 8, 16, 1, 9
		h := newKVHarness(t, g, 9, 40, bs, hd, engine.KVF32, 1<<20)
		rowHeads := [][]kvHead{h.addHeads([]int{300}, true)}
		for _, partMin := range []int{1000, 70} { // ctx 300: 3 tiles in one partition, or 5 partitions
			h.gp.PartMin = partMin
			q := h.f32(h.randn(kvHeads * r * hd))
			got, want := h.runAttention(q, rowHeads, []int32{1000}, kvHeads*r, kvHeads, engine.MetricSquared)
			compareOut(t, fmt.Sprintf("PartMin %d: output", partMin), got, want, 2e-4)
			h.checkPool(fmt.Sprintf("PartMin %d: metric", partMin), 2e-4)
		}
	})
}

// TestKVAttentionWideHead: a head dim above the workgroup size (two dims per thread).
func TestKVAttentionWideHead(t *testing.T) {
	g := OpenForTest(t)
	attnVariants(t, g, func(t *testing.T) {
		const bs, hd, kvHeads, r = 16, 160, 2, 2
		h := newKVHarness(t, g, 21, 8, bs, hd, engine.KVF16, 1<<20)
		rowHeads := [][]kvHead{h.addHeads([]int{40, 29}, true)}
		for _, split := range []int{0, 1, 2} { // none; combined in the workgroup; by attention_reduce
			h.splitPartitions(split, 16)
			q := h.f32(h.randn(kvHeads * r * hd))
			got, want := h.runAttention(q, rowHeads, []int32{35}, kvHeads*r, kvHeads, engine.MetricSquared)
			compareOut(t, fmt.Sprintf("split %d: output", split), got, want, 2e-4)
			h.checkPool(fmt.Sprintf("split %d: metric", split), 2e-4)
		}
	})
}

// TestKVAttentionBatchInvariant: a decode row's output is bit-identical alone and in a batch, for rows
// that split and rows that do not.
func TestKVAttentionBatchInvariant(t *testing.T) {
	g := OpenForTest(t)
	attnVariants(t, g, func(t *testing.T) {
		const bs, hd, kvHeads, r, seqs = 4, 16, 2, 2, 6
		h := newKVHarness(t, g, 11, 200, bs, hd, engine.KVF16, 1<<20)
		// A batch of 6 rows x 2 KV heads loops over partitions in one workgroup each (FillGroups 4); a row
		// alone gives each partition a workgroup. Both must give the same bits.
		h.gp.SplitMax, h.gp.PartMin, h.gp.FillGroups = 4, 32, 4
		rowHeads := make([][]kvHead, seqs)
		qpos := make([]int32, seqs)
		for s := range rowHeads {
			rowHeads[s] = h.addHeads([]int{5 + h.rng.Intn(120), 5 + h.rng.Intn(120)}, true)
			qpos[s] = 1000
		}
		qh := kvHeads * r
		qv := h.randn(seqs * qh * hd)
		batch, _ := h.runAttention(h.f32(qv), rowHeads, qpos, qh, kvHeads, engine.MetricNone)
		for s := 0; s < seqs; s++ {
			alone, _ := h.runAttention(h.f32(qv[s*qh*hd:(s+1)*qh*hd]), rowHeads[s:s+1], qpos[s:s+1], qh, kvHeads, engine.MetricNone)
			for i, x := range alone {
				if math.Float32bits(x) != math.Float32bits(batch[s*qh*hd+i]) {
					t.Fatalf("row %d element %d: alone %v, in the batch %v", s, i, x, batch[s*qh*hd+i])
				}
			}
		}
	})
}

// TestKVWindowMetricMatchesCPU: the prefill observation-window metric, with and without pool, squared and
// plain, f32 and f16, two sequences of different lengths; window_metric.comp's workgroups (forced), also
// split into parts of the context (window_metric_split): 2 parts, 7 (uneven), 24 (more than the short
// sequence's 21 slots; for the long one 22 parts of at most 7 slots and 2 empty ones), 8 parts of at least
// 16 slots (the short sequence takes 2), and the host's rule with a GPU's FillGroups (64 parts of at least
// 16 slots: 10 and 2 in use); and, on a CPU device with subgroup arithmetic, window_metric_lanes.
func TestKVWindowMetricMatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	for _, force := range []bool{true, false} {
		t.Run(fmt.Sprintf("workgroups=%v", force), func(t *testing.T) {
			defer func(v bool) { forceGPUWorkgroups = v }(forceGPUWorkgroups)
			forceGPUWorkgroups = force
			if !force && g.info.Type == vk.TypeCPU && g.cpuLanes() == 0 {
				t.Fatal("a CPU device without the lane kernel: the test would run window_metric.comp twice")
			}
			// {parts asked (0: the host's rule), fewest slots per part, FillGroups (0: the pool's), parts made}
			splits := [][4]int{{0, 1, 0, 1}}
			if force {
				splits = append(splits, [4]int{2, 1, 0, 2}, [4]int{7, 1, 0, 7}, [4]int{24, 1, 0, 24}, [4]int{8, 16, 0, 8},
					[4]int{0, 16, kvFillGroups, 64})
			}
			for _, sp := range splits {
				t.Run(fmt.Sprintf("parts=%d,min=%d,fill=%d", sp[0], sp[1], sp[2]), func(t *testing.T) {
					defer func(v int) { windowChunks = v }(windowChunks)
					windowChunks = sp[0]
					testWindowMetric(t, g, sp[1], sp[2], sp[3])
				})
			}
		})
	}
}

func testWindowMetric(t *testing.T, g *Backend, partMin, fill, parts int) {
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, pool7 := range []bool{false, true} {
			for _, squared := range []bool{false, true} {
				const bs, kvHeads = 4, 2
				r, hd := 2, 8
				if !pool7 && !squared {
					hd = 6 // not a multiple of the 16-byte chunk: element loads
				}
				if pool7 && squared { // group sizes below, at and above one shader pass (4 heads)
					r = map[engine.KVType]int{engine.KVF32: 5, engine.KVF16: 1}[typ]
				}
				h := newKVHarness(t, g, 13, 90, bs, hd, typ, 3600) // 4-8 K/V arenas, scratch within 2
				h.gp.WindowPartMin = partMin
				if fill > 0 {
					h.gp.FillGroups = fill
				}
				lens, win := []int{150, 21}, []int{8, 5} // 150: more slots than the workgroup
				qh := kvHeads * r
				var seqs []int32
				var tab, pos []int32
				row := 0
				for s, n := range lens {
					hs := h.addHeads([]int{n, n}, false)
					for _, hd := range hs {
						seqs = append(seqs, int32(len(tab)), int32(n), int32(row+n-win[s]), int32(win[s]))
						tab = append(tab, hd.table...)
					}
					for i := 0; i < n; i++ {
						pos = append(pos, int32(i))
					}
					row += n
				}
				h.randomMetrics()
				q := h.f32(h.randn(row * qh * hd))
				sq, tb, ps := h.i32(seqs), h.i32(tab), h.i32(pos)
				scale := float32(0.4)
				mb := 0 // the unpooled windows run with a metric buffer: the slots nearest each row add nothing
				if !pool7 {
					mb = 3
				}
				h.c.WindowMetric(q.c, h.cp, engine.WindowSpec{Seqs: sq.c, Tables: tb.c, Pos: ps.c, NSeqs: 2, Squared: squared, Pool7: pool7, Buffer: mb}, qh, kvHeads, scale)
				h.g.WindowMetric(q.g, h.gp, engine.WindowSpec{Seqs: sq.g, Tables: tb.g, Pos: ps.g, NSeqs: 2, Squared: squared, Pool7: pool7, Buffer: mb}, qh, kvHeads, scale)
				if n := g.windowChunks(h.gp, 2*kvHeads, row, r); g.cpuLanes() == 0 && n != parts {
					t.Fatalf("the call splits into %d parts, the test expects %d", n, parts)
				}
				h.checkPool(fmt.Sprintf("type %d r %d hd %d pool %v squared %v", typ, r, hd, pool7, squared), 2e-4)
			}
		}
	}
}

// TestKVWriteAndCopyMoves: KVWrite, then compaction-style moves (holes filled from the tail, so no
// destination is a source); afterwards every slot (moved or retained) matches the CPU pool.
func TestKVWriteAndCopyMoves(t *testing.T) {
	g := OpenForTest(t)
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		const bs, hd = 4, 10
		h := newKVHarness(t, g, 17, 30, bs, hd, typ, int64(5*bs*hd*4))
		heads := h.addHeads([]int{23, 17, 30}, true)
		h.randomMetrics()
		h.checkPool("after KVWrite", 0)
		var moves []int32
		for _, hd := range heads {
			slot := func(i int) int32 { return hd.table[i/bs]*bs + int32(i%bs) }
			// Evict a random third, then MoveCache: lowest holes from the highest retained slots.
			evicted := map[int]bool{}
			for _, i := range h.rng.Perm(hd.ctx)[:hd.ctx/3] {
				evicted[i] = true
			}
			src := hd.ctx - 1
			for hole := 0; hole < hd.ctx; hole++ {
				if !evicted[hole] {
					continue
				}
				for src > hole && evicted[src] {
					src--
				}
				if src <= hole {
					break
				}
				moves = append(moves, slot(src), slot(hole))
				src--
			}
		}
		if len(moves) == 0 {
			t.Fatal("no moves generated")
		}
		mv := h.i32(moves)
		h.c.CopyMoves(h.cp, mv.c, len(moves)/2)
		h.g.CopyMoves(h.gp, mv.g, len(moves)/2)
		h.checkPool(fmt.Sprintf("type %d after %d moves", typ, len(moves)/2), 0)
	}
}

func TestKVPoolErrors(t *testing.T) {
	g := OpenForTest(t)
	if _, err := g.NewKVPoolArenas(100, 16, 64, engine.KVF32, 16*64*4*2); err == nil {
		t.Fatal("a pool needing 50 arenas was accepted")
	}
	if _, err := g.NewKVPoolArenas(4, 16, 7, engine.KVF16, 1<<20); err == nil {
		t.Fatal("an f16 pool with an odd head dim was accepted")
	}
	if _, err := g.NewKVPoolArenas(4, 16, 512, engine.KVF32, 1<<24); err == nil {
		t.Fatal("a head dim above the shader's limit was accepted")
	}
	p, err := g.NewKVPoolArenas(4, 4, 8, engine.KVF32, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	m, ps := make([]float32, 4), make([]int32, 4)
	if err := g.ReadSlots(p, []int32{4}, m, ps, nil); err == nil {
		t.Fatal("ReadSlots accepted block 4 of a 4-block pool")
	}
	if err := g.ReadSlots(p, []int32{0, 1}, m, ps, nil); err == nil {
		t.Fatal("ReadSlots accepted short output slices")
	}
	if err := g.ReadSlots(p, []int32{0}, m, ps, make([]float32, 3)); err == nil {
		t.Fatal("ReadSlots accepted a short value norm slice")
	}
	if got, want := p.DeviceBytes(), int64(2*4*4*8*4+2*4*4*4+16); got != want {
		t.Fatalf("DeviceBytes %d, want %d (K, V, metric, position, placeholder)", got, want)
	}
	if err := g.ReadSlots(p, []int32{3}, m, ps, nil); err != nil { // a new pool's slots are undefined, but readable
		t.Fatal(err)
	}
}

// TestKVBadInputs: short buffers are reported by the next Sync; block tables that are too short or name
// blocks outside the pool are skipped on the device instead of faulting it.
func TestKVBadInputs(t *testing.T) {
	g := OpenForTest(t)
	const bs, hd, kvHeads, qHeads = 4, 8, 1, 2
	h := newKVHarness(t, g, 23, 4, bs, hd, engine.KVF32, 1<<20)
	rowHeads := [][]kvHead{h.addHeads([]int{6}, true)}
	_, tables, pos := h.attnInputs(rowHeads, []int32{100})
	q, out := h.f32(h.randn(qHeads*hd)), h.out(qHeads*hd)
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	g.Attention(out.g, q.g, h.gp, engine.AttnHeads{Heads: pos.g, Tables: tables.g, Pos: pos.g, Rows: 1}, qHeads, kvHeads, 1, engine.MetricNone)
	if err := g.Sync(); err == nil || !strings.Contains(err.Error(), "Heads") {
		t.Fatalf("a 4-byte Heads buffer gave %v, want an error naming Heads", err)
	}
	g.KVWrite(h.gp, q.g, q.g, pos.g, pos.g, 3, kvHeads)
	if err := g.Sync(); err == nil {
		t.Fatal("KVWrite of 3 rows from 1-row buffers was accepted")
	}
	// ctx 40 over a 2-entry table, and a table entry naming block 99 of a 4-block pool.
	badHeads := h.i32([]int32{0, 40})
	badTables := h.i32([]int32{rowHeads[0][0].table[0], 99})
	g.Attention(out.g, q.g, h.gp, engine.AttnHeads{Heads: badHeads.g, Tables: badTables.g, Pos: pos.g, Rows: 1}, qHeads, kvHeads, 1, engine.MetricSquared)
	got := h.readF32(out.g, out.n)
	for i, x := range got {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("element %d is %v after a malformed table", i, x)
		}
	}
}
