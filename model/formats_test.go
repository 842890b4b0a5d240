package model

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPermuteRopeRows(t *testing.T) {
	// One head of 4 rows of 1 byte: interleaved pairs (0,1),(2,3) become rotate-half pairs (0,2),(1,3).
	got, err := PermuteRopeRows([]byte{0, 1, 2, 3}, 1, 4, 1, RopeInterleaved, RopeRotateHalf)
	if err != nil || !bytes.Equal(got, []byte{0, 2, 1, 3}) {
		t.Fatalf("interleaved -> rotate-half: %v %v", got, err)
	}
	// Two heads of 6 rows, 3 bytes per row: both directions are inverses and not the identity.
	data := make([]byte, 2*6*3)
	for i := range data {
		data[i] = byte(i)
	}
	fwd, _ := PermuteRopeRows(data, 2, 6, 3, RopeInterleaved, RopeRotateHalf)
	back, _ := PermuteRopeRows(fwd, 2, 6, 3, RopeRotateHalf, RopeInterleaved)
	if bytes.Equal(fwd, data) || !bytes.Equal(back, data) {
		t.Fatal("permutation round trip")
	}
	// Rotate-half row j*3+i of head 1 is interleaved row 2i+j.
	for i := 0; i < 3; i++ {
		for j := 0; j < 2; j++ {
			if fwd[(6+j*3+i)*3] != data[(6+2*i+j)*3] {
				t.Fatalf("head 1 i=%d j=%d", i, j)
			}
		}
	}
	f := []float32{0, 1, 2, 3, 4, 5, 6, 7}
	pf, _ := PermuteRopeF32(f, 1, 4, 2, RopeInterleaved, RopeRotateHalf)
	if pf[2] != 4 || pf[3] != 5 || pf[4] != 2 {
		t.Fatalf("f32 permutation %v", pf)
	}
	if _, err := PermuteRopeRows(data, 2, 5, 3, RopeInterleaved, RopeRotateHalf); err == nil {
		t.Fatal("odd head dim accepted")
	}
}

// storiesFormats writes stories260K as GGUF (f32) and as a sharded HF folder (f32).
func storiesFormats(t *testing.T) (orig, gguf, hf *Checkpoint, dir string) {
	orig = openT(t, stories(t))
	dir = t.TempDir()
	gp := writeFile(t, filepath.Join(dir, "s.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, orig.Config, GGUFModelOptions{DType: F32, Name: "stories260K"}, CheckpointSource(orig))
	})
	hp := filepath.Join(dir, "hf")
	if err := WriteHF(hp, orig.Config, HFOptions{DType: F32, ShardBytes: 300 << 10}, CheckpointSource(orig)); err != nil {
		t.Fatal(err)
	}
	return orig, openT(t, gp), openT(t, hp), dir
}

func TestSameWeightsAcrossFormats(t *testing.T) {
	orig, gg, hf, _ := storiesFormats(t)
	if gg.Format != "gguf" || hf.Format != "hf" || len(hf.Files) < 2 {
		t.Fatalf("formats %s %s, %d shards", gg.Format, hf.Format, len(hf.Files))
	}
	for _, c := range []*Checkpoint{gg, hf} {
		a, b := orig.Config, c.Config
		if a.Dim != b.Dim || a.Layers != b.Layers || a.Heads != b.Heads || a.KVHeads != b.KVHeads || a.HeadDim != b.HeadDim ||
			a.FFN != b.FFN || a.Vocab != b.Vocab || a.Context != b.Context || a.Tied != b.Tied || a.BOS != b.BOS ||
			math.Abs(a.NormEps-b.NormEps) > 1e-9 || a.RopeTheta != b.RopeTheta {
			t.Fatalf("%s config %+v, want %+v", c.Format, b, a)
		}
	}
	if gg.Config.RopeLayout != RopeInterleaved || hf.Config.RopeLayout != RopeRotateHalf {
		t.Fatal("rope layouts")
	}
	sameWeights(t, orig, gg, 0)
	sameWeights(t, orig, hf, 0)
	// The HF q_proj bytes are the interleaved rows permuted per head (so not equal to the original).
	oq, _ := orig.Tensor("blk.1.attn_q")
	hq, _ := hf.Tensor("blk.1.attn_q")
	ob, _ := oq.Bytes()
	hb, _ := hq.Bytes()
	want, _ := PermuteRopeRows(ob, 8, 8, 64*4, RopeInterleaved, RopeRotateHalf)
	if bytes.Equal(ob, hb) || !bytes.Equal(hb, want) {
		t.Fatal("HF q_proj is not the rotate-half permutation of the llama2.c rows")
	}
	if hq.SourceName != "model.layers.1.self_attn.q_proj.weight" {
		t.Fatalf("source name %s", hq.SourceName)
	}
}

func TestGGUFDTypesAndMetadata(t *testing.T) {
	orig := openT(t, stories(t))
	dir := t.TempDir()
	toks, scores, types, err := SyntheticVocab(orig.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	scores[1] = -1.5
	extra := []GGUFKV{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", toks},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"test.u8", uint8(7)}, {"test.i8", int8(-7)}, {"test.u16", uint16(700)}, {"test.i16", int16(-700)},
		{"test.i32", int32(-70000)}, {"test.u64", uint64(1 << 40)}, {"test.i64", int64(-1 << 40)}, {"test.f64", 2.5},
		{"test.bool", true}, {"test.nested", []any{[]any{uint8(1), uint8(2)}, []any{uint8(3)}}},
		{"test.u32s", []uint32{5, 6}},
	}
	for _, tc := range []struct {
		dt  DType
		tol float64
	}{{F16, 1e-3}, {BF16, 8e-3}, {Q8_0, 1.0 / 120}} {
		p := writeFile(t, filepath.Join(dir, tc.dt.String()+".gguf"), func(f *os.File) error {
			return WriteGGUFModel(f, orig.Config, GGUFModelOptions{DType: tc.dt, Extra: extra, Alignment: 64}, CheckpointSource(orig))
		})
		c := openT(t, p)
		sameWeights(t, orig, c, tc.tol)
		q, _ := c.Tensor("blk.0.ffn_up")
		if q.DType != tc.dt {
			t.Fatalf("%s: ffn_up stored as %s", tc.dt, q.DType)
		}
		if tc.dt == Q8_0 && (q.Group != 32 || c.Quant == "none") {
			t.Fatalf("q8_0 group %d quant %q", q.Group, c.Quant)
		}
		m := c.Metadata()
		if toks, ok := m["tokenizer.ggml.tokens"].([]string); !ok || len(toks) != orig.Config.Vocab || toks[2] != "</s>" {
			t.Fatalf("tokens %#v", m["tokenizer.ggml.tokens"])
		}
		if s, ok := m["tokenizer.ggml.scores"].([]float32); !ok || s[1] != -1.5 {
			t.Fatalf("scores %#v", m["tokenizer.ggml.scores"])
		}
		if s, ok := m["tokenizer.ggml.token_type"].([]int32); !ok || s[0] != 2 {
			t.Fatalf("token_type %#v", m["tokenizer.ggml.token_type"])
		}
		nest, ok := m["test.nested"].([]any)
		if !ok || len(nest) != 2 || nest[0].([]any)[1] != uint8(2) {
			t.Fatalf("nested %#v", m["test.nested"])
		}
		if m["test.i8"] != int8(-7) || m["test.u16"] != uint16(700) || m["test.i16"] != int16(-700) || m["test.i64"] != int64(-1<<40) ||
			m["test.u64"] != uint64(1<<40) || m["test.f64"] != 2.5 || m["test.bool"] != true || m["general.alignment"] != uint32(64) {
			t.Fatalf("scalars %#v", m)
		}
		if u, ok := m["test.u32s"].([]any); !ok || u[1] != uint32(6) {
			t.Fatalf("u32 array %#v", m["test.u32s"])
		}
	}
}

func TestZstdEqualsPlain(t *testing.T) {
	orig, gg, hf, dir := storiesFormats(t)
	v2 := writeFile(t, filepath.Join(dir, "v2.bin"), func(f *os.File) error {
		return WriteLlama2C(f, orig.Config, 2, 4, CheckpointSource(orig))
	})
	q8 := writeFile(t, filepath.Join(dir, "q8.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, orig.Config, GGUFModelOptions{DType: Q8_0}, CheckpointSource(orig))
	})
	// A legacy .bin, a v2 .bin, GGUF f32 and Q8_0, and an HF folder with compressed shards.
	legacyZ := filepath.Join(dir, "legacy.bin")
	raw, _ := os.ReadFile(orig.Path)
	os.WriteFile(legacyZ, raw, 0o644)
	hfz := filepath.Join(dir, "hfz")
	if err := WriteHF(hfz, orig.Config, HFOptions{DType: F32, ShardBytes: 300 << 10, Compress: true}, CheckpointSource(orig)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		plain *Checkpoint
		path  string
	}{{orig, legacyZ}, {openT(t, v2), v2}, {gg, gg.Path}, {openT(t, q8), q8}} {
		z, err := CompressFileZstd(p.path)
		if err != nil {
			t.Fatal(err)
		}
		c := openT(t, z)
		if !c.Compressed || c.Format != p.plain.Format {
			t.Fatalf("%s: compressed %v format %s", z, c.Compressed, c.Format)
		}
		sameWeights(t, p.plain, c, 0)
		// Reading backwards restarts the stream and still gives the same bytes.
		last, first := c.Tensors[len(c.Tensors)-1], c.Tensors[0]
		lb, _ := last.Bytes()
		fb, err := first.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		pf, _ := p.plain.Tensor(first.Name)
		pb, _ := pf.Bytes()
		if first.DType != Q8_0 && (!bytes.Equal(fb, pb) || len(lb) == 0) {
			t.Fatalf("%s: out-of-order read differs", z)
		}
	}
	cz := openT(t, hfz)
	if !cz.Compressed || !strings.HasSuffix(cz.Files[0], ".safetensors.zst") {
		t.Fatalf("hf zstd files %v", cz.Files)
	}
	sameWeights(t, hf, cz, 0)
}

// TestZstdFileOrderNeedsNoRewind reads every tensor (bytes, then scales) in file order from compressed
// llama2.c v2, GGUF Q8_0 and FP8 HF files: the streams never rewind.
func TestZstdFileOrderNeedsNoRewind(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	p := writeFile(t, filepath.Join(dir, "v2.bin"), func(f *os.File) error { return WriteLlama2C(f, tinyConfig, 2, 4, RandomSource(1)) })
	paths = append(paths, p)
	cfg := tinyConfig
	cfg.Dim, cfg.FFN, cfg.HeadDim = 64, 96, 32
	p = writeFile(t, filepath.Join(dir, "q8.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, cfg, GGUFModelOptions{DType: Q8_0}, RandomSource(1))
	})
	paths = append(paths, p)
	for _, p := range paths {
		z, err := CompressFileZstd(p)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, z)
	}
	// Shards well over the 1 MiB recent window, so a rewind would show.
	big := fp8Config
	big.Dim, big.FFN, big.Heads, big.HeadDim = 512, 1024, 4, 128
	hf := filepath.Join(dir, "hf")
	if err := WriteHF(hf, big, HFOptions{DType: F8E4M3, FP8Scale: ScaleBlock, InputScales: true, ShardBytes: 3 << 20, Compress: true}, RandomSource(1)); err != nil {
		t.Fatal(err)
	}
	// A shard that stores all scales before all weights: only a separate scale stream avoids rewinds.
	first := filepath.Join(dir, "scales-first")
	os.MkdirAll(first, 0o755)
	cj, _ := hfConfigFile(big, HFOptions{Architecture: "LlamaForCausalLM", DType: F8E4M3, FP8Method: "compressed-tensors"}, ScaleTensor, []string{"lm_head"})
	os.WriteFile(filepath.Join(first, "config.json"), cj, 0o644)
	var scales, weights []WriteTensor
	for _, s := range CanonicalTensors(big) {
		v, _ := RandomSource(1)(s.Name, s.Shape)
		if len(s.Shape) == 2 && s.Name != "token_embd" && s.Name != "output" {
			q, sc := QuantizeFP8(v, s.Shape[0], s.Shape[1], ScaleTensor)
			b, _ := EncodeValues(F32, sc)
			scales = append(scales, BytesTensor(hfModule(s.Name)+".weight_scale", F32, []int{}, b))
			weights = append(weights, BytesTensor(hfName(s.Name), F8E4M3, s.Shape, q))
			continue
		}
		b, _ := EncodeValues(BF16, v)
		weights = append(weights, BytesTensor(hfName(s.Name), BF16, s.Shape, b))
	}
	st := writeFile(t, filepath.Join(first, "model.safetensors"), func(f *os.File) error {
		return WriteSafetensors(f, append(scales, weights...), nil)
	})
	if _, err := CompressFileZstd(st); err != nil {
		t.Fatal(err)
	}
	os.Remove(st)
	// And one with all scales after all weights.
	last := filepath.Join(dir, "scales-last")
	os.MkdirAll(last, 0o755)
	os.WriteFile(filepath.Join(last, "config.json"), cj, 0o644)
	st = writeFile(t, filepath.Join(last, "model.safetensors"), func(f *os.File) error {
		return WriteSafetensors(f, append(weights, scales...), nil)
	})
	if _, err := CompressFileZstd(st); err != nil {
		t.Fatal(err)
	}
	os.Remove(st)
	for _, p := range append(paths[2:], hf, first, last) {
		c := openT(t, p)
		for _, tn := range c.Tensors {
			if _, err := tn.Bytes(); err != nil {
				t.Fatal(err)
			}
			if _, err := tn.Scales(); err != nil {
				t.Fatal(err)
			}
		}
		for _, b := range c.blobs {
			if z, ok := b.(*zstdBlob); !ok || z.restarts != 0 {
				t.Fatalf("%s: blob %T rewound (%+v)", p, b, z)
			}
		}
	}
}
