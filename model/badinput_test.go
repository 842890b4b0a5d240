package model

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var tinyConfig = Config{Dim: 8, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 4, FFN: 12, Vocab: 16, Context: 32,
	NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}}

// rawST writes a safetensors file from a literal header and n data bytes.
func rawST(t *testing.T, path, header string, n int) string {
	t.Helper()
	b := make([]byte, 8, 8+len(header)+n)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(append(b, header...), make([]byte, n)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantErr opens path and checks the error mentions every fragment and is one line.
func wantErr(t *testing.T, path string, frags ...string) {
	t.Helper()
	c, err := Open(path)
	if err == nil {
		c.Close()
		t.Fatalf("%s: opened, want an error with %q", path, frags)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Fatalf("error is not one line: %q", msg)
	}
	for _, f := range frags {
		if !strings.Contains(msg, f) {
			t.Fatalf("error %q does not mention %q", msg, f)
		}
	}
}

func TestSafetensorsBadInput(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n+".safetensors") }
	// Header length over 100 MB.
	big := make([]byte, 16)
	binary.LittleEndian.PutUint64(big, 200<<20)
	os.WriteFile(p("big"), big, 0o644)
	wantErr(t, p("big"), "big.safetensors", "100 MB")
	// Header length beyond the file.
	binary.LittleEndian.PutUint64(big, 1000)
	os.WriteFile(p("short"), big, 0o644)
	wantErr(t, p("short"), "short.safetensors", "truncated")
	os.WriteFile(p("tiny"), []byte{1, 2}, 0o644)
	wantErr(t, p("tiny"), "tiny.safetensors", "truncated")
	wantErr(t, rawST(t, p("outside"), `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8), "outside.safetensors", `"a"`, "outside")
	wantErr(t, rawST(t, p("overlap"), `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, 24),
		"overlap.safetensors", `"a"`, `"b"`, "overlap")
	wantErr(t, rawST(t, p("length"), `{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`, 12), "length.safetensors", `"a"`, "want 16")
	wantErr(t, rawST(t, p("dtype"), `{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}`, 4), "dtype.safetensors", `"a"`, `"I8"`)
	wantErr(t, rawST(t, p("dup"), `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "dup.safetensors", "duplicate")
	wantErr(t, rawST(t, p("json"), `{"a":`, 0), "json.safetensors")
	wantErr(t, rawST(t, p("neg"), `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "neg.safetensors", `"a"`, "shape")
	// Valid header but no config.json beside it.
	wantErr(t, rawST(t, p("noconfig"), `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), "noconfig.safetensors", "config.json")
}

func TestHFBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, opt HFOptions) string {
		p := filepath.Join(dir, name)
		if err := WriteHF(p, tinyConfig, opt, RandomSource(1)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Index pointing at a missing shard.
	p := write("missing-shard", HFOptions{DType: F32, ShardBytes: 1500})
	os.Remove(filepath.Join(p, "model-00002-of-00004.safetensors"))
	wantErr(t, p, "model.safetensors.index.json", "model-00002-of-00004.safetensors", "missing", "model.layers")
	// Truncated shard: the last tensor's range leaves the file.
	p = write("trunc", HFOptions{DType: F32})
	f := filepath.Join(p, "model.safetensors")
	st, _ := os.Stat(f)
	os.Truncate(f, st.Size()-3)
	wantErr(t, p, "model.safetensors", "lm_head.weight", "outside")
	// Unknown architecture lists the supported ones.
	p = write("arch", HFOptions{DType: F32, Architecture: "GPT2LMHeadModel"})
	wantErr(t, p, "config.json", "GPT2LMHeadModel", "LlamaForCausalLM, MistralForCausalLM")
	// Missing tensor, named canonically and as stored.
	p = filepath.Join(dir, "missing-tensor")
	os.MkdirAll(p, 0o755)
	cj, _ := hfConfigFile(tinyConfig, HFOptions{Architecture: "MistralForCausalLM", DType: F32}, ScaleNone, nil)
	os.WriteFile(filepath.Join(p, "config.json"), cj, 0o644)
	var ts []WriteTensor
	for _, s := range CanonicalTensors(tinyConfig) {
		if s.Name != "blk.1.ffn_up" {
			v, _ := RandomSource(1)(s.Name, s.Shape)
			b, _ := EncodeValues(F32, v)
			ts = append(ts, BytesTensor(hfName(s.Name), F32, s.Shape, b))
		}
	}
	writeFile(t, filepath.Join(p, "model.safetensors"), func(f *os.File) error { return WriteSafetensors(f, ts, nil) })
	wantErr(t, p, "missing-tensor", "blk.1.ffn_up", "model.layers.1.mlp.up_proj.weight")
	// Wrong shape against the config.
	cfg := tinyConfig
	cfg.FFN = 16
	cj, _ = hfConfigFile(cfg, HFOptions{Architecture: "LlamaForCausalLM", DType: F32}, ScaleNone, nil)
	os.WriteFile(filepath.Join(p, "config.json"), cj, 0o644)
	wantErr(t, p, "model.safetensors", "blk.0.ffn_down", "model.layers.0.mlp.down_proj.weight", "want [8 16]")
	// A folder without config.json.
	wantErr(t, t.TempDir(), "config.json")
}

// patchTensor overwrites a tensor's data in a safetensors file.
func patchTensor(t *testing.T, file, name string, data []byte) {
	t.Helper()
	b, err := openMmap(file)
	if err != nil {
		t.Fatal(err)
	}
	h, err := readSafetensorsHeader(b)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range h.entries {
		if e.Name == name {
			f, _ := os.OpenFile(file, os.O_RDWR, 0)
			f.WriteAt(data, e.Begin)
			f.Close()
			return
		}
	}
	t.Fatalf("%s not in %s", name, file)
}

func TestFP8BadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		val  float32
		want string
	}{{"nan", float32(math.NaN()), "NaN"}, {"zero", 0, "is 0"}, {"inf", float32(math.Inf(1)), "+Inf"}} {
		p := filepath.Join(dir, tc.name)
		if err := WriteHF(p, fp8Config, HFOptions{DType: F8E4M3, FP8Scale: ScaleChannel}, RandomSource(2)); err != nil {
			t.Fatal(err)
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(tc.val))
		patchTensor(t, filepath.Join(p, "model.safetensors"), "model.layers.1.self_attn.v_proj.weight_scale", b[:])
		c := openT(t, p)
		v, _ := c.Tensor("blk.1.attn_v")
		_, err := v.Scales()
		if err == nil || !strings.Contains(err.Error(), "model.layers.1.self_attn.v_proj.weight_scale") || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s scale: %v", tc.name, err)
		}
		if _, err := v.Float32(); err == nil {
			t.Fatal("Float32 with a bad scale succeeded")
		}
	}
	// An F8 weight without its scale tensor, and an F8 folder without quantization_config.
	p := filepath.Join(dir, "noscale")
	os.MkdirAll(p, 0o755)
	cj, _ := hfConfigFile(fp8Config, HFOptions{Architecture: "LlamaForCausalLM", DType: F8E4M3, FP8Method: "compressed-tensors"}, ScaleTensor, []string{"lm_head"})
	os.WriteFile(filepath.Join(p, "config.json"), cj, 0o644)
	var ts []WriteTensor
	for _, s := range CanonicalTensors(fp8Config) {
		dt := BF16
		if len(s.Shape) == 2 && s.Name != "token_embd" && s.Name != "output" {
			dt = F8E4M3
		}
		ts = append(ts, BytesTensor(hfName(s.Name), dt, s.Shape, make([]byte, shapeElems(s.Shape)*int64(dt.ElemBytes()))))
	}
	writeFile(t, filepath.Join(p, "model.safetensors"), func(f *os.File) error { return WriteSafetensors(f, ts, nil) })
	wantErr(t, p, "model.safetensors", "model.layers.0.self_attn.q_proj.weight", "scale model.layers.0.self_attn.q_proj.weight_scale is missing")
	cj, _ = hfConfigFile(fp8Config, HFOptions{Architecture: "LlamaForCausalLM", DType: F32}, ScaleNone, nil)
	os.WriteFile(filepath.Join(p, "config.json"), cj, 0o644)
	wantErr(t, p, "model.safetensors", "F8_E4M3", "quantization_config")
	// A scale of the wrong shape for the declared strategy.
	p = filepath.Join(dir, "shape")
	WriteHF(p, fp8Config, HFOptions{DType: F8E4M3, FP8Scale: ScaleChannel}, RandomSource(2))
	js, _ := os.ReadFile(filepath.Join(p, "config.json"))
	os.WriteFile(filepath.Join(p, "config.json"), []byte(strings.Replace(string(js), `"strategy": "channel"`, `"strategy": "tensor"`, 1)), 0o644)
	wantErr(t, p, "weight_scale", "per-tensor")
	// Unsupported quantization method.
	os.WriteFile(filepath.Join(p, "config.json"), []byte(strings.Replace(string(js), `"compressed-tensors"`, `"gptq"`, 1)), 0o644)
	wantErr(t, p, "config.json", "gptq")
}

func TestGGUFBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "good.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, tinyConfig, GGUFModelOptions{DType: F32}, RandomSource(5))
	})
	openT(t, good)
	raw, _ := os.ReadFile(good)
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	wantErr(t, put("trunc.gguf", raw[:len(raw)-5]), "trunc.gguf", "output.weight", "outside")
	wantErr(t, put("head.gguf", raw[:100]), "head.gguf", "kv count", "exceeds")
	wantErr(t, put("head2.gguf", raw[:300]), "head2.gguf", "at byte")
	v1 := append([]byte{}, raw...)
	v1[4] = 1
	wantErr(t, put("v1.gguf", v1), "v1.gguf", "version 1")
	// A Q4_K tensor is refused by name.
	q4 := writeFile(t, filepath.Join(dir, "q4.gguf"), func(f *os.File) error {
		return WriteGGUF(f, []GGUFKV{{"general.architecture", "llama"}}, []WriteTensor{BytesTensor("token_embd.weight", F32, []int{8}, make([]byte, 32))}, 0)
	})
	qb, _ := os.ReadFile(q4)
	i := strings.Index(string(qb), "token_embd.weight") + len("token_embd.weight") + 4 + 8
	binary.LittleEndian.PutUint32(qb[i:], 12)
	wantErr(t, put("q4.gguf", qb), "q4.gguf", "token_embd.weight", "Q4_K")
	// A huge array count cannot allocate: it is checked against the bytes left.
	huge := writeFile(t, filepath.Join(dir, "huge.gguf"), func(f *os.File) error {
		return WriteGGUF(f, []GGUFKV{{"general.architecture", "llama"}, {"x", []int32{1}}}, nil, 0)
	})
	hb, _ := os.ReadFile(huge)
	j := strings.Index(string(hb), "x") + 1 + 4 + 4
	binary.LittleEndian.PutUint64(hb[j:], 1<<50)
	wantErr(t, put("huge.gguf", hb), "huge.gguf", "array x", "exceeds")
	// Another architecture.
	gp := writeFile(t, filepath.Join(dir, "gpt2.gguf"), func(f *os.File) error {
		return WriteGGUF(f, []GGUFKV{{"general.architecture", "gpt2"}}, nil, 0)
	})
	wantErr(t, gp, "gpt2.gguf", `"gpt2"`, "supported: llama")
	// Missing required key.
	np := writeFile(t, filepath.Join(dir, "nokey.gguf"), func(f *os.File) error {
		return WriteGGUF(f, []GGUFKV{{"general.architecture", "llama"}}, nil, 0)
	})
	wantErr(t, np, "nokey.gguf", "llama.embedding_length")
}

func TestLoneSafetensorsWithMetadataConfig(t *testing.T) {
	dir := t.TempDir()
	cj, _ := hfConfigFile(tinyConfig, HFOptions{Architecture: "LlamaForCausalLM", DType: F16}, ScaleNone, nil)
	var ts []WriteTensor
	for _, s := range CanonicalTensors(tinyConfig) {
		v, _ := RandomSource(1)(s.Name, s.Shape)
		b, _ := EncodeValues(F16, v)
		ts = append(ts, BytesTensor(hfName(s.Name), F16, s.Shape, b))
	}
	p := writeFile(t, filepath.Join(dir, "m.safetensors"), func(f *os.File) error {
		return WriteSafetensors(f, ts, map[string]string{"config": string(cj)})
	})
	c := openT(t, p)
	if c.Format != "safetensors" || c.Config.FFN != 12 || c.Config.RopeLayout != RopeRotateHalf {
		t.Fatalf("lone safetensors: %s %+v", c.Format, c.Config)
	}
	x, _ := c.Tensor("blk.1.ffn_down")
	got, _ := x.Float32()
	want, _ := RandomSource(1)("blk.1.ffn_down", []int{8, 12})
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-3 {
			t.Fatalf("ffn_down[%d] %v want %v", i, got[i], want[i])
		}
	}
}

func TestHFTiedWithOutputAndBias(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig
	var ts []WriteTensor
	for _, s := range CanonicalTensors(cfg) {
		v, _ := RandomSource(1)(s.Name, s.Shape)
		b, _ := EncodeValues(F32, v)
		ts = append(ts, BytesTensor(hfName(s.Name), F32, s.Shape, b))
	}
	tied := cfg
	tied.Tied = true
	cj, _ := hfConfigFile(tied, HFOptions{Architecture: "LlamaForCausalLM", DType: F32}, ScaleNone, nil)
	os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644)
	writeFile(t, filepath.Join(dir, "model.safetensors"), func(f *os.File) error { return WriteSafetensors(f, ts, nil) })
	c := openT(t, dir)
	if c.Config.Tied || !c.Has("output") || !strings.Contains(strings.Join(c.Notes, ";"), "tied") {
		t.Fatalf("tied config with lm_head: tied %v notes %v", c.Config.Tied, c.Notes)
	}
	c.Close()
	ts = append(ts, BytesTensor("model.layers.0.self_attn.q_proj.bias", F32, []int{8}, make([]byte, 32)))
	writeFile(t, filepath.Join(dir, "model.safetensors"), func(f *os.File) error { return WriteSafetensors(f, ts, nil) })
	wantErr(t, dir, "model.layers.0.self_attn.q_proj.bias", "biases")
	// A non-checkpoint file gets a hint about what was tried.
	p := filepath.Join(dir, "notes.txt")
	os.WriteFile(p, []byte("hello, this is not a model at all"), 0o644)
	wantErr(t, p, "notes.txt", "legacy llama2.c")
}
