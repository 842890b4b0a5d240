package model

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A .zst cut after its last tensor (only the frame's checksum, or a little more, missing) reads every
// tensor fine; VerifyStreams reads to the frame's end and reports it. The whole file verifies.
func TestZstdCutAfterLastTensor(t *testing.T) {
	// stories260K.bin: the reader never needs its last bytes, so only the check at the end can notice.
	src, err := os.ReadFile(stories(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := CompressZstd(&buf, bytes.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	z := filepath.Join(t.TempDir(), "stories260K.bin.zst")
	full := buf.Bytes()
	for _, cut := range []int{0, 1, 4} {
		os.WriteFile(z, full[:len(full)-cut], 0o644)
		c, err := Open(z)
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		for _, tn := range c.Tensors {
			if _, err := tn.Bytes(); err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
		}
		err = c.VerifyStreams()
		c.Close()
		if cut == 0 && err != nil {
			t.Errorf("the whole file: %v", err)
		}
		if cut > 0 && (err == nil || !strings.Contains(err.Error(), "stories260K.bin.zst") || !strings.Contains(err.Error(), "cut short")) {
			t.Errorf("%d bytes cut: VerifyStreams = %v, want an error naming the file", cut, err)
		}
	}
}

// A FIFO (or a device) as the model, or as a shard in a folder, is refused at once instead of blocking.
func TestOpenRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "m.gguf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	hf := filepath.Join(dir, "hf")
	if err := WriteHF(hf, tinyConfig, HFOptions{DType: F32}, RandomSource(1)); err != nil {
		t.Fatal(err)
	}
	shard := filepath.Join(hf, "model.safetensors")
	os.Remove(shard)
	if err := syscall.Mkfifo(shard, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, hf, "/dev/zero"} {
		done := make(chan error, 1)
		go func() {
			c, err := Open(p)
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "pipe") && !strings.Contains(err.Error(), "device") {
				t.Errorf("Open(%s) = %v, want an error saying it is not a regular file", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Open(%s) blocked", p)
		}
	}
}

// hfFolderWith writes an HF folder of tinyConfig whose config.json is edited by edit (nil: as written) and
// whose tensors are filtered by keep (nil: all).
func hfFolderWith(t *testing.T, cfg Config, edit func(map[string]any), keep func(hfName string) bool) string {
	t.Helper()
	dir := t.TempDir()
	cj, err := hfConfigFile(cfg, HFOptions{Architecture: "LlamaForCausalLM", DType: F32}, ScaleNone, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var m map[string]any
		json.Unmarshal(cj, &m)
		edit(m)
		cj, _ = json.Marshal(m)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644)
	var ts []WriteTensor
	full := cfg
	full.Tied = false
	for _, s := range CanonicalTensors(full) {
		if keep != nil && !keep(hfName(s.Name)) {
			continue
		}
		v, _ := RandomSource(1)(s.Name, s.Shape)
		b, _ := EncodeValues(F32, v)
		ts = append(ts, BytesTensor(hfName(s.Name), F32, s.Shape, b))
	}
	writeFile(t, filepath.Join(dir, "model.safetensors"), func(f *os.File) error { return WriteSafetensors(f, ts, nil) })
	return dir
}

// Negative or absurd sizes in config.json are errors naming the field, not silently replaced.
func TestHFConfigRefusesNegativeAndAbsurd(t *testing.T) {
	for _, c := range []struct {
		key  string
		val  any
		want string
	}{
		{"max_position_embeddings", -5, "max_position_embeddings = -5"},
		{"max_position_embeddings", 1 << 40, "max_position_embeddings = 1099511627776"},
		{"head_dim", -4, "head_dim = -4"},
		{"head_dim", 0, "head_dim = 0"},
	} {
		dir := hfFolderWith(t, tinyConfig, func(m map[string]any) { m[c.key] = c.val }, nil)
		wantErr(t, dir, "config.json", c.want)
	}
}

// A GGUF declaring a context of 2^31 positions is refused.
func TestGGUFAbsurdContext(t *testing.T) {
	cfg := tinyConfig
	cfg.Context = 1 << 31
	p := writeFile(t, filepath.Join(t.TempDir(), "m.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, cfg, GGUFModelOptions{DType: F32}, RandomSource(1))
	})
	wantErr(t, p, "context length 2147483648")
}

// A config with fewer layers than the file has tensors for would run a truncated model: refused.
func TestConfigWithFewerLayersThanTensors(t *testing.T) {
	dir := hfFolderWith(t, tinyConfig, func(m map[string]any) { m["num_hidden_layers"] = 1 }, nil)
	wantErr(t, dir, "blk.1.", "model.layers.1.", "layer 1", "config has 1 layers")
	p := writeFile(t, filepath.Join(t.TempDir(), "m.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, tinyConfig, GGUFModelOptions{DType: F32}, RandomSource(1))
	})
	data, _ := os.ReadFile(p)
	// llama.block_count is a u32 right after its key: patch 2 -> 1.
	key := []byte("llama.block_count")
	i := bytes.Index(data, key)
	if i < 0 {
		t.Fatal("no llama.block_count in the GGUF")
	}
	v := i + len(key) + 4 // after the value type
	if data[v] != 2 {
		t.Fatalf("llama.block_count value byte %d, want 2", data[v])
	}
	data[v] = 1
	os.WriteFile(p, data, 0o644)
	wantErr(t, p, "blk.1.", "config has 1 layers")
}

// tie_word_embeddings with the shared matrix stored only as lm_head.weight (no model.embed_tokens.weight)
// loads, with lm_head's values as the token embedding; without tying it is still a missing tensor.
func TestHFTiedStoredOnlyAsLMHead(t *testing.T) {
	tied := tinyConfig
	tied.Tied = true
	noEmbed := func(n string) bool { return n != "model.embed_tokens.weight" }
	dir := hfFolderWith(t, tied, nil, noEmbed)
	c := openT(t, dir)
	emb, err := c.Tensor("token_embd")
	if err != nil || !c.Config.Tied || c.Has("output") {
		t.Fatalf("token_embd %v, tied %v, has output %v", err, c.Config.Tied, c.Has("output"))
	}
	if emb.SourceName != "lm_head.weight" {
		t.Errorf("token_embd comes from %s", emb.SourceName)
	}
	got, _ := emb.Bytes()
	v, _ := RandomSource(1)("output", []int{tinyConfig.Vocab, tinyConfig.Dim})
	want, _ := EncodeValues(F32, v)
	if !bytes.Equal(got, want) {
		t.Errorf("token_embd is not lm_head's matrix")
	}
	c.Close()
	// Untied, the same tensors are missing the embedding.
	wantErr(t, hfFolderWith(t, tinyConfig, nil, noEmbed), "missing tensor token_embd", "model.embed_tokens.weight")
}
