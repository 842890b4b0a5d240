package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"kvc/model"
)

// llama31_70BFP8 is Llama-3.1-70B-Instruct-FP8's shape (Neural Magic compressed-tensors layout).
var llama31_70BFP8 = model.Config{Arch: "llama", Dim: 8192, Layers: 80, Heads: 64, KVHeads: 8, HeadDim: 128, FFN: 28672,
	Vocab: 128256, Context: 131072, NormEps: 1e-5, RopeLayout: model.RopeRotateHalf, RopeTheta: 500000,
	RopeScaling: &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192},
	BOS:         128000, EOS: []int{128001, 128008, 128009}}

// write70B lays out header-only shards: real safetensors headers, data regions as holes.
func write70B(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Llama-3.1-70B-Instruct-FP8")
	err := model.WriteHF(dir, llama31_70BFP8, model.HFOptions{DType: model.F8E4M3, FP8Method: "compressed-tensors",
		FP8Scale: model.ScaleTensor, InputScales: true, ShardBytes: 5e9, Sparse: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPlan70BFP8FromHeaders(t *testing.T) {
	dir := write70B(t)
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 14 || len(shards) > 16 {
		t.Fatalf("%d shards, want about 15", len(shards))
	}
	var out bytes.Buffer
	if err := plan([]string{"--model", dir, "--mem", "80GB", "--ctx", "8192", "--kv-rate", "8", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	// Independent count from the shapes: 7 fp8 projections per layer, bf16 embeddings, lm_head and norms,
	// one f32 weight scale per projection.
	const (
		L, d, ffn, vocab, kvDim = 80, 8192, 28672, 128256, 8 * 128
	)
	fp8 := int64(L) * (2*d*d + 2*kvDim*d + 3*d*ffn)
	bf16 := int64(2*vocab*d*2) + int64((2*L+1)*d*2)
	scales := int64(L * 7 * 4)
	weights := fp8 + bf16 + scales
	if weights < 72.6e9 || weights > 72.8e9 || fp8 < 68.4e9 || fp8 > 68.5e9 {
		t.Fatalf("independent count %d (fp8 %d) is not the expected ~72.7 GB", weights, fp8)
	}
	if got := int64(r["weights_bytes"].(float64)); got != weights {
		t.Fatalf("weights_bytes %d, want %d", got, weights)
	}
	by := r["weights_by_dtype"].(map[string]any)
	if int64(by["fp8-e4m3"].(float64)) != fp8 || int64(by["bf16"].(float64)) != bf16 {
		t.Fatalf("by dtype %v, want fp8 %d bf16 %d", by, fp8, bf16)
	}
	kvPerToken := int64(2 * L * 8 * 128 * 2)
	if kvPerToken != 327680 || int64(r["kv_bytes_per_token"].(float64)) != kvPerToken {
		t.Fatalf("kv_bytes_per_token %v, want %d", r["kv_bytes_per_token"], kvPerToken)
	}
	// 80 GB - 72.66 GB - 4 GB margin leaves ~3.3 GB: 16-slot blocks of 16*(2*128*2+8) bytes.
	mem := int64(80e9)
	pool := mem - weights - mem/20
	blocks := pool / (16 * (2*128*2 + 8))
	perSeq := int64(L * 8 * 8192 / 16)
	perSeqZ := int64(L * 8 * 8192 / 8 / 16)
	if int64(r["kv_pool_bytes"].(float64)) != pool || int64(r["max_sequences"].(float64)) != blocks/perSeq ||
		int64(r["max_sequences_compressed"].(float64)) != blocks/perSeqZ || r["fits"] != (blocks/perSeq >= 1) {
		t.Fatalf("pool %v seqs %v/%v fits %v; want %d, %d, %d", r["kv_pool_bytes"], r["max_sequences"], r["max_sequences_compressed"], r["fits"],
			pool, blocks/perSeq, blocks/perSeqZ)
	}
	if blocks/perSeq != 1 || blocks/perSeqZ != 9 {
		t.Fatalf("expected 1 uncompressed and 9 compressed 8K sequences, got %d and %d", blocks/perSeq, blocks/perSeqZ)
	}
	// 24 GiB does not hold the weights.
	out.Reset()
	if err := plan([]string{"--model", dir, "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(out.Bytes(), &r)
	if r["fits"] != false || r["kv_pool_bytes"].(float64) != 0 {
		t.Fatalf("24GiB: fits %v pool %v", r["fits"], r["kv_pool_bytes"])
	}
}

func TestInspect70BFP8(t *testing.T) {
	dir := write70B(t)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"chat_template":"{{ messages }}"}`), 0o644)
	var out bytes.Buffer
	if err := inspect([]string{dir, "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r inspectReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	c := r.Config
	if r.Format != "hf" || r.Arch != "LlamaForCausalLM" || c.Layers != 80 || c.KVHeads != 8 || c.Context != 131072 ||
		c.RopeScaling == nil || c.RopeScaling.Factor != 8 || c.Tied || len(c.EOS) != 3 || r.Tensors != 2+80*9+1 {
		t.Fatalf("report %+v", r)
	}
	if r.DTypes["fp8-e4m3"].Tensors != 560 || r.DTypes["bf16"].Tensors != 3+160 || r.DTypes["fp8-e4m3"].ScaleBytes != 560*4 {
		t.Fatalf("dtypes %+v", r.DTypes)
	}
	if r.Tokenizer == nil || r.Tokenizer.File != "tokenizer.json" || r.ChatTmpl == nil {
		t.Fatalf("tokenizer %+v template %+v", r.Tokenizer, r.ChatTmpl)
	}
	out.Reset()
	if err := inspect([]string{dir}, &out); err != nil || !bytes.Contains(out.Bytes(), []byte("compressed-tensors")) {
		t.Fatalf("text inspect: %v\n%s", err, out.String())
	}
}
