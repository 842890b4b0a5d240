package model

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// GGUF v2/v3 (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count, the key/values
// (gguf string key, u32 type, value; arrays are u32 type, u64 count, elements, and may nest), the tensor
// infos (name, u32 n_dims, u64 dims in ggml order (innermost first), u32 ggml type, u64 offset relative to
// the data section), then padding to general.alignment (default 32) and the data.

const (
	ggufU8 = iota
	ggufI8
	ggufU16
	ggufI16
	ggufU32
	ggufI32
	ggufF32
	ggufBool
	ggufString
	ggufArray
	ggufU64
	ggufI64
	ggufF64
)

// ggml tensor types we read, and the names of those we refuse.
const (
	ggmlF32  = 0
	ggmlF16  = 1
	ggmlQ8_0 = 8
	ggmlBF16 = 30
)

var ggmlTypeNames = map[uint32]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
	12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
	20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
	29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

// ggufReader decodes the header through a counting buffered reader; limit bounds what counts may claim.
type ggufReader struct {
	r     *bufio.Reader
	pos   int64
	size  int64 // file size, -1 if unknown (stream)
	file  string
	depth int
}

func (g *ggufReader) fail(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%s: truncated GGUF header: reading %s at byte %d", g.file, what, g.pos)
	}
	return fmt.Errorf("%s: GGUF: reading %s at byte %d: %v", g.file, what, g.pos, err)
}

func (g *ggufReader) read(p []byte, what string) error {
	n, err := io.ReadFull(g.r, p)
	g.pos += int64(n)
	if err != nil {
		return g.fail(what, err)
	}
	return nil
}

func (g *ggufReader) u32(what string) (uint32, error) {
	var b [4]byte
	err := g.read(b[:], what)
	return binary.LittleEndian.Uint32(b[:]), err
}

func (g *ggufReader) u64(what string) (uint64, error) {
	var b [8]byte
	err := g.read(b[:], what)
	return binary.LittleEndian.Uint64(b[:]), err
}

// left is the bytes remaining in the file, or a large bound for streams of unknown size.
func (g *ggufReader) left() int64 {
	if g.size < 0 {
		return 1 << 40
	}
	return g.size - g.pos
}

// count checks a claimed element count against the bytes left (each element needs at least min bytes).
func (g *ggufReader) count(n uint64, min int64, what string) (int, error) {
	if n > uint64(g.left()/min) || n > 1<<40 {
		return 0, fmt.Errorf("%s: GGUF %s count %d at byte %d exceeds what the %d remaining bytes can hold", g.file, what, n, g.pos, g.left())
	}
	return int(n), nil
}

func (g *ggufReader) str(what string) (string, error) {
	n, err := g.u64(what + " length")
	if err != nil {
		return "", err
	}
	k, err := g.count(n, 1, what+" length")
	if err != nil {
		return "", err
	}
	// Grow with the data actually read, so a stream of unknown size cannot force a huge allocation.
	var sb strings.Builder
	if _, err := io.CopyN(&sb, g.r, int64(k)); err != nil {
		g.pos += int64(sb.Len())
		return "", g.fail(what, err)
	}
	g.pos += int64(k)
	return sb.String(), nil
}

var ggufScalarSize = map[uint32]int64{ggufU8: 1, ggufI8: 1, ggufU16: 2, ggufI16: 2, ggufU32: 4, ggufI32: 4, ggufF32: 4,
	ggufBool: 1, ggufU64: 8, ggufI64: 8, ggufF64: 8, ggufString: 8, ggufArray: 12}

func (g *ggufReader) value(typ uint32, key string) (any, error) {
	var b [8]byte
	sz, ok := ggufScalarSize[typ]
	if !ok {
		return nil, fmt.Errorf("%s: GGUF key %s: value type %d unknown (want 0..12)", g.file, key, typ)
	}
	switch typ {
	case ggufString:
		return g.str("value of " + key)
	case ggufArray:
		if g.depth >= 8 {
			return nil, fmt.Errorf("%s: GGUF key %s: arrays nested deeper than 8", g.file, key)
		}
		et, err := g.u32("array type of " + key)
		if err != nil {
			return nil, err
		}
		esz, ok := ggufScalarSize[et]
		if !ok {
			return nil, fmt.Errorf("%s: GGUF key %s: array element type %d unknown (want 0..12)", g.file, key, et)
		}
		cnt, err := g.u64("array length of " + key)
		if err != nil {
			return nil, err
		}
		n, err := g.count(cnt, esz, "array "+key)
		if err != nil {
			return nil, err
		}
		g.depth++
		defer func() { g.depth-- }()
		capHint := min(n, 1<<16)
		switch et {
		case ggufString:
			out := make([]string, 0, capHint)
			for i := 0; i < n; i++ {
				s, err := g.str(fmt.Sprintf("%s[%d]", key, i))
				if err != nil {
					return nil, err
				}
				out = append(out, s)
			}
			return out, nil
		case ggufF32:
			out := make([]float32, 0, capHint)
			for i := 0; i < n; i++ {
				if err := g.read(b[:4], key); err != nil {
					return nil, err
				}
				out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(b[:])))
			}
			return out, nil
		case ggufI32:
			out := make([]int32, 0, capHint)
			for i := 0; i < n; i++ {
				if err := g.read(b[:4], key); err != nil {
					return nil, err
				}
				out = append(out, int32(binary.LittleEndian.Uint32(b[:])))
			}
			return out, nil
		}
		out := make([]any, 0, capHint)
		for i := 0; i < n; i++ {
			v, err := g.value(et, fmt.Sprintf("%s[%d]", key, i))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	if err := g.read(b[:sz], "value of "+key); err != nil {
		return nil, err
	}
	switch typ {
	case ggufU8:
		return b[0], nil
	case ggufI8:
		return int8(b[0]), nil
	case ggufU16:
		return binary.LittleEndian.Uint16(b[:]), nil
	case ggufI16:
		return int16(binary.LittleEndian.Uint16(b[:])), nil
	case ggufU32:
		return binary.LittleEndian.Uint32(b[:]), nil
	case ggufI32:
		return int32(binary.LittleEndian.Uint32(b[:])), nil
	case ggufF32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b[:])), nil
	case ggufBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("%s: GGUF key %s: bool byte %d, want 0 or 1", g.file, key, b[0])
		}
		return b[0] == 1, nil
	case ggufU64:
		return binary.LittleEndian.Uint64(b[:]), nil
	case ggufI64:
		return int64(binary.LittleEndian.Uint64(b[:])), nil
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b[:])), nil
}

// ggufTensorInfo is one tensor info record.
type ggufTensorInfo struct {
	name  string
	dims  []uint64 // ggml order
	typ   uint32
	off   uint64 // relative to the data section
	shape []int  // row-major
	bytes int64
}

// ggufHeader is a parsed GGUF header.
type ggufHeader struct {
	version   uint32
	meta      map[string]any
	keys      []string // in file order
	tensors   []ggufTensorInfo
	dataStart int64
	align     int64
}

func readGGUFHeader(b blob) (*ggufHeader, error) {
	g := &ggufReader{r: bufio.NewReaderSize(&blobReader{b: b}, 1<<16), size: b.Size(), file: b.Name()}
	var magic [4]byte
	if err := g.read(magic[:], "magic"); err != nil {
		return nil, err
	}
	if string(magic[:]) != "GGUF" {
		return nil, fmt.Errorf("%s: not a GGUF file (magic %q)", b.Name(), magic[:])
	}
	h := &ggufHeader{meta: map[string]any{}, align: 32}
	var err error
	if h.version, err = g.u32("version"); err != nil {
		return nil, err
	}
	if h.version != 2 && h.version != 3 {
		return nil, fmt.Errorf("%s: GGUF version %d not supported (want 2 or 3)", b.Name(), h.version)
	}
	nt, err := g.u64("tensor_count")
	if err != nil {
		return nil, err
	}
	nkv, err := g.u64("kv_count")
	if err != nil {
		return nil, err
	}
	kvs, err := g.count(nkv, 8+4+1, "kv")
	if err != nil {
		return nil, err
	}
	for i := 0; i < kvs; i++ {
		key, err := g.str(fmt.Sprintf("key %d", i))
		if err != nil {
			return nil, err
		}
		typ, err := g.u32("type of " + key)
		if err != nil {
			return nil, err
		}
		v, err := g.value(typ, key)
		if err != nil {
			return nil, err
		}
		if _, dup := h.meta[key]; dup {
			return nil, fmt.Errorf("%s: GGUF key %s appears twice", b.Name(), key)
		}
		h.meta[key] = v
		h.keys = append(h.keys, key)
	}
	if a, ok := h.meta["general.alignment"]; ok {
		v, ok := a.(uint32)
		if !ok || v == 0 || v%8 != 0 || v > 1<<20 {
			return nil, fmt.Errorf("%s: GGUF general.alignment = %v (%T), want a u32 multiple of 8", b.Name(), a, a)
		}
		h.align = int64(v)
	}
	n, err := g.count(nt, 8+4+8+4+8, "tensor")
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for i := 0; i < n; i++ {
		var ti ggufTensorInfo
		if ti.name, err = g.str(fmt.Sprintf("tensor %d name", i)); err != nil {
			return nil, err
		}
		if names[ti.name] {
			return nil, fmt.Errorf("%s: GGUF tensor %s appears twice", b.Name(), ti.name)
		}
		names[ti.name] = true
		nd, err := g.u32("n_dims of " + ti.name)
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > 4 {
			return nil, fmt.Errorf("%s: GGUF tensor %s: n_dims %d, want 1..4", b.Name(), ti.name, nd)
		}
		elems := int64(1)
		for d := uint32(0); d < nd; d++ {
			v, err := g.u64("dims of " + ti.name)
			if err != nil {
				return nil, err
			}
			if v == 0 || v > 1<<40 || elems > (1<<50)/int64(v) {
				return nil, fmt.Errorf("%s: GGUF tensor %s: dimension %d = %d out of range", b.Name(), ti.name, d, v)
			}
			elems *= int64(v)
			ti.dims = append(ti.dims, v)
		}
		if ti.typ, err = g.u32("type of " + ti.name); err != nil {
			return nil, err
		}
		if ti.off, err = g.u64("offset of " + ti.name); err != nil {
			return nil, err
		}
		for d := len(ti.dims) - 1; d >= 0; d-- {
			ti.shape = append(ti.shape, int(ti.dims[d]))
		}
		switch ti.typ {
		case ggmlF32:
			ti.bytes = elems * 4
		case ggmlF16, ggmlBF16:
			ti.bytes = elems * 2
		case ggmlQ8_0:
			if ti.dims[0]%32 != 0 {
				return nil, fmt.Errorf("%s: GGUF tensor %s: Q8_0 row of %d values, want a multiple of 32", b.Name(), ti.name, ti.dims[0])
			}
			ti.bytes = elems / 32 * 34
		default:
			name := ggmlTypeNames[ti.typ]
			if name == "" {
				name = fmt.Sprintf("type %d", ti.typ)
			}
			return nil, fmt.Errorf("%s: GGUF tensor %s: ggml type %s not supported (want F32, F16, BF16 or Q8_0)", b.Name(), ti.name, name)
		}
		if ti.off%uint64(h.align) != 0 || ti.off > 1<<50 {
			return nil, fmt.Errorf("%s: GGUF tensor %s: offset %d is not a multiple of the alignment %d", b.Name(), ti.name, ti.off, h.align)
		}
		h.tensors = append(h.tensors, ti)
	}
	h.dataStart = (g.pos + h.align - 1) / h.align * h.align
	order := make([]int, len(h.tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return h.tensors[order[i]].off < h.tensors[order[j]].off })
	for k, i := range order {
		t := h.tensors[i]
		end := h.dataStart + int64(t.off) + t.bytes
		if b.Size() >= 0 && end > b.Size() {
			return nil, fmt.Errorf("%s: GGUF tensor %s: data [%d, %d) outside the file (%d bytes)", b.Name(), t.name, h.dataStart+int64(t.off), end, b.Size())
		}
		if k > 0 {
			p := h.tensors[order[k-1]]
			if int64(p.off)+p.bytes > int64(t.off) {
				return nil, fmt.Errorf("%s: GGUF tensors %s and %s overlap", b.Name(), p.name, t.name)
			}
		}
	}
	// Tensors in file (offset) order, as the readers promise.
	sorted := make([]ggufTensorInfo, len(order))
	for k, i := range order {
		sorted[k] = h.tensors[i]
	}
	h.tensors = sorted
	return h, nil
}

func (c *Checkpoint) readGGUF(b blob) error {
	c.Format = "gguf"
	h, err := readGGUFHeader(b)
	if err != nil {
		return err
	}
	c.meta = h.meta
	arch, _ := h.meta["general.architecture"].(string)
	c.Arch = arch
	if arch != "llama" {
		return fmt.Errorf("%s: GGUF general.architecture %q not supported (supported: llama)", b.Name(), arch)
	}
	if c.Config, err = ggufConfig(b.Name(), h); err != nil {
		return err
	}
	kinds := map[string]bool{}
	for _, ti := range h.tensors {
		canon, ok := strings.CutSuffix(ti.name, ".weight")
		if !ok || !isCanonical(canon) {
			if ti.name == "rope_freqs.weight" {
				// Llama-3.1 GGUFs bake rope_scaling into per-frequency divisors; recover the llama3 parameters.
				rf := viewTensor(b, "rope_freqs", ti.name, F32, ti.shape, h.dataStart+int64(ti.off))
				if ti.typ != ggmlF32 || len(ti.shape) != 1 || ti.shape[0] != c.Config.HeadDim/2 {
					return fmt.Errorf("%s: tensor rope_freqs.weight: want f32 [%d] (head dim / 2), got type %d shape %v", b.Name(), c.Config.HeadDim/2, ti.typ, ti.shape)
				}
				vals, err := rf.Float32()
				if err != nil {
					return err
				}
				sc, err := FitLlama3Scaling(vals, c.Config.RopeTheta, c.Config.HeadDim)
				if err != nil {
					return fmt.Errorf("%s: tensor rope_freqs.weight: %w", b.Name(), err)
				}
				c.Config.RopeScaling = sc
				c.Notes = append(c.Notes, fmt.Sprintf("rope_freqs.weight read as llama3 rope scaling (factor %g, low %g, high %g, original context %d)",
					sc.Factor, sc.LowFreqFactor, sc.HighFreqFactor, sc.OriginalContext))
			} else {
				c.Notes = append(c.Notes, "unused tensor "+ti.name)
			}
			continue
		}
		off := h.dataStart + int64(ti.off)
		var t *Tensor
		switch ti.typ {
		case ggmlF32:
			t = viewTensor(b, canon, ti.name, F32, ti.shape, off)
		case ggmlF16:
			t = viewTensor(b, canon, ti.name, F16, ti.shape, off)
		case ggmlBF16:
			t = viewTensor(b, canon, ti.name, BF16, ti.shape, off)
		case ggmlQ8_0:
			t = ggufQ8Tensor(b, canon, ti, off)
		}
		kinds[ggmlTypeNames[ti.typ]] = true
		if err := c.add(t); err != nil {
			return err
		}
	}
	c.Config.Tied = !c.Has("output")
	c.Quant = "none"
	if kinds["Q8_0"] {
		c.Quant = "q8_0 (ggml blocks of 32, f16 scale)"
	}
	return nil
}

// ggufQ8Tensor repacks ggml Q8_0 blocks (f16 scale + 32 int8) lazily into int8 values and f32 scales.
// For a stream both come from one read: Bytes keeps the scales until Scales takes them.
func ggufQ8Tensor(b blob, canon string, ti ggufTensorInfo, off int64) *Tensor {
	t := &Tensor{Name: canon, SourceName: ti.name, File: b.Name(), DType: Q8_0, Shape: ti.shape, Group: 32}
	var pending []float32
	decode := func() ([]byte, []float32, error) {
		raw, err := b.View(off, ti.bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %s: %w", ti.name, err)
		}
		nb := len(raw) / 34
		q := make([]byte, nb*32)
		s := make([]float32, nb)
		for i := 0; i < nb; i++ {
			blk := raw[34*i : 34*i+34]
			s[i] = halfToF32(binary.LittleEndian.Uint16(blk))
			copy(q[32*i:], blk[2:])
		}
		if err := checkScales(b.Name(), ti.name, s, false); err != nil {
			return nil, nil, err
		}
		return q, s, nil
	}
	_, stream := b.(*zstdBlob)
	t.read = func() ([]byte, error) {
		q, s, err := decode()
		if stream {
			pending = s
		}
		return q, err
	}
	t.scales = func() ([]float32, error) {
		if pending != nil {
			s := pending
			pending = nil
			return s, nil
		}
		_, s, err := decode()
		return s, err
	}
	return t
}

func isCanonical(name string) bool {
	switch name {
	case "token_embd", "output_norm", "output":
		return true
	}
	for _, s := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"} {
		if isLayerTensor(name, s) {
			return true
		}
	}
	return false
}

// ggufConfig maps llama.* keys onto Config.
func ggufConfig(file string, h *ggufHeader) (Config, error) {
	cfg := Config{Arch: "llama", RopeLayout: RopeInterleaved, RopeTheta: 10000, NormEps: 1e-5, BOS: 1, EOS: []int{2}}
	geti := func(key string, required bool) (int, error) {
		v, ok := h.meta[key]
		if !ok {
			if required {
				return 0, fmt.Errorf("%s: GGUF key %s missing", file, key)
			}
			return 0, nil
		}
		n, ok := asInt(v)
		if !ok || n < 0 || n > 1<<31 {
			return 0, fmt.Errorf("%s: GGUF key %s = %v (%T), want a non-negative integer", file, key, v, v)
		}
		return n, nil
	}
	getf := func(key string, def float64) (float64, error) {
		v, ok := h.meta[key]
		if !ok {
			return def, nil
		}
		switch x := v.(type) {
		case float32:
			return float64(x), nil
		case float64:
			return x, nil
		}
		return 0, fmt.Errorf("%s: GGUF key %s = %v (%T), want a float", file, key, v, v)
	}
	var err error
	fields := []struct {
		key string
		dst *int
		req bool
	}{
		{"llama.embedding_length", &cfg.Dim, true}, {"llama.block_count", &cfg.Layers, true},
		{"llama.feed_forward_length", &cfg.FFN, true}, {"llama.attention.head_count", &cfg.Heads, true},
		{"llama.attention.head_count_kv", &cfg.KVHeads, false}, {"llama.context_length", &cfg.Context, false},
		{"llama.vocab_size", &cfg.Vocab, false}, {"llama.attention.key_length", &cfg.HeadDim, false},
	}
	for _, f := range fields {
		if *f.dst, err = geti(f.key, f.req); err != nil {
			return cfg, err
		}
	}
	if cfg.KVHeads == 0 {
		cfg.KVHeads = cfg.Heads
	}
	if cfg.HeadDim == 0 && cfg.Heads > 0 {
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	if cfg.Context == 0 {
		cfg.Context = 2048
	}
	if rd, err := geti("llama.rope.dimension_count", false); err != nil {
		return cfg, err
	} else if rd != 0 && rd != cfg.HeadDim {
		return cfg, fmt.Errorf("%s: GGUF llama.rope.dimension_count %d differs from the head size %d (partial rotary embeddings are not supported)", file, rd, cfg.HeadDim)
	}
	if cfg.Vocab == 0 {
		if toks, ok := h.meta["tokenizer.ggml.tokens"].([]string); ok {
			cfg.Vocab = len(toks)
		}
		for _, ti := range h.tensors {
			if ti.name == "token_embd.weight" && len(ti.shape) == 2 {
				cfg.Vocab = ti.shape[0]
			}
		}
	}
	if cfg.RopeTheta, err = getf("llama.rope.freq_base", 10000); err != nil {
		return cfg, err
	}
	if cfg.NormEps, err = getf("llama.attention.layer_norm_rms_epsilon", 1e-5); err != nil {
		return cfg, err
	}
	if v, ok := h.meta["tokenizer.ggml.bos_token_id"]; ok {
		if n, ok := asInt(v); ok {
			cfg.BOS = n
		}
	}
	if v, ok := h.meta["tokenizer.ggml.eos_token_id"]; ok {
		if n, ok := asInt(v); ok {
			cfg.EOS = []int{n}
		}
	}
	return cfg, nil
}

func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case uint8:
		return int(x), true
	case int8:
		return int(x), true
	case uint16:
		return int(x), true
	case int16:
		return int(x), true
	case uint32:
		return int(x), true
	case int32:
		return int(x), true
	case uint64:
		if x > 1<<62 {
			return 0, false
		}
		return int(x), true
	case int64:
		return int(x), true
	}
	return 0, false
}
