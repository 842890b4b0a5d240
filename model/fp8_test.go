package model

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// fp8Config has matrices larger than one 128x128 block in both directions, and a partial last block.
var fp8Config = Config{Dim: 160, Layers: 2, Heads: 5, KVHeads: 1, HeadDim: 32, FFN: 288, Vocab: 64, Context: 64,
	NormEps: 1e-5, RopeTheta: 500000, RopeLayout: RopeInterleaved, BOS: 128000, EOS: []int{128001, 128009},
	RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}}

func TestFP8ScaleLayouts(t *testing.T) {
	dir := t.TempDir()
	ref := t.TempDir()
	if err := WriteHF(ref, fp8Config, HFOptions{DType: F32}, RandomSource(3)); err != nil {
		t.Fatal(err)
	}
	want := openT(t, ref)
	cases := []struct {
		name   string
		opt    HFOptions
		kind   ScaleKind
		nScale int // for blk.0.ffn_down [160, 288]
	}{
		{"tensor-scalar", HFOptions{FP8Scale: ScaleTensor, InputScales: true}, ScaleTensor, 1},
		{"tensor-vector", HFOptions{FP8Scale: ScaleTensor, ScaleVector: true}, ScaleTensor, 1},
		{"channel-col", HFOptions{FP8Scale: ScaleChannel}, ScaleChannel, 160},
		{"channel-vector", HFOptions{FP8Scale: ScaleChannel, ScaleVector: true}, ScaleChannel, 160},
		{"ct-block", HFOptions{FP8Scale: ScaleBlock}, ScaleBlock, 2 * 3},
		{"fbgemm", HFOptions{FP8Method: "fbgemm_fp8"}, ScaleChannel, 160},
		{"fp8-block", HFOptions{FP8Method: "fp8", ShardBytes: 100 << 10}, ScaleBlock, 2 * 3},
		{"ignore-regex", HFOptions{FP8Scale: ScaleChannel, Ignore: []string{"re:model\\.layers\\.1\\.mlp\\..*"}}, ScaleChannel, 160},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			tc.opt.DType = F8E4M3
			if err := WriteHF(p, fp8Config, tc.opt, RandomSource(3)); err != nil {
				t.Fatal(err)
			}
			c := openT(t, p)
			if c.Config.RopeScaling == nil || c.Config.RopeScaling.Factor != 8 || c.Config.RopeScaling.OriginalContext != 8192 ||
				len(c.Config.EOS) != 2 || c.Config.EOS[1] != 128009 || c.Config.BOS != 128000 || c.Config.RopeTheta != 500000 {
				t.Fatalf("config %+v", c.Config)
			}
			d, _ := c.Tensor("blk.0.ffn_down")
			if d.DType != F8E4M3 || d.ScaleKind != tc.kind {
				t.Fatalf("ffn_down %s %s, want fp8 %s", d.DType, d.ScaleKind, tc.kind)
			}
			s, err := d.Scales()
			if err != nil || len(s) != tc.nScale {
				t.Fatalf("%d scales (%v), want %d", len(s), err, tc.nScale)
			}
			for _, n := range []string{"token_embd", "output", "output_norm", "blk.1.attn_norm"} {
				if x, _ := c.Tensor(n); x.DType != BF16 {
					t.Fatalf("%s stored %s, want bf16", n, x.DType)
				}
			}
			if tc.name == "ignore-regex" {
				if x, _ := c.Tensor("blk.1.ffn_up"); x.DType != BF16 {
					t.Fatalf("ignored blk.1.ffn_up stored %s", x.DType)
				}
				if x, _ := c.Tensor("blk.1.attn_q"); x.DType != F8E4M3 {
					t.Fatalf("blk.1.attn_q stored %s", x.DType)
				}
			}
			q, _ := c.Tensor("blk.1.attn_q")
			if tc.opt.InputScales && q.InputScale != 0.0125 {
				t.Fatalf("input scale %v", q.InputScale)
			}
			if !strings.Contains(c.Quant, tc.kind.String()) {
				t.Fatalf("quant %q", c.Quant)
			}
			// e4m3 keeps 3 mantissa bits: |error| <= 1/16 of the value's binade, and bf16 1/256.
			sameWeights(t, want, c, 1.0/14)
		})
	}
}

func TestFP8Zstd(t *testing.T) {
	dir := t.TempDir()
	opt := HFOptions{DType: F8E4M3, FP8Scale: ScaleBlock, InputScales: true, ShardBytes: 100 << 10}
	if err := WriteHF(filepath.Join(dir, "plain"), fp8Config, opt, RandomSource(4)); err != nil {
		t.Fatal(err)
	}
	opt.Compress = true
	if err := WriteHF(filepath.Join(dir, "z"), fp8Config, opt, RandomSource(4)); err != nil {
		t.Fatal(err)
	}
	a, b := openT(t, filepath.Join(dir, "plain")), openT(t, filepath.Join(dir, "z"))
	sameWeights(t, a, b, 0)
	qa, _ := a.Tensor("blk.0.attn_k")
	qb, _ := b.Tensor("blk.0.attn_k")
	if qa.InputScale != 0.0125 || qb.InputScale != 0 || !strings.Contains(strings.Join(b.Notes, ";"), "input_scale") {
		t.Fatalf("input scales: plain %v, zstd %v (notes %v)", qa.InputScale, qb.InputScale, b.Notes)
	}
}

func TestQuantizeFP8Error(t *testing.T) {
	v, _ := RandomSource(9)("x", []int{130, 200})
	for _, k := range []ScaleKind{ScaleTensor, ScaleChannel, ScaleBlock} {
		q, s := QuantizeFP8(v, 130, 200, k)
		tn := &Tensor{DType: F8E4M3, Shape: []int{130, 200}, ScaleKind: k}
		tn.read = func() ([]byte, error) { return q, nil }
		tn.scales = func() ([]float32, error) { return s, nil }
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			if d := math.Abs(float64(got[i] - v[i])); d > math.Abs(float64(v[i]))/16+1e-6 {
				t.Fatalf("%s: [%d] %v -> %v", k, i, v[i], got[i])
			}
		}
	}
}
