package model

import (
	"encoding/binary"
	"fmt"
	"io"
)

// llama2.c checkpoints.
//
// Legacy (run.c): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
// vocab_size means an unshared classifier follows), then f32 arrays: token_embedding [vocab, dim],
// rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim],
// rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
// freq_cis_real and freq_cis_imag [seq_len * head_size / 2] each (skipped), then wcls [vocab, dim] if unshared.
//
// Versioned (export.py): a 256-byte header: uint32 magic "ak42", int32 version, the same 7 int32,
// uint8 shared_classifier, and for version 2 an int32 group size at byte 37; zero padding to 256.
// Version 1: f32 rms_att for all layers, rms_ffn for all layers, rms_final, token_embedding, wq..., wk...,
// wv..., wo..., w1..., w2..., w3... (each stacked over layers), then wcls if not shared.
// Version 2: the same norms in f32, then tok_embedding, wq..., wk..., wv..., wo..., w1..., w2..., w3...,
// (wcls), each layer's tensor as Q8_0: its int8 values followed by its f32 scales, one per group of GS
// (runq.c's init_quantized_tensors).

const llama2cMagic = 0x616b3432

// llama2cHeader holds the 7 header ints.
type llama2cHeader struct {
	Dim, Hidden, Layers, Heads, KVHeads, Vocab, SeqLen int
	Shared                                             bool
}

func parseLlama2CParams(path string, h []int32) (llama2cHeader, error) {
	p := llama2cHeader{Dim: int(h[0]), Hidden: int(h[1]), Layers: int(h[2]), Heads: int(h[3]), KVHeads: int(h[4]), Vocab: int(h[5]), SeqLen: int(h[6])}
	p.Shared = p.Vocab > 0
	if p.Vocab < 0 {
		p.Vocab = -p.Vocab
	}
	names := []string{"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"}
	vals := []int{p.Dim, p.Hidden, p.Layers, p.Heads, p.KVHeads, p.Vocab, p.SeqLen}
	for i, v := range vals {
		// 1<<24 keeps every product below in int64 and rejects garbage headers early.
		if v <= 0 || v > 1<<24 {
			return p, fmt.Errorf("%s: llama2.c header field %s = %d, want 1..%d", path, names[i], v, 1<<24)
		}
	}
	if p.Dim%p.Heads != 0 {
		return p, fmt.Errorf("%s: llama2.c header: dim %d not a multiple of n_heads %d", path, p.Dim, p.Heads)
	}
	if p.Heads%p.KVHeads != 0 {
		return p, fmt.Errorf("%s: llama2.c header: n_heads %d not a multiple of n_kv_heads %d", path, p.Heads, p.KVHeads)
	}
	if (p.Dim/p.Heads)%2 != 0 {
		return p, fmt.Errorf("%s: llama2.c header: head size %d is odd", path, p.Dim/p.Heads)
	}
	return p, nil
}

func (p llama2cHeader) config() Config {
	return Config{
		Arch: "llama", Dim: p.Dim, Layers: p.Layers, Heads: p.Heads, KVHeads: p.KVHeads, HeadDim: p.Dim / p.Heads,
		FFN: p.Hidden, Vocab: p.Vocab, Context: p.SeqLen, NormEps: 1e-5, RopeLayout: RopeInterleaved,
		RopeTheta: 10000, Tied: p.Shared, BOS: 1, EOS: []int{2},
	}
}

// llama2cMatrix is one stacked weight array in the file's order.
type llama2cMatrix struct {
	canon      string // per-layer canonical suffix, or a global name
	src        string
	rows, cols int
	perLayer   bool
}

func llama2cMatrices(p llama2cHeader) []llama2cMatrix {
	kv := p.Dim / p.Heads * p.KVHeads
	return []llama2cMatrix{
		{"attn_q", "wq", p.Dim, p.Dim, true},
		{"attn_k", "wk", kv, p.Dim, true},
		{"attn_v", "wv", kv, p.Dim, true},
		{"attn_output", "wo", p.Dim, p.Dim, true},
		{"ffn_gate", "w1", p.Hidden, p.Dim, true},
		{"ffn_down", "w2", p.Dim, p.Hidden, true},
		{"ffn_up", "w3", p.Hidden, p.Dim, true},
	}
}

func readHeaderInts(b blob, off int64, n int) ([]int32, error) {
	buf := make([]byte, 4*n)
	if k, err := b.ReadAt(buf, off); k < len(buf) {
		return nil, fmt.Errorf("%s: truncated llama2.c header: %d of %d bytes (%v)", b.Name(), int(off)+k, int(off)+len(buf), err)
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, nil
}

// checkSize compares the size the header implies with the file (skipped for streams of unknown size).
func checkSize(b blob, want int64, what string) error {
	if b.Size() >= 0 && b.Size() != want {
		return fmt.Errorf("%s: %s implies %d bytes, the file has %d", b.Name(), what, want, b.Size())
	}
	return nil
}

func (c *Checkpoint) readLlama2CLegacy(b blob) error {
	c.Format, c.Arch, c.Quant = "llama2c", "llama2c", "none (f32)"
	h, err := readHeaderInts(b, 0, 7)
	if err != nil {
		return err
	}
	p, err := parseLlama2CParams(b.Name(), h)
	if err != nil {
		return err
	}
	c.Config = p.config()
	L, dim, hs := int64(p.Layers), int64(p.Dim), int64(p.Dim/p.Heads)
	off := int64(28)
	total := off + 4*(int64(p.Vocab)*dim+2*L*dim+dim+2*int64(p.SeqLen)*hs/2)
	for _, m := range llama2cMatrices(p) {
		total += 4 * L * int64(m.rows) * int64(m.cols)
	}
	if !p.Shared {
		total += 4 * int64(p.Vocab) * dim
	}
	if err := checkSize(b, total, fmt.Sprintf("the legacy llama2.c header (dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d, shared %v)",
		p.Dim, p.Hidden, p.Layers, p.Heads, p.KVHeads, p.Vocab, p.SeqLen, p.Shared)); err != nil {
		return err
	}
	add := func(name, src string, shape []int) error {
		t := viewTensor(b, name, src, F32, shape, off)
		off += t.DataBytes()
		return c.add(t)
	}
	addNorms := func(canon, src string) error {
		for l := 0; l < p.Layers; l++ {
			if err := add(LayerTensor(l, canon), fmt.Sprintf("%s[%d]", src, l), []int{p.Dim}); err != nil {
				return err
			}
		}
		return nil
	}
	addMatrix := func(m llama2cMatrix) error {
		for l := 0; l < p.Layers; l++ {
			if err := add(LayerTensor(l, m.canon), fmt.Sprintf("%s[%d]", m.src, l), []int{m.rows, m.cols}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := add("token_embd", "token_embedding_table", []int{p.Vocab, p.Dim}); err != nil {
		return err
	}
	if err := addNorms("attn_norm", "rms_att_weight"); err != nil {
		return err
	}
	ms := llama2cMatrices(p)
	for _, m := range ms[:4] {
		if err := addMatrix(m); err != nil {
			return err
		}
	}
	if err := addNorms("ffn_norm", "rms_ffn_weight"); err != nil {
		return err
	}
	for _, m := range ms[4:] {
		if err := addMatrix(m); err != nil {
			return err
		}
	}
	if err := add("output_norm", "rms_final_weight", []int{p.Dim}); err != nil {
		return err
	}
	off += 4 * int64(p.SeqLen) * hs // freq_cis_real and freq_cis_imag, unused (RoPE is computed)
	c.Notes = append(c.Notes, "freq_cis_real/imag skipped (RoPE is computed)")
	if !p.Shared {
		if err := add("output", "wcls", []int{p.Vocab, p.Dim}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Checkpoint) readLlama2CVersioned(b blob) error {
	c.Arch = "llama2c"
	head := make([]byte, 256)
	if k, _ := b.ReadAt(head, 0); k < len(head) {
		return fmt.Errorf("%s: truncated llama2.c header: %d of 256 bytes", b.Name(), k)
	}
	version := int32(binary.LittleEndian.Uint32(head[4:]))
	h := make([]int32, 7)
	for i := range h {
		h[i] = int32(binary.LittleEndian.Uint32(head[8+4*i:]))
	}
	// The versioned header stores vocab_size positive and the classifier flag separately.
	if h[5] < 0 {
		return fmt.Errorf("%s: llama2.c v%d header: vocab_size %d is negative", b.Name(), version, h[5])
	}
	p, err := parseLlama2CParams(b.Name(), h)
	if err != nil {
		return err
	}
	switch head[36] {
	case 0:
		p.Shared = false
	case 1:
		p.Shared = true
	default:
		return fmt.Errorf("%s: llama2.c header: shared_classifier byte %d, want 0 or 1", b.Name(), head[36])
	}
	c.Config = p.config()
	switch version {
	case 1:
		c.Format, c.Quant = "llama2c-v1", "none (f32)"
		return c.readLlama2CBody(b, p, 0)
	case 2:
		gs := int32(binary.LittleEndian.Uint32(head[37:]))
		if gs <= 0 || gs > 1<<20 {
			return fmt.Errorf("%s: llama2.c v2 header: group_size %d, want > 0", b.Name(), gs)
		}
		c.Format, c.Quant = "llama2c-v2", fmt.Sprintf("q8_0 (int8, f32 scale per %d)", gs)
		return c.readLlama2CBody(b, p, int(gs))
	}
	return fmt.Errorf("%s: llama2.c header: version %d, want 1 (f32) or 2 (q8_0)", b.Name(), version)
}

// readLlama2CBody lays out a version 1 (gs == 0, f32) or version 2 (Q8_0 with group gs) body.
func (c *Checkpoint) readLlama2CBody(b blob, p llama2cHeader, gs int) error {
	off := int64(256)
	addF32 := func(name, src string, shape []int) error {
		t := viewTensor(b, name, src, F32, shape, off)
		off += t.DataBytes()
		return c.add(t)
	}
	// f32: one array per layer. Q8_0: each layer's int8 values, then its f32 scales.
	addStack := func(canon, src string, layers, rows, cols int, global bool) error {
		per := int64(rows) * int64(cols)
		if gs == 0 {
			for l := 0; l < layers; l++ {
				name := canon
				if !global {
					name = LayerTensor(l, canon)
				}
				if err := addF32(name, fmt.Sprintf("%s[%d]", src, l), []int{rows, cols}); err != nil {
					return err
				}
			}
			return nil
		}
		if cols%gs != 0 {
			return fmt.Errorf("%s: llama2.c v2 tensor %s: %d columns not a multiple of group size %d (groups would span rows)", b.Name(), src, cols, gs)
		}
		// export.py quantizes each layer's tensor on its own: int8 values, then its f32 scales.
		for l := 0; l < layers; l++ {
			name := canon
			if !global {
				name = LayerTensor(l, canon)
			}
			t := viewTensor(b, name, fmt.Sprintf("%s[%d]", src, l), Q8_0, []int{rows, cols}, off)
			t.Group = gs
			t.scales = f32Scales(b, t.SourceName, off+per, per/int64(gs), false)
			if err := c.add(t); err != nil {
				return err
			}
			off += per + per/int64(gs)*4
		}
		return nil
	}
	for l := 0; l < p.Layers; l++ {
		if err := addF32(LayerTensor(l, "attn_norm"), fmt.Sprintf("rms_att_weight[%d]", l), []int{p.Dim}); err != nil {
			return err
		}
	}
	for l := 0; l < p.Layers; l++ {
		if err := addF32(LayerTensor(l, "ffn_norm"), fmt.Sprintf("rms_ffn_weight[%d]", l), []int{p.Dim}); err != nil {
			return err
		}
	}
	if err := addF32("output_norm", "rms_final_weight", []int{p.Dim}); err != nil {
		return err
	}
	if err := addStack("token_embd", "tok_embeddings", 1, p.Vocab, p.Dim, true); err != nil {
		return err
	}
	for _, m := range llama2cMatrices(p) {
		if err := addStack(m.canon, m.src, p.Layers, m.rows, m.cols, false); err != nil {
			return err
		}
	}
	if !p.Shared {
		if err := addStack("output", "output", 1, p.Vocab, p.Dim, true); err != nil {
			return err
		}
	}
	return checkSize(b, off, fmt.Sprintf("the llama2.c v%d header", map[bool]int{true: 2, false: 1}[gs > 0]))
}

// f32Scales reads n little-endian f32 scales at off; nonzero requires every scale finite and nonzero.
func f32Scales(b blob, src string, off, n int64, nonzero bool) func() ([]float32, error) {
	return func() ([]float32, error) {
		raw, err := b.View(off, 4*n)
		if err != nil {
			return nil, fmt.Errorf("scales of %s: %w", src, err)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = f32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if err := checkScales(b.Name(), src, out, nonzero); err != nil {
			return nil, err
		}
		return out, nil
	}
}

var _ = io.EOF
