package gpu

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// The fused ops against the CPU backend (within the unfused ops' bounds) and against the unfused ops on
// the same device (bit for bit: a fused op must be the sequence it replaces, so the forward pass gives
// the same bits either way).

// MatMulAdd adds the product into out: every weight dtype, odd shapes, both workgroup choices; words past
// the output stay poisoned.
func TestMatMulAddEveryDType(t *testing.T) { forEachMatMulPath(t, testMatMulAddEveryDType) }

func testMatMulAddEveryDType(t *testing.T) {
	e := newDenseEnv(t, 21)
	shapes := [][3]int{{1, 7, 1}, {7, 63, 3}, {131, 300, 1}, {131, 300, 9}, {37, 1031, 17}}
	for _, k := range allKinds {
		for _, s := range shapes {
			rows, cols, n := s[0], k.fixCols(s[1]), s[2]
			e.checkMatMulAdd(fmt.Sprintf("%v %dx%d n=%d", k, rows, cols, n), e.tensor(k, rows, cols), n)
		}
	}
}

// Weights split into row chunks: one add per chunk, on disjoint rows.
func TestMatMulAddChunks(t *testing.T) { forEachMatMulPath(t, testMatMulAddChunks) }

func testMatMulAddChunks(t *testing.T) {
	e := newDenseEnv(t, 22)
	defer func(v int64) { MaxWeightChunkBytes = v }(MaxWeightChunkBytes)
	for _, k := range []wkind{{model.F32, 0, 0}, {model.Q8_0, 0, 32}, {model.F8E4M3, model.ScaleBlock, 0}} {
		rows, cols := 300, k.fixCols(200)
		MaxWeightChunkBytes = 128*((int64(cols*k.dt.ElemBytes())+15)&^15) + 100
		e.checkMatMulAdd(fmt.Sprintf("chunked %v", k), e.tensor(k, rows, cols), 3)
	}
}

func (e *denseEnv) checkMatMulAdd(what string, tn *model.Tensor, n int) {
	e.t.Helper()
	gw, cw := e.upload(tn)
	defer e.g.FreeWeight(gw)
	rows, cols := tn.Rows(), tn.Cols()
	const tail = 5
	xv, init := e.rand(n*cols), e.rand(n*rows)
	gx, cx := e.pair(xv)
	gout, cout := e.pair(append(append([]float32{}, init...), make([]float32, tail)...))
	e.g.Fill(Range{Buf: gout, Off: int64(4 * n * rows), Len: 4 * tail}, poison)
	gref, _ := e.pair(init)
	gtmp, _ := e.out(n * rows)
	defer func() {
		for _, b := range []*Buffer{gx, gout, gref, gtmp} {
			e.g.Free(b)
		}
	}()
	e.g.MatMulAdd(gout, gx, gw, n)
	e.c.MatMulAdd(cout, cx, cw, n)
	e.g.MatMul(gtmp, gx, gw, n)
	e.g.Add(gref, gref, gtmp, n*rows)
	got, ref, want := e.read(gout), e.read(gref), cout.F32()
	for i := 0; i < tail; i++ {
		if math.Float32bits(got[n*rows+i]) != poison {
			e.t.Fatalf("%s: word %d past the output was written: %v", what, n*rows+i, got[n*rows+i])
		}
	}
	e.sameBits(what+": MatMulAdd vs MatMul+Add on the device", got[:n*rows], ref)
	for i, mag := range productMagnitudes(cw, xv, n) {
		g, w := float64(got[i]), float64(want[i])
		if !(math.Abs(g-w) <= 1e-5*mag+2e-7*math.Abs(w)+1e-30) {
			e.t.Fatalf("%s: out[%d][%d] = %v, cpu %v (bound %v)", what, i/rows, i%rows, g, w, 1e-5*mag)
		}
	}
}

// RopeKVWrite against RoPE, RoPE, KVWrite on the device (bit for bit: q, k, every slot's K, V, metric and
// position) and against the CPU (within RoPE's bound). Head dims with an odd number of pairs and an f16
// rotate-half pool with hd % 4 != 0 (which runs the unfused ops) included; pools over several arenas;
// metrics start random so that clearing them is seen.
func TestRopeKVWrite(t *testing.T) {
	g := OpenForTest(t)
	sc := &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	seed := int64(30)
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, layout := range []model.RopeLayout{model.RopeInterleaved, model.RopeRotateHalf} {
			for _, hd := range []int{6, 8, 10, 64} {
				for _, heads := range [][2]int{{6, 2}, {3, 3}} {
					scaling := sc
					if hd != 64 {
						scaling = nil
					}
					seed++
					what := fmt.Sprintf("kv type %d %v hd=%d heads %v", typ, layout, hd, heads)
					checkRopeKVWrite(t, g, what, seed, typ, hd, heads[0], heads[1],
						engine.RopeParams{Layout: layout, Theta: 10000, Scaling: scaling})
				}
			}
		}
	}
}

func checkRopeKVWrite(t *testing.T, g *Backend, what string, seed int64, typ engine.KVType, hd, qHeads, kvHeads int, p engine.RopeParams) {
	t.Helper()
	const bs, blocks, n = 4, 12, 5
	arena := int64(5 * bs * hd * 4)
	fz := newKVHarness(t, g, seed, blocks, bs, hd, typ, arena) // fused on the device, and the CPU
	un := newKVHarness(t, g, seed, blocks, bs, hd, typ, arena) // unfused on the device
	fz.randomMetrics()
	un.randomMetrics()
	slotList := make([]int32, n*kvHeads)
	for i, s := range fz.rng.Perm(blocks * bs)[:n*kvHeads] {
		slotList[i] = int32(s)
	}
	posList := []int32{0, 3, 17, 4095, 70001}
	qv, kv, vv := fz.randn(n*qHeads*hd), fz.randn(n*kvHeads*hd), fz.randn(n*kvHeads*hd)
	q, k, v, slots, pos := fz.f32(qv), fz.f32(kv), fz.f32(vv), fz.i32(slotList), fz.i32(posList)
	q2, k2, v2, slots2, pos2 := un.f32(qv), un.f32(kv), un.f32(vv), un.i32(slotList), un.i32(posList)

	fz.g.RopeKVWrite(fz.gp, q.g, k.g, v.g, slots.g, pos.g, n, qHeads, kvHeads, p)
	fz.c.RopeKVWrite(fz.cp, q.c, k.c, v.c, slots.c, pos.c, n, qHeads, kvHeads, p)
	un.g.RoPE(q2.g, pos2.g, n, qHeads, hd, p)
	un.g.RoPE(k2.g, pos2.g, n, kvHeads, hd, p)
	un.g.KVWrite(un.gp, k2.g, v2.g, slots2.g, pos2.g, n, kvHeads)

	for _, c := range []struct {
		name           string
		fused, unfused twin
		in             []float32
		want           []float32
	}{{"q", q, q2, qv, q.c.F32()}, {"k", k, k2, kv, k.c.F32()}} {
		got, ref := fz.readF32(c.fused.g, c.fused.n), un.readF32(c.unfused.g, c.unfused.n)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
				t.Fatalf("%s: %s[%d] = %v, unfused %v", what, c.name, i, got[i], ref[i])
			}
			j := i % hd
			mate := i ^ 1
			if p.Layout == model.RopeRotateHalf {
				mate = i - j + (j+hd/2)%hd
			}
			mag := math.Abs(float64(c.in[i])) + math.Abs(float64(c.in[mate]))
			if !(math.Abs(float64(got[i]-c.want[i])) <= 2e-6*mag) {
				t.Fatalf("%s: %s[%d] = %v, cpu %v", what, c.name, i, got[i], c.want[i])
			}
		}
	}

	nSlots := blocks * bs
	all := make([]int32, blocks)
	for i := range all {
		all[i] = int32(i)
	}
	readSlots := func(h *kvHarness) ([]float32, []int32) {
		m, ps := make([]float32, nSlots), make([]int32, nSlots)
		if err := h.g.ReadSlots(h.gp, all, m, ps, nil); err != nil {
			t.Fatal(err)
		}
		return m, ps
	}
	fm, fpos := readSlots(fz)
	um, upos := readSlots(un)
	fk, fv := fz.readArenas(fz.gp.k), fz.readArenas(fz.gp.v)
	uk, uv := un.readArenas(un.gp.k), un.readArenas(un.gp.v)
	for s := 0; s < nSlots; s++ {
		if fpos[s] != upos[s] || fpos[s] != fz.cp.Pos[s] || math.Float32bits(fm[s]) != math.Float32bits(um[s]) || fm[s] != fz.cp.Metric[s] {
			t.Fatalf("%s: slot %d position/metric %d/%v, unfused %d/%v, cpu %d/%v", what, s, fpos[s], fm[s], upos[s], um[s], fz.cp.Pos[s], fz.cp.Metric[s])
		}
		ck, cv := fz.cp.K(s), fz.cp.V(s)
		for e := 0; e < hd; e++ {
			i := s*hd + e
			if math.Float32bits(fk[i]) != math.Float32bits(uk[i]) || math.Float32bits(fv[i]) != math.Float32bits(uv[i]) {
				t.Fatalf("%s: slot %d elem %d: K/V %v/%v, unfused %v/%v", what, s, e, fk[i], fv[i], uk[i], uv[i])
			}
			tol := 1e-5
			if typ == engine.KVF16 {
				tol = 1e-3
			}
			if !near(fk[i], float64(ck[e]), tol) || !near(fv[i], float64(cv[e]), tol) {
				t.Fatalf("%s: slot %d elem %d: K/V %v/%v, cpu %v/%v", what, s, e, fk[i], fv[i], ck[e], cv[e])
			}
		}
	}
}

// Misuse is reported by Sync with the fused op's name, never a device fault.
func TestFusedOpErrors(t *testing.T) {
	e := newDenseEnv(t, 23)
	gw, _ := e.upload(e.tensor(wkind{model.F32, 0, 0}, 8, 16))
	small, _ := e.out(4)
	x, _ := e.pair(e.rand(2 * 16))
	pool, err := e.g.NewKVPool(4, 4, 8, engine.KVF16)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.(*KVPool).Release()
	for what, op := range map[string]func(){
		"MatMulAdd":    func() { e.g.MatMulAdd(small, x, gw, 2) },
		"MatMulSwiGLU": func() { e.g.MatMulSwiGLU(small, x, gw, gw, 2) },
		"MatMulQKV":    func() { e.g.MatMulQKV(x, x, small, x, gw, gw, gw, 2) },
		"RopeKVWrite": func() {
			e.g.RopeKVWrite(pool, small, x, x, x, x, 2, 4, 1, engine.RopeParams{Theta: 10000})
		},
	} {
		op()
		err := e.g.Sync()
		if err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s misuse: Sync returned %v", what, err)
		}
	}
	if err := e.g.Sync(); err != nil {
		t.Errorf("the error was not cleared: %v", err)
	}
}

// MatMulSwiGLU: every weight dtype, odd shapes, both workgroup choices, against the device's unfused
// sequence (bit for bit) and the CPU (the matmul bound carried through silu(g) * u).
func TestMatMulSwiGLUEveryDType(t *testing.T) { forEachMatMulPath(t, testMatMulSwiGLUEveryDType) }

func testMatMulSwiGLUEveryDType(t *testing.T) {
	e := newDenseEnv(t, 24)
	shapes := [][3]int{{1, 7, 1}, {7, 63, 3}, {131, 300, 1}, {37, 1031, 17}}
	for _, k := range allKinds {
		for _, s := range shapes {
			rows, cols, n := s[0], k.fixCols(s[1]), s[2]
			e.checkMatMulSwiGLU(fmt.Sprintf("%v %dx%d n=%d", k, rows, cols, n), e.tensor(k, rows, cols), e.tensor(k, rows, cols), n, true)
		}
	}
}

// Chunked weights run one fused dispatch per chunk; weights of different dtypes run the unfused ops.
func TestMatMulSwiGLUChunksAndMixedDTypes(t *testing.T) {
	forEachMatMulPath(t, testMatMulSwiGLUChunksAndMixed)
}

func testMatMulSwiGLUChunksAndMixed(t *testing.T) {
	e := newDenseEnv(t, 25)
	e.checkMatMulSwiGLU("f16 gate, q8_0 up", e.tensor(wkind{model.F16, 0, 0}, 19, 64), e.tensor(wkind{model.Q8_0, 0, 32}, 19, 64), 3, false)
	defer func(v int64) { MaxWeightChunkBytes = v }(MaxWeightChunkBytes)
	for _, k := range []wkind{{model.F32, 0, 0}, {model.Q8_0, 0, 32}, {model.F8E4M3, model.ScaleBlock, 0}} {
		rows, cols := 300, k.fixCols(200)
		MaxWeightChunkBytes = 128*((int64(cols*k.dt.ElemBytes())+15)&^15) + 100
		e.checkMatMulSwiGLU(fmt.Sprintf("chunked %v", k), e.tensor(k, rows, cols), e.tensor(k, rows, cols), 3, true)
	}
}

func (e *denseEnv) checkMatMulSwiGLU(what string, gt, ut *model.Tensor, n int, fused bool) {
	e.t.Helper()
	gg, cg := e.upload(gt)
	gu, cu := e.upload(ut)
	defer e.g.FreeWeight(gg)
	defer e.g.FreeWeight(gu)
	if got := sameLayout(gg.(*Weight), gu.(*Weight)); got != fused {
		e.t.Fatalf("%s: sameLayout %v, want %v", what, got, fused)
	}
	rows, cols := gt.Rows(), gt.Cols()
	const tail = 5
	xv := e.rand(n * cols)
	gx, cx := e.pair(xv)
	gout, cout := e.out(n*rows + tail)
	gref, _ := e.out(n * rows)
	gtmp, _ := e.out(n * rows)
	defer func() {
		for _, b := range []*Buffer{gx, gout, gref, gtmp} {
			e.g.Free(b)
		}
	}()
	e.g.MatMulSwiGLU(gout, gx, gg, gu, n)
	e.c.MatMulSwiGLU(cout, cx, cg, cu, n)
	e.g.MatMul(gref, gx, gg, n)
	e.g.MatMul(gtmp, gx, gu, n)
	e.g.SwiGLU(gref, gref, gtmp, n*rows)
	got, ref, want := e.read(gout), e.read(gref), cout.F32()
	for i := 0; i < tail; i++ {
		if math.Float32bits(got[n*rows+i]) != poison {
			e.t.Fatalf("%s: word %d past the output was written: %v", what, n*rows+i, got[n*rows+i])
		}
	}
	e.sameBits(what+": MatMulSwiGLU vs MatMul, MatMul, SwiGLU on the device", got[:n*rows], ref)
	grow, urow := make([]float32, cols), make([]float32, cols)
	for r := 0; r < rows; r++ {
		cg.(*cpu.Weight).DecodeRow(r, grow)
		cu.(*cpu.Weight).DecodeRow(r, urow)
		for i := 0; i < n; i++ {
			var g, u, mg, mu float64
			for c := 0; c < cols; c++ {
				x := float64(xv[i*cols+c])
				g, u = g+x*float64(grow[c]), u+x*float64(urow[c])
				mg, mu = mg+math.Abs(x*float64(grow[c])), mu+math.Abs(x*float64(urow[c]))
			}
			silu := g / (1 + math.Exp(-g))
			bound := 1.1*1e-5*mg*(math.Abs(u)+1e-5*mu) + math.Abs(silu)*1e-5*mu + 1e-5*math.Abs(float64(want[i*rows+r])) + 1e-30
			if d := math.Abs(float64(got[i*rows+r]) - float64(want[i*rows+r])); !(d <= bound) {
				e.t.Fatalf("%s: out[%d][%d] = %v, cpu %v (bound %v)", what, i, r, got[i*rows+r], want[i*rows+r], bound)
			}
		}
	}
}

// MatMulQKV: every weight dtype, odd shapes (k and v with fewer rows than q, as with grouped-query
// attention), both workgroup choices; each output bit for bit the device's MatMul, and within MatMul's
// bound of the CPU; words past each output stay poisoned.
func TestMatMulQKVEveryDType(t *testing.T) { forEachMatMulPath(t, testMatMulQKVEveryDType) }

func testMatMulQKVEveryDType(t *testing.T) {
	e := newDenseEnv(t, 26)
	shapes := [][4]int{{1, 1, 7, 1}, {37, 13, 63, 3}, {131, 45, 300, 1}, {64, 32, 1031, 17}}
	for _, k := range allKinds {
		for _, s := range shapes {
			qr, kr, cols, n := s[0], s[1], k.fixCols(s[2]), s[3]
			e.checkMatMulQKV(fmt.Sprintf("%v q %d kv %d cols %d n=%d", k, qr, kr, cols, n),
				[3]*model.Tensor{e.tensor(k, qr, cols), e.tensor(k, kr, cols), e.tensor(k, kr, cols)}, n)
		}
	}
}

// Weights the fused kernel cannot take run three MatMuls: mixed dtypes, weights split into chunks.
func TestMatMulQKVFallbacks(t *testing.T) { forEachMatMulPath(t, testMatMulQKVFallbacks) }

func testMatMulQKVFallbacks(t *testing.T) {
	e := newDenseEnv(t, 27)
	f16, q8 := wkind{model.F16, 0, 0}, wkind{model.Q8_0, 0, 32}
	e.checkMatMulQKV("f16 q, q8_0 k and v", [3]*model.Tensor{e.tensor(f16, 20, 64), e.tensor(q8, 10, 64), e.tensor(q8, 10, 64)}, 3)
	defer func(v int64) { MaxWeightChunkBytes = v }(MaxWeightChunkBytes)
	MaxWeightChunkBytes = 128*64*4 + 100
	f32 := wkind{model.F32, 0, 0}
	e.checkMatMulQKV("chunked q", [3]*model.Tensor{e.tensor(f32, 300, 64), e.tensor(f32, 20, 64), e.tensor(f32, 20, 64)}, 3)
}

func (e *denseEnv) checkMatMulQKV(what string, ts [3]*model.Tensor, n int) {
	e.t.Helper()
	const tail = 5
	cols := ts[0].Cols()
	xv := e.rand(n * cols)
	gx, cx := e.pair(xv)
	defer e.g.Free(gx)
	var gw, cw [3]engine.Weight
	var gout, gref [3]*Buffer
	var cout [3]*cpu.Buf
	for i, tn := range ts {
		gw[i], cw[i] = e.upload(tn)
		defer e.g.FreeWeight(gw[i])
		gout[i], cout[i] = e.out(n*tn.Rows() + tail)
		gref[i], _ = e.out(n * tn.Rows())
		defer e.g.Free(gout[i])
		defer e.g.Free(gref[i])
	}
	e.g.MatMulQKV(gout[0], gout[1], gout[2], gx, gw[0], gw[1], gw[2], n)
	e.c.MatMulQKV(cout[0], cout[1], cout[2], cx, cw[0], cw[1], cw[2], n)
	for i := range ts {
		e.g.MatMul(gref[i], gx, gw[i], n)
	}
	for i, tn := range ts {
		rows := tn.Rows()
		got, ref, want := e.read(gout[i]), e.read(gref[i]), cout[i].F32()
		for j := 0; j < tail; j++ {
			if math.Float32bits(got[n*rows+j]) != poison {
				e.t.Fatalf("%s: output %d: word %d past it was written: %v", what, i, n*rows+j, got[n*rows+j])
			}
		}
		e.sameBits(fmt.Sprintf("%s: output %d vs MatMul on the device", what, i), got[:n*rows], ref)
		for j, mag := range productMagnitudes(cw[i], xv, n) {
			g, w := float64(got[j]), float64(want[j])
			if !(math.Abs(g-w) <= 1e-5*mag+1e-30) {
				e.t.Fatalf("%s: output %d [%d][%d] = %v, cpu %v (bound %v)", what, i, j/rows, j%rows, g, w, 1e-5*mag)
			}
		}
	}
}
