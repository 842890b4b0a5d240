package engine_test

import (
	"encoding/binary"
	"math"
	"testing"

	"kvc/model"
)

// denseModel is a plain llama2.c-style forward pass with a contiguous KV cache, written independently of the
// engine and its backends: the oracle the paged engine is checked against. f32 weights only.
type denseModel struct {
	cfg    model.Config
	w      map[string][]float32
	kc, vc [][]float32 // [layer][pos*kvDim + i]
	pos    int
}

func newDense(t testing.TB, ck *model.Checkpoint) *denseModel {
	d := &denseModel{cfg: ck.Config, w: map[string][]float32{}}
	for _, tn := range ck.Tensors {
		if tn.DType != model.F32 {
			t.Fatalf("dense reference needs f32 weights, %s is %v", tn.Name, tn.DType)
		}
		b, err := tn.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		f := make([]float32, len(b)/4)
		for i := range f {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[i*4:]))
		}
		d.w[tn.Name] = f
	}
	if d.cfg.Tied {
		d.w["output"] = d.w["token_embd"]
	}
	d.kc = make([][]float32, d.cfg.Layers)
	d.vc = make([][]float32, d.cfg.Layers)
	return d
}

func (d *denseModel) layer(l int, name string) []float32 { return d.w[model.LayerTensor(l, name)] }

func rmsnorm(x, w []float32, eps float64) []float32 {
	ss := 0.0
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i := range x {
		out[i] = float32(float64(x[i])*s) * w[i]
	}
	return out
}

func matvec(w, x []float32, rows int) []float32 {
	cols := len(x)
	out := make([]float32, rows)
	for r := 0; r < rows; r++ {
		s := 0.0
		for c := 0; c < cols; c++ {
			s += float64(w[r*cols+c]) * float64(x[c])
		}
		out[r] = float32(s)
	}
	return out
}

// rope rotates interleaved pairs (llama2.c layout).
func rope(x []float32, pos, headDim int, theta float64) {
	for i := 0; i < len(x); i += 2 {
		j := i % headDim
		freq := 1 / math.Pow(theta, float64(j)/float64(headDim))
		a := float64(pos) * freq
		c, s := math.Cos(a), math.Sin(a)
		x0, x1 := float64(x[i]), float64(x[i+1])
		x[i], x[i+1] = float32(x0*c-x1*s), float32(x0*s+x1*c)
	}
}

// step runs one token at the next position and returns the logits.
func (d *denseModel) step(tok int) []float32 {
	c := d.cfg
	hd := c.HeadDim
	kvDim := c.KVHeads * hd
	x := append([]float32(nil), d.w["token_embd"][tok*c.Dim:(tok+1)*c.Dim]...)
	for l := 0; l < c.Layers; l++ {
		xb := rmsnorm(x, d.layer(l, "attn_norm"), c.NormEps)
		q := matvec(d.layer(l, "attn_q"), xb, c.Heads*hd)
		k := matvec(d.layer(l, "attn_k"), xb, kvDim)
		v := matvec(d.layer(l, "attn_v"), xb, kvDim)
		rope(q, d.pos, hd, c.RopeTheta)
		rope(k, d.pos, hd, c.RopeTheta)
		d.kc[l] = append(d.kc[l], k...)
		d.vc[l] = append(d.vc[l], v...)
		att := make([]float32, c.Heads*hd)
		r := c.Heads / c.KVHeads
		n := d.pos + 1
		for h := 0; h < c.Heads; h++ {
			kh := h / r
			sc := make([]float64, n)
			m := math.Inf(-1)
			for p := 0; p < n; p++ {
				s := 0.0
				for i := 0; i < hd; i++ {
					s += float64(q[h*hd+i]) * float64(d.kc[l][p*kvDim+kh*hd+i])
				}
				sc[p] = s / math.Sqrt(float64(hd))
				m = math.Max(m, sc[p])
			}
			sum := 0.0
			for p := range sc {
				sc[p] = math.Exp(sc[p] - m)
				sum += sc[p]
			}
			for i := 0; i < hd; i++ {
				o := 0.0
				for p := 0; p < n; p++ {
					o += sc[p] / sum * float64(d.vc[l][p*kvDim+kh*hd+i])
				}
				att[h*hd+i] = float32(o)
			}
		}
		o := matvec(d.layer(l, "attn_output"), att, c.Dim)
		for i := range x {
			x[i] += o[i]
		}
		xb = rmsnorm(x, d.layer(l, "ffn_norm"), c.NormEps)
		g := matvec(d.layer(l, "ffn_gate"), xb, c.FFN)
		u := matvec(d.layer(l, "ffn_up"), xb, c.FFN)
		for i := range g {
			s := float64(g[i])
			g[i] = float32(s/(1+math.Exp(-s))) * u[i]
		}
		o = matvec(d.layer(l, "ffn_down"), g, c.Dim)
		for i := range x {
			x[i] += o[i]
		}
	}
	d.pos++
	x = rmsnorm(x, d.w["output_norm"], c.NormEps)
	return matvec(d.w["output"], x, c.Vocab)
}
