package model

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Checkpoint is an opened model file or folder: its normalized config and its tensors under canonical
// names. Tensor data stays in the files (mmap'd, or streamed for .zst) until Bytes/Scales is called.
type Checkpoint struct {
	Format     string    // "llama2c" (legacy .bin), "llama2c-v1", "llama2c-v2", "safetensors", "hf", "gguf"
	Path       string    // what was opened (file or folder)
	Arch       string    // the source's own architecture name (e.g. "LlamaForCausalLM", "llama")
	Config     Config    //
	Tensors    []*Tensor // canonical tensors, in file order (shard by shard)
	Quant      string    // human description of the weight quantization ("none", "fp8 compressed-tensors per-tensor", ...)
	Files      []string  // the data files, in the order their tensors appear
	Compressed bool      // files are zstd streams: read tensors in file order
	Notes      []string  // what a reader skipped or assumed (unused source tensors, defaults)

	byName map[string]*Tensor
	meta   map[string]any
	blobs  []blob
}

// Tensor returns the tensor with a canonical name; the error names it and the checkpoint.
func (c *Checkpoint) Tensor(name string) (*Tensor, error) {
	if t, ok := c.byName[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%s: tensor %q not found", c.Path, name)
}

// Has reports whether the checkpoint has a canonical tensor.
func (c *Checkpoint) Has(name string) bool { _, ok := c.byName[name]; return ok }

// Dir is the folder holding the checkpoint (the folder itself for HF folders): tokenizer files live here.
func (c *Checkpoint) Dir() string {
	if c.Format == "hf" {
		return c.Path
	}
	return filepath.Dir(c.Path)
}

// Metadata is the GGUF key/value metadata (nil for other formats). Arrays of strings are []string, of f32
// []float32, of i32 []int32, other arrays []any; scalars are their Go types (uint8 ... float64, bool, string).
func (c *Checkpoint) Metadata() map[string]any { return c.meta }

// Close unmaps and closes every file; Bytes and Scales fail afterwards.
func (c *Checkpoint) Close() error {
	var first error
	for _, b := range c.blobs {
		if err := b.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.blobs = nil
	return first
}

// VerifyStreams reads compressed files to their end, checking each zstd frame's checksum: call it after
// reading the tensors (in file order that costs only the rest of each stream), since a file cut after its
// last tensor would otherwise go unnoticed. Plain files have nothing to check.
func (c *Checkpoint) VerifyStreams() error {
	for _, b := range c.blobs {
		if z, ok := b.(*zstdBlob); ok {
			if err := z.verifyEnd(); err != nil {
				return err
			}
		}
	}
	return nil
}

// WeightBytes sums the stored bytes of all tensors, scales included.
func (c *Checkpoint) WeightBytes() int64 {
	var n int64
	for _, t := range c.Tensors {
		n += TensorStoredBytes(t)
	}
	return n
}

// TensorStoredBytes is a tensor's element bytes plus its f32 scales (as the engine keeps them).
func TensorStoredBytes(t *Tensor) int64 {
	n := t.DataBytes()
	switch {
	case t.DType == Q8_0 && t.Group > 0:
		n += t.Elems() / int64(t.Group) * 4
	case t.DType == F8E4M3:
		switch t.ScaleKind {
		case ScaleTensor:
			n += 4
		case ScaleChannel:
			n += int64(t.Rows()) * 4
		case ScaleBlock:
			n += int64((t.Rows()+127)/128) * int64((t.Cols()+127)/128) * 4
		}
	}
	return n
}

// Open reads a checkpoint's headers: a llama2.c .bin (legacy or versioned), a .safetensors file, a Hugging
// Face folder (config.json + safetensors shards), or a .gguf file; any file may be zstd-compressed (.zst).
func Open(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("model: %s is %s, not a model file or folder", path, fileKind(st.Mode()))
	}
	var c *Checkpoint
	if st.IsDir() {
		c, err = openHFFolder(path)
	} else {
		c, err = openFile(path)
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	if err := c.finish(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func openFile(path string) (*Checkpoint, error) {
	b, err := openBlob(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	c := &Checkpoint{Path: path, Files: []string{path}, blobs: []blob{b}, Compressed: isZstd(path)}
	var head [8]byte
	n, _ := b.ReadAt(head[:], 0)
	base := strings.TrimSuffix(path, ".zst")
	switch {
	case n >= 4 && string(head[:4]) == "GGUF":
		err = c.readGGUF(b)
	case strings.HasSuffix(base, ".safetensors"):
		err = c.readSafetensorsFile(b)
	case n >= 4 && binary.LittleEndian.Uint32(head[:]) == llama2cMagic:
		err = c.readLlama2CVersioned(b)
	case strings.HasSuffix(base, ".gguf"):
		err = fmt.Errorf("%s: not a GGUF file (magic %q, want \"GGUF\")", path, head[:n])
	default:
		err = c.readLlama2CLegacy(b)
		if err != nil && !strings.HasSuffix(base, ".bin") {
			err = fmt.Errorf("%w (read as a legacy llama2.c .bin: the name says neither .gguf nor .safetensors and the file has no GGUF or llama2.c magic)", err)
		}
	}
	return c, err
}

// add registers a tensor (canonical name) in file order.
func (c *Checkpoint) add(t *Tensor) error {
	if c.byName == nil {
		c.byName = map[string]*Tensor{}
	}
	if old, ok := c.byName[t.Name]; ok {
		return fmt.Errorf("%s: tensor %q appears twice (%s and %s)", t.File, t.Name, old.SourceName, t.SourceName)
	}
	c.byName[t.Name] = t
	c.Tensors = append(c.Tensors, t)
	return nil
}

// viewTensor is a tensor whose bytes are one range of a file.
func viewTensor(b blob, name, src string, dt DType, shape []int, off int64) *Tensor {
	t := &Tensor{Name: name, SourceName: src, File: b.Name(), DType: dt, Shape: shape}
	n := t.DataBytes()
	t.read = func() ([]byte, error) {
		v, err := b.View(off, n)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", src, err)
		}
		return v, nil
	}
	return t
}

// finish checks the config and that every tensor the config implies is present with its shape.
func (c *Checkpoint) finish() error {
	cfg := &c.Config
	if cfg.Arch == "" {
		cfg.Arch = "llama"
	}
	if cfg.Dim <= 0 || cfg.Layers <= 0 || cfg.Heads <= 0 || cfg.KVHeads <= 0 || cfg.FFN <= 0 || cfg.Vocab <= 0 || cfg.HeadDim <= 0 {
		return fmt.Errorf("%s: config needs positive dim, layers, heads, kv_heads, head_dim, ffn, vocab; got dim %d layers %d heads %d kv_heads %d head_dim %d ffn %d vocab %d",
			c.Path, cfg.Dim, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.HeadDim, cfg.FFN, cfg.Vocab)
	}
	if cfg.Heads%cfg.KVHeads != 0 {
		return fmt.Errorf("%s: heads %d not a multiple of kv_heads %d", c.Path, cfg.Heads, cfg.KVHeads)
	}
	if cfg.HeadDim%2 != 0 {
		return fmt.Errorf("%s: head_dim %d is odd (RoPE rotates pairs)", c.Path, cfg.HeadDim)
	}
	if cfg.Context <= 0 || cfg.Context > MaxContext {
		return fmt.Errorf("%s: context length %d, want 1..%d", c.Path, cfg.Context, MaxContext)
	}
	if cfg.Tied && !c.Has("token_embd") && c.Has("output") {
		// Tied checkpoints may store the shared matrix only as the output projection (Hugging Face
		// lm_head.weight without model.embed_tokens.weight); transformers loads them, so do we.
		t := c.byName["output"]
		delete(c.byName, "output")
		t.Name = "token_embd"
		c.byName["token_embd"] = t
		c.Notes = append(c.Notes, fmt.Sprintf("tied embeddings stored only as the output projection %s: used as the token embedding", t.SourceName))
	}
	if cfg.Tied && c.Has("output") {
		// The file has its own output projection: use it.
		cfg.Tied = false
		c.Notes = append(c.Notes, "config says tied embeddings but the checkpoint has an output tensor: using it")
	}
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	want := map[string][]int{"token_embd": {cfg.Vocab, cfg.Dim}, "output_norm": {cfg.Dim}}
	if !cfg.Tied {
		want["output"] = []int{cfg.Vocab, cfg.Dim}
	}
	for l := 0; l < cfg.Layers; l++ {
		for n, s := range map[string][]int{
			"attn_norm": {cfg.Dim}, "attn_q": {q, cfg.Dim}, "attn_k": {kv, cfg.Dim}, "attn_v": {kv, cfg.Dim},
			"attn_output": {cfg.Dim, q}, "ffn_norm": {cfg.Dim}, "ffn_gate": {cfg.FFN, cfg.Dim},
			"ffn_up": {cfg.FFN, cfg.Dim}, "ffn_down": {cfg.Dim, cfg.FFN},
		} {
			want[LayerTensor(l, n)] = s
		}
	}
	for _, t := range c.Tensors {
		var l int
		if n, _ := fmt.Sscanf(t.Name, "blk.%d.", &l); n == 1 && l >= cfg.Layers {
			return fmt.Errorf("%s: tensor %s (%s) is for layer %d but the config has %d layers", t.File, t.Name, t.SourceName, l, cfg.Layers)
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t, ok := c.byName[n]
		if !ok {
			return fmt.Errorf("%s: missing tensor %s%s", c.Path, n, sourceHint(c.Format, n))
		}
		if !equalShape(squeeze(t.Shape), want[n]) {
			return fmt.Errorf("%s: tensor %s (%s): shape %v, want %v from the config", t.File, n, t.SourceName, t.Shape, want[n])
		}
	}
	return nil
}

// squeeze drops leading 1s so [1, n] vectors compare as [n].
func squeeze(s []int) []int {
	for len(s) > 1 && s[0] == 1 {
		s = s[1:]
	}
	return s
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sourceHint names the tensor a format would have stored for a canonical name.
func sourceHint(format, canonical string) string {
	var s string
	switch format {
	case "hf", "safetensors":
		s = hfName(canonical)
	case "gguf":
		s = canonical + ".weight"
	}
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
