package cpu

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/model"
)

func randVals(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func bufOf(t testing.TB, c *Backend, v []float32) *Buf {
	b, err := c.Alloc(int64(4 * len(v)))
	if err != nil {
		t.Fatal(err)
	}
	copy(b.(*Buf).F32(), v)
	return b.(*Buf)
}

func i32Buf(t *testing.T, c *Backend, v []int32) *Buf {
	b, _ := c.Alloc(int64(4 * len(v)))
	copy(b.(*Buf).I32(), v)
	return b.(*Buf)
}

// stored returns the value a fixture tensor holds at (r, c), decoded by the model package alone.
func stored(t *testing.T, tn *model.Tensor, r, c int) float64 {
	data, _ := tn.Bytes()
	sc, _ := tn.Scales()
	cols := tn.Cols()
	i := r*cols + c
	switch tn.DType {
	case model.F32:
		return float64(math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24))
	case model.F16:
		return float64(model.F16ToF32(uint16(data[2*i]) | uint16(data[2*i+1])<<8))
	case model.BF16:
		return float64(model.BF16ToF32(uint16(data[2*i]) | uint16(data[2*i+1])<<8))
	case model.Q8_0:
		return float64(int8(data[i])) * float64(sc[i/tn.Group])
	case model.F8E4M3:
		s := 1.0
		switch tn.ScaleKind {
		case model.ScaleTensor:
			s = float64(sc[0])
		case model.ScaleChannel:
			s = float64(sc[r])
		case model.ScaleBlock:
			s = float64(sc[(r/128)*((cols+127)/128)+c/128])
		}
		return float64(model.FP8E4M3ToF32(data[i])) * s
	}
	t.Fatalf("dtype %v", tn.DType)
	return 0
}

type wcase struct {
	dt    model.DType
	sk    model.ScaleKind
	group int
}

var weightCases = []wcase{
	{model.F32, 0, 0}, {model.F16, 0, 0}, {model.BF16, 0, 0}, {model.Q8_0, 0, 32}, {model.Q8_0, 0, 16},
	{model.F8E4M3, model.ScaleNone, 0}, {model.F8E4M3, model.ScaleTensor, 0},
	{model.F8E4M3, model.ScaleChannel, 0}, {model.F8E4M3, model.ScaleBlock, 0},
}

func TestMatMulAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := &Backend{Threads: 3}
	for _, wc := range weightCases {
		rows, cols, n := 131, 160, 3
		if wc.dt == model.F8E4M3 {
			rows, cols = 259, 288 // several 128-blocks, partial ones at the edges
		}
		tn := EncodeTensor("w", wc.dt, rows, cols, false, wc.sk, wc.group, randVals(r, rows*cols))
		w, err := c.UploadWeight(tn)
		if err != nil {
			t.Fatal(err)
		}
		xv := randVals(r, n*cols)
		x := bufOf(t, c, xv)
		out := bufOf(t, c, make([]float32, n*rows))
		c.MatMul(out, x, w, n)
		for i := 0; i < n; i++ {
			for row := 0; row < rows; row++ {
				var want, mag float64
				for col := 0; col < cols; col++ {
					p := float64(xv[i*cols+col]) * stored(t, tn, row, col)
					want += p
					mag += math.Abs(p)
				}
				got := float64(out.F32()[i*rows+row])
				if math.Abs(got-want) > 1e-6*mag+1e-30 {
					t.Fatalf("%v %v: out[%d][%d] = %v, want %v (mag %v)", wc.dt, wc.sk, i, row, got, want, mag)
				}
			}
		}
		// the stored values approximate the source values: the fixture encoder is sane
		if wc.dt != model.F32 {
			row := make([]float32, cols)
			w.(*Weight).DecodeRow(1, row)
			if row[0] == 0 && row[1] == 0 && row[2] == 0 {
				t.Fatalf("%v: decoded row is zero", wc.dt)
			}
		}
	}
}

func TestMatMulBatchRowsEqualSingle(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	c := &Backend{Threads: 2}
	rows, cols, n := 300, 257, 5
	w, _ := c.UploadWeight(EncodeTensor("w", model.F16, rows, cols, false, 0, 0, randVals(r, rows*cols)))
	xv := randVals(r, n*cols)
	all := bufOf(t, c, make([]float32, n*rows))
	c.MatMul(all, bufOf(t, c, xv), w, n)
	for i := 0; i < n; i++ {
		one := bufOf(t, c, make([]float32, rows))
		(&Backend{Threads: 1}).MatMul(one, bufOf(t, c, xv[i*cols:(i+1)*cols]), w, 1)
		for j := 0; j < rows; j++ {
			if math.Float32bits(one.F32()[j]) != math.Float32bits(all.F32()[i*rows+j]) {
				t.Fatalf("row %d col %d: batch %v alone %v", i, j, all.F32()[i*rows+j], one.F32()[j])
			}
		}
	}
}

func TestUploadWeightRejectsBadTensors(t *testing.T) {
	c := &Backend{}
	v := make([]float32, 64)
	good := EncodeTensor("blk.0.attn_q", model.Q8_0, 2, 32, false, 0, 32, v)
	data, _ := good.Bytes()
	sc, _ := good.Scales()
	cases := map[string]*model.Tensor{
		"data bytes":    model.TensorFromBytes("blk.0.attn_q", model.F16, []int{2, 32}, data, nil),
		"scales":        withGroup(model.TensorFromBytes("blk.0.attn_q", model.Q8_0, []int{2, 32}, data, sc[:1]), 32),
		"group":         withGroup(model.TensorFromBytes("blk.0.attn_q", model.Q8_0, []int{2, 32}, data, sc), 24),
		"not a weight":  model.TensorFromBytes("blk.0.attn_q", model.I32, []int{16}, data, nil),
		"shape":         model.TensorFromBytes("blk.0.attn_q", model.F32, []int{2, 2, 4}, data, nil),
		"fp8 no scales": model.TensorFromBytes("blk.0.attn_q", model.F8E4M3, []int{2, 32}, data, nil),
	}
	cases["fp8 no scales"].ScaleKind = model.ScaleChannel
	for what, tn := range cases {
		_, err := c.UploadWeight(tn)
		if err == nil || !strings.Contains(err.Error(), "blk.0.attn_q") {
			t.Errorf("%s: got error %v, want one naming the tensor", what, err)
		}
	}
	if _, err := c.UploadWeight(good); err != nil {
		t.Errorf("good tensor: %v", err)
	}
}

func withGroup(tn *model.Tensor, g int) *model.Tensor { tn.Group = g; return tn }

func TestEmbedEveryDType(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	c := &Backend{}
	rows, cols := 40, 96
	for _, wc := range weightCases {
		tn := EncodeTensor("emb", wc.dt, rows, cols, false, wc.sk, wc.group, randVals(r, rows*cols))
		w, err := c.UploadWeight(tn)
		if err != nil {
			t.Fatal(err)
		}
		ids := []int32{3, 0, 39, 3, -1, 40}
		out := bufOf(t, c, make([]float32, len(ids)*cols))
		c.Embed(out, w, i32Buf(t, c, ids), len(ids))
		for i, id := range ids {
			for j := 0; j < cols; j++ {
				got := out.F32()[i*cols+j]
				if id < 0 || int(id) >= rows {
					if got == got {
						t.Fatalf("%v: id %d gave %v, want NaN", wc.dt, id, got)
					}
					continue
				}
				if want := float32(stored(t, tn, int(id), j)); got != want {
					t.Fatalf("%v %v: embed id %d col %d = %v, want %v", wc.dt, wc.sk, id, j, got, want)
				}
			}
		}
	}
}

func TestRMSNormSwiGLUAddSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	c := &Backend{}
	n, d := 3, 37
	xv, gv := randVals(r, n*d), randVals(r, d)
	w, _ := c.UploadWeight(EncodeTensor("norm", model.F32, 1, d, true, 0, 0, gv))
	out := bufOf(t, c, make([]float32, n*d))
	c.RMSNorm(out, bufOf(t, c, xv), w, n, 1e-5)
	for i := 0; i < n; i++ {
		var ss float64
		for j := 0; j < d; j++ {
			ss += float64(xv[i*d+j]) * float64(xv[i*d+j])
		}
		for j := 0; j < d; j++ {
			want := float64(xv[i*d+j]) / math.Sqrt(ss/float64(d)+1e-5) * float64(gv[j])
			if math.Abs(float64(out.F32()[i*d+j])-want) > 1e-6*math.Abs(want)+1e-7 {
				t.Fatalf("rmsnorm [%d][%d] = %v want %v", i, j, out.F32()[i*d+j], want)
			}
		}
	}
	a, b := randVals(r, 50), randVals(r, 50)
	o := bufOf(t, c, make([]float32, 50))
	c.SwiGLU(o, bufOf(t, c, a), bufOf(t, c, b), 50)
	for i := range a {
		want := float64(a[i]) / (1 + math.Exp(-float64(a[i]))) * float64(b[i])
		if math.Abs(float64(o.F32()[i])-want) > 1e-6*math.Abs(want)+1e-7 {
			t.Fatalf("swiglu %d: %v want %v", i, o.F32()[i], want)
		}
	}
	c.Add(o, bufOf(t, c, a), bufOf(t, c, b), 50)
	for i := range a {
		if o.F32()[i] != a[i]+b[i] {
			t.Fatalf("add %d", i)
		}
	}
	sm := bufOf(t, c, randVals(r, 2*33))
	c.Softmax(sm, 2, 33)
	for row := 0; row < 2; row++ {
		var s float64
		for _, v := range sm.F32()[row*33 : row*33+33] {
			if v <= 0 {
				t.Fatalf("softmax value %v", v)
			}
			s += float64(v)
		}
		if math.Abs(s-1) > 1e-6 {
			t.Fatalf("softmax row sums to %v", s)
		}
	}
}

func TestArgmaxTopKTies(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	c := &Backend{}
	rows, cols := 4, 300
	xv := make([]float32, rows*cols)
	for i := range xv {
		xv[i] = float32(r.IntN(40)) // many ties
	}
	x := bufOf(t, c, xv)
	am := i32Buf(t, c, make([]int32, rows))
	c.Argmax(am, x, rows, cols)
	for _, k := range []int{1, 7, 64, 300} {
		idx, val := i32Buf(t, c, make([]int32, rows*k)), bufOf(t, c, make([]float32, rows*k))
		c.TopK(idx, val, x, rows, cols, k)
		for row := 0; row < rows; row++ {
			order := make([]int, cols)
			for i := range order {
				order[i] = i
			}
			v := xv[row*cols : (row+1)*cols]
			sort.SliceStable(order, func(a, b int) bool { return v[order[a]] > v[order[b]] })
			for i := 0; i < k; i++ {
				if int(idx.I32()[row*k+i]) != order[i] || val.F32()[row*k+i] != v[order[i]] {
					t.Fatalf("k=%d row %d rank %d: got (%d, %v), want (%d, %v)", k, row, i, idx.I32()[row*k+i], val.F32()[row*k+i], order[i], v[order[i]])
				}
			}
			if am.I32()[row] != int32(order[0]) {
				t.Fatalf("argmax row %d = %d, want %d", row, am.I32()[row], order[0])
			}
		}
	}
}

func TestRopeLayoutsAndScaling(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	c := &Backend{}
	n, heads, hd := 3, 2, 16
	xv := randVals(r, n*heads*hd)
	pos := []int32{0, 5, 1000}
	sc := &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	for _, p := range []engine.RopeParams{
		{Layout: model.RopeInterleaved, Theta: 10000},
		{Layout: model.RopeRotateHalf, Theta: 500000},
		{Layout: model.RopeRotateHalf, Theta: 500000, Scaling: sc},
	} {
		x := bufOf(t, c, xv)
		c.RoPE(x, i32Buf(t, c, pos), n, heads, hd, p)
		freqs := engine.RopeFreqs(hd, p)
		for ti := 0; ti < n; ti++ {
			for h := 0; h < heads; h++ {
				base := (ti*heads + h) * hd
				for i := 0; i < hd/2; i++ {
					j0, j1 := base+2*i, base+2*i+1
					if p.Layout == model.RopeRotateHalf {
						j0, j1 = base+i, base+i+hd/2
					}
					a := float64(pos[ti]) * freqs[i]
					w0 := float64(xv[j0])*math.Cos(a) - float64(xv[j1])*math.Sin(a)
					w1 := float64(xv[j0])*math.Sin(a) + float64(xv[j1])*math.Cos(a)
					g0, g1 := float64(x.F32()[j0]), float64(x.F32()[j1])
					if math.Abs(g0-w0) > 1e-6 || math.Abs(g1-w1) > 1e-6 {
						t.Fatalf("%v pos %d pair %d: (%v, %v) want (%v, %v)", p.Layout, pos[ti], i, g0, g1, w0, w1)
					}
				}
			}
		}
	}
}
