package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// Every dense op on the Vulkan device against the CPU backend. Inputs are random (never zero), sizes are
// not multiples of the workgroups, and every output buffer is poisoned with a NaN pattern first.
//
// Error bounds (the CPU reference decodes the same stored weight values, so quantization error is not in
// them): MatMul |gpu - cpu| <= 1e-5 * sum_c |x_c * w_c| for every weight dtype (both sides accumulate in
// f32, in different orders); RMSNorm, SwiGLU, Softmax 1e-5 relative (+1e-30 absolute); RoPE 2e-6 of the
// pair's magnitude; Embed, Add, Argmax and TopK exact; a batch row equals the same row alone bit for bit.

const poison = 0x7fc0dead // a NaN

type denseEnv struct {
	t   *testing.T
	g   *Backend
	c   *cpu.Backend
	rng *rand.Rand
}

func newDenseEnv(t *testing.T, seed uint64) *denseEnv {
	return &denseEnv{t: t, g: OpenForTest(t), c: &cpu.Backend{Threads: 2}, rng: rand.New(rand.NewPCG(seed, 99))}
}

func (e *denseEnv) rand(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		for v[i] == 0 {
			v[i] = float32(e.rng.NormFloat64())
		}
	}
	return v
}

// pair returns the same f32 values on the device and on the CPU backend.
func (e *denseEnv) pair(v []float32) (*Buffer, *cpu.Buf) {
	e.t.Helper()
	g, err := e.g.AllocBuffer(int64(4 * len(v)))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.g.Write(g, 0, f32Bytes(v)); err != nil {
		e.t.Fatal(err)
	}
	cb, _ := e.c.Alloc(int64(4 * len(v)))
	copy(cb.(*cpu.Buf).F32(), v)
	return g, cb.(*cpu.Buf)
}

func (e *denseEnv) pairI32(v []int32) (*Buffer, *cpu.Buf) {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = math.Float32frombits(uint32(x))
	}
	return e.pair(f)
}

// out allocates a poisoned device output and a CPU output of n words.
func (e *denseEnv) out(n int) (*Buffer, *cpu.Buf) {
	e.t.Helper()
	g, err := e.g.AllocBuffer(int64(4 * n))
	if err != nil {
		e.t.Fatal(err)
	}
	e.g.Fill(Whole(g), poison)
	cb, _ := e.c.Alloc(int64(4 * n))
	return g, cb.(*cpu.Buf)
}

func (e *denseEnv) read(g *Buffer) []float32 {
	e.t.Helper()
	raw := make([]byte, g.Size())
	if err := e.g.Read(g, 0, raw); err != nil {
		e.t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return out
}

func (e *denseEnv) readI32(g *Buffer) []int32 {
	f := e.read(g)
	out := make([]int32, len(f))
	for i, v := range f {
		out[i] = int32(math.Float32bits(v))
	}
	return out
}

func (e *denseEnv) upload(tn *model.Tensor) (engine.Weight, engine.Weight) {
	e.t.Helper()
	gw, err := e.g.UploadWeight(tn)
	if err != nil {
		e.t.Fatal(err)
	}
	cw, err := e.c.UploadWeight(tn)
	if err != nil {
		e.t.Fatal(err)
	}
	return gw, cw
}

type wkind struct {
	dt    model.DType
	sk    model.ScaleKind
	group int
}

func (k wkind) String() string {
	switch k.dt {
	case model.F8E4M3:
		return "fp8-" + k.sk.String()
	case model.Q8_0:
		return fmt.Sprintf("q8_0-g%d", k.group)
	}
	return k.dt.String()
}

var allKinds = []wkind{
	{model.F32, 0, 0}, {model.F16, 0, 0}, {model.BF16, 0, 0}, {model.Q8_0, 0, 32}, {model.Q8_0, 0, 4},
	{model.F8E4M3, model.ScaleNone, 0}, {model.F8E4M3, model.ScaleTensor, 0},
	{model.F8E4M3, model.ScaleChannel, 0}, {model.F8E4M3, model.ScaleBlock, 0},
}

// fixCols rounds cols up to a multiple of the q8_0 group.
func (k wkind) fixCols(cols int) int {
	if k.group > 0 {
		return (cols + k.group - 1) / k.group * k.group
	}
	return cols
}

func (e *denseEnv) tensor(k wkind, rows, cols int) *model.Tensor {
	return cpu.EncodeTensor(fmt.Sprintf("w-%v-%dx%d", k, rows, cols), k.dt, rows, cols, false, k.sk, k.group, e.rand(rows*cols))
}

// forEachWG runs f with the device's workgroup sizes and with the ones a GPU gets (on lavapipe: one
// 8-wide subgroup, and 64 or more threads).
func forEachWG(t *testing.T, f func(t *testing.T)) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("gpu-workgroups=%v", force), func(t *testing.T) {
			defer func(v bool) { forceGPUWorkgroups = v }(forceGPUWorkgroups)
			forceGPUWorkgroups = force
			f(t)
		})
	}
}

// forEachMatMulPath runs f with forEachWG's two choices and a third, tiled: GPU workgroups with the tiled
// kernel (matmul_tiled.comp) for every n, which a GPU runs from tiledMinRows rows on.
func forEachMatMulPath(t *testing.T, f func(t *testing.T)) {
	forEachWG(t, f)
	t.Run("tiled", func(t *testing.T) {
		defer func(v, w bool) { forceGPUWorkgroups, forceTiled = v, w }(forceGPUWorkgroups, forceTiled)
		forceGPUWorkgroups, forceTiled = true, true
		f(t)
	})
}

func TestMatMulEveryDType(t *testing.T) { forEachMatMulPath(t, testMatMulEveryDType) }

func testMatMulEveryDType(t *testing.T) {
	e := newDenseEnv(t, 1)
	shapes := [][3]int{{1, 7, 1}, {7, 63, 3}, {131, 300, 1}, {131, 300, 9}, {5, 4097, 2}, {257, 1031, 17}}
	for _, k := range allKinds {
		for _, s := range shapes {
			rows, cols, n := s[0], k.fixCols(s[1]), s[2]
			e.checkMatMul(fmt.Sprintf("%v %dx%d n=%d", k, rows, cols, n), e.tensor(k, rows, cols), n)
		}
	}
}

// checkMatMul runs MatMul on the device and the CPU: |gpu - cpu| <= 1e-5 * sum_c |x_c w_c| per element.
func (e *denseEnv) checkMatMul(what string, tn *model.Tensor, n int) {
	e.t.Helper()
	gw, cw := e.upload(tn)
	rows, cols := tn.Rows(), tn.Cols()
	xv := e.rand(n * cols)
	gx, cx := e.pair(xv)
	gout, cout := e.out(n * rows)
	e.g.MatMul(gout, gx, gw, n)
	e.c.MatMul(cout, cx, cw, n)
	got, mags := e.read(gout), productMagnitudes(cw, xv, n)
	for i, mag := range mags {
		g, want := float64(got[i]), float64(cout.F32()[i])
		if !(math.Abs(g-want) <= 1e-5*mag+1e-30) {
			e.t.Fatalf("%s: out[%d][%d] = %v, cpu %v (bound %v)", what, i/rows, i%rows, g, want, 1e-5*mag)
		}
	}
	e.g.FreeWeight(gw)
	e.g.Free(gx)
	e.g.Free(gout)
}

// productMagnitudes is sum_c |x[i][c] * w[r][c]| for every output [i][r] of x [n][cols] times the CPU weight
// w (its decoded rows): the scale of MatMul's error bounds.
func productMagnitudes(w engine.Weight, x []float32, n int) []float64 {
	rows, cols := w.Info().Rows, w.Info().Cols
	mags := make([]float64, n*rows)
	row := make([]float32, cols)
	for r := 0; r < rows; r++ {
		w.(*cpu.Weight).DecodeRow(r, row)
		for i := 0; i < n; i++ {
			var mag float64
			for c := 0; c < cols; c++ {
				mag += math.Abs(float64(x[i*cols+c]) * float64(row[c]))
			}
			mags[i*rows+r] = mag
		}
	}
	return mags
}

// A batch gives each token the exact bits it gets alone (decode and batch variants reduce alike; the tiled
// kernel, forced for every n here, reduces alike at every n).
func TestMatMulBatchRowEqualsAlone(t *testing.T) { forEachMatMulPath(t, testMatMulBatchRowEqualsAlone) }

func testMatMulBatchRowEqualsAlone(t *testing.T) {
	e := newDenseEnv(t, 2)
	for _, k := range allKinds {
		rows, cols, n := 37, k.fixCols(517), 11
		gw, _ := e.upload(e.tensor(k, rows, cols))
		xv := e.rand(n * cols)
		gx, _ := e.pair(xv)
		gout, _ := e.out(n * rows)
		e.g.MatMul(gout, gx, gw, n)
		batch := e.read(gout)
		for i := 0; i < n; i++ {
			gx1, _ := e.pair(xv[i*cols : (i+1)*cols])
			g1, _ := e.out(rows)
			e.g.MatMul(g1, gx1, gw, 1)
			alone := e.read(g1)
			for r := 0; r < rows; r++ {
				if math.Float32bits(alone[r]) != math.Float32bits(batch[i*rows+r]) {
					t.Fatalf("%v: token %d row %d: batch %v, alone %v", k, i, r, batch[i*rows+r], alone[r])
				}
			}
			e.g.Free(gx1)
			e.g.Free(g1)
		}
		e.g.FreeWeight(gw)
	}
}

// Weights larger than one binding are split into row chunks; MatMul and Embed run per chunk.
func TestWeightChunks(t *testing.T) { forEachMatMulPath(t, testWeightChunks) }

func testWeightChunks(t *testing.T) {
	e := newDenseEnv(t, 3)
	defer func(v int64) { MaxWeightChunkBytes = v }(MaxWeightChunkBytes)
	for _, k := range []wkind{{model.F32, 0, 0}, {model.Q8_0, 0, 32}, {model.F8E4M3, model.ScaleBlock, 0}, {model.F8E4M3, model.ScaleChannel, 0}} {
		rows, cols, n := 300, k.fixCols(200), 3
		rowBytes := (int64(cols*k.dt.ElemBytes()) + 15) &^ 15
		MaxWeightChunkBytes = 128*rowBytes + 100
		tn := e.tensor(k, rows, cols)
		gw, cw := e.upload(tn)
		if c := gw.(*Weight).Chunks(); c != 3 {
			t.Fatalf("%v: %d chunks, want 3", k, c)
		}
		xv := e.rand(n * cols)
		gx, cx := e.pair(xv)
		gout, cout := e.out(n * rows)
		e.g.MatMul(gout, gx, gw, n)
		e.c.MatMul(cout, cx, cw, n)
		got := e.read(gout)
		for i, want := range cout.F32() {
			if math.Abs(float64(got[i]-want)) > 1e-4*(1+math.Abs(float64(want))) {
				t.Fatalf("%v chunked matmul [%d] = %v, cpu %v", k, i, got[i], want)
			}
		}
		ids := []int32{0, 127, 128, 299, 256, 5, 300}
		gid, cid := e.pairI32(ids)
		geo, ceo := e.out(len(ids) * cols)
		e.g.Embed(geo, gw, gid, len(ids))
		e.c.Embed(ceo, cw, cid, len(ids))
		e.sameBits(fmt.Sprintf("%v chunked embed", k), e.read(geo), ceo.F32())
		e.g.FreeWeight(gw)
	}
}

func (e *denseEnv) sameBits(what string, got, want []float32) {
	e.t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
			e.t.Fatalf("%s: [%d] = %v, cpu %v", what, i, got[i], want[i])
		}
	}
}

func TestEmbedEveryDType(t *testing.T) {
	e := newDenseEnv(t, 4)
	for _, k := range allKinds {
		rows, cols := 133, k.fixCols(63)
		gw, cw := e.upload(e.tensor(k, rows, cols))
		ids := []int32{5, 0, 132, 5, -1, 133, 77}
		gid, cid := e.pairI32(ids)
		gout, cout := e.out(len(ids) * cols)
		e.g.Embed(gout, gw, gid, len(ids))
		e.c.Embed(cout, cw, cid, len(ids))
		e.sameBits(fmt.Sprintf("embed %v", k), e.read(gout), cout.F32())
		e.g.FreeWeight(gw)
	}
}

func relClose(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)+1e-30
}

func TestRMSNorm(t *testing.T) { forEachWG(t, testRMSNorm) }

func testRMSNorm(t *testing.T) {
	e := newDenseEnv(t, 5)
	for _, k := range allKinds {
		for _, d := range []int{1, 7, 63, 4097} {
			n, d := 3, k.fixCols(d)
			tn := cpu.EncodeTensor("norm", k.dt, 1, d, true, k.sk, k.group, e.rand(d))
			gw, cw := e.upload(tn)
			xv := e.rand(n * d)
			gx, cx := e.pair(xv)
			gout, cout := e.out(n * d)
			e.g.RMSNorm(gout, gx, gw, n, 1e-5)
			e.c.RMSNorm(cout, cx, cw, n, 1e-5)
			e.g.RMSNorm(gx, gx, gw, n, 1e-5) // in place
			got, inPlace := e.read(gout), e.read(gx)
			for i, want := range cout.F32() {
				if !relClose(float64(got[i]), float64(want), 1e-5) || got[i] != inPlace[i] {
					t.Fatalf("rmsnorm %v d=%d [%d] = %v (in place %v), cpu %v", k, d, i, got[i], inPlace[i], want)
				}
			}
		}
	}
}

func TestSwiGLUAdd(t *testing.T) {
	e := newDenseEnv(t, 6)
	for _, n := range []int{1, 7, 4097} {
		a, bv := e.rand(n), e.rand(n)
		ga, ca := e.pair(a)
		gb, cb := e.pair(bv)
		gs, cs := e.out(n)
		e.g.SwiGLU(gs, ga, gb, n)
		e.c.SwiGLU(cs, ca, cb, n)
		got := e.read(gs)
		for i, want := range cs.F32() {
			if !relClose(float64(got[i]), float64(want), 1e-5) {
				t.Fatalf("swiglu n=%d [%d] = %v, cpu %v", n, i, got[i], want)
			}
		}
		gsum, csum := e.out(n)
		e.g.Add(gsum, ga, gb, n)
		e.c.Add(csum, ca, cb, n)
		e.sameBits("add", e.read(gsum), csum.F32())
		e.g.Add(ga, ga, gb, n) // in place
		e.sameBits("add in place", e.read(ga), csum.F32())
	}
}

func TestSoftmax(t *testing.T) { forEachWG(t, testSoftmax) }

func testSoftmax(t *testing.T) {
	e := newDenseEnv(t, 7)
	for _, cols := range []int{1, 7, 4097} {
		rows := 3
		v := e.rand(rows * cols)
		for i := range v {
			v[i] *= 4
		}
		g, c := e.pair(v)
		e.g.Softmax(g, rows, cols)
		e.c.Softmax(c, rows, cols)
		got := e.read(g)
		for i, want := range c.F32() {
			if !relClose(float64(got[i]), float64(want), 1e-5) {
				t.Fatalf("softmax cols=%d [%d] = %v, cpu %v", cols, i, got[i], want)
			}
		}
	}
}

func TestRoPE(t *testing.T) {
	e := newDenseEnv(t, 8)
	sc := &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	for _, layout := range []model.RopeLayout{model.RopeInterleaved, model.RopeRotateHalf} {
		for _, scaling := range []*model.RopeScaling{nil, sc} {
			p := engine.RopeParams{Layout: layout, Theta: 500000, Scaling: scaling}
			for _, hd := range []int{6, 128} {
				n, heads := 7, 3
				pos := []int32{0, 1, 17, 4095, 8191, 65537, 131071}
				xv := e.rand(n * heads * hd)
				gx, cx := e.pair(xv)
				gp, cp := e.pairI32(pos)
				e.g.RoPE(gx, gp, n, heads, hd, p)
				e.c.RoPE(cx, cp, n, heads, hd, p)
				got, want := e.read(gx), cx.F32()
				for i := range want {
					// bound by the magnitude of the pair the element belongs to
					j := i % hd
					var mate int
					if layout == model.RopeRotateHalf {
						mate = i - j + (j+hd/2)%hd
					} else {
						mate = i ^ 1
					}
					mag := math.Abs(float64(xv[i])) + math.Abs(float64(xv[mate]))
					if !(math.Abs(float64(got[i]-want[i])) <= 2e-6*mag) {
						t.Fatalf("rope %v scaled=%v hd=%d [%d] (token %d) = %v, cpu %v", layout, scaling != nil, hd, i, i/(heads*hd), got[i], want[i])
					}
				}
			}
		}
	}
}

func TestArgmaxTopK(t *testing.T) { forEachWG(t, testArgmaxTopK) }

func testArgmaxTopK(t *testing.T) {
	e := newDenseEnv(t, 9)
	for _, cols := range []int{1, 7, 300, 128256} {
		rows := 2
		for _, ties := range []bool{true, false} {
			v := e.rand(rows * cols)
			if ties {
				for i := range v {
					v[i] = float32(e.rng.IntN(25) - 12) // many equal values, zeros included
				}
			}
			gx, cx := e.pair(v)
			ga, ca := e.out(rows)
			e.g.Argmax(ga, gx, rows, cols)
			e.c.Argmax(ca, cx, rows, cols)
			gi := e.readI32(ga)
			for r := range gi {
				if gi[r] != ca.I32()[r] {
					t.Fatalf("argmax cols=%d ties=%v row %d: %d, cpu %d", cols, ties, r, gi[r], ca.I32()[r])
				}
			}
			for _, k := range []int{1, 7, 64, 256} {
				if k > cols {
					continue
				}
				gidx, cidx := e.out(rows * k)
				gval, cval := e.out(rows * k)
				e.g.TopK(gidx, gval, gx, rows, cols, k)
				e.c.TopK(cidx, cval, cx, rows, cols, k)
				gotI, gotV := e.readI32(gidx), e.read(gval)
				for i := range gotI {
					if gotI[i] != cidx.I32()[i] || gotV[i] != cval.F32()[i] {
						t.Fatalf("topk cols=%d k=%d ties=%v [%d]: (%d, %v), cpu (%d, %v)", cols, k, ties, i, gotI[i], gotV[i], cidx.I32()[i], cval.F32()[i])
					}
				}
				e.g.Free(gidx)
				e.g.Free(gval)
			}
			e.g.Free(gx)
		}
	}
}

// Misuse is reported by Sync with the op's name, never a device fault.
func TestDenseOpErrors(t *testing.T) {
	e := newDenseEnv(t, 10)
	gw, _ := e.upload(e.tensor(wkind{model.F32, 0, 0}, 8, 16))
	small, _ := e.out(4)
	x, _ := e.pair(e.rand(2 * 16))
	for what, op := range map[string]func(){
		"MatMul": func() { e.g.MatMul(small, x, gw, 2) },
		"TopK":   func() { e.g.TopK(small, small, x, 1, 32, 300) },
		"RoPE":   func() { e.g.RoPE(x, small, 1, 1, 7, engine.RopeParams{Theta: 10000}) },
		"Embed":  func() { e.g.Embed(small, gw, x, 2) },
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
