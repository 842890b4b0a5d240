package model

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// GGUFKV is one metadata pair for WriteGGUF. Value types: uint8, int8, uint16, int16, uint32, int32,
// float32, bool, string, uint64, int64, float64, []string, []float32, []int32, []uint32, and []any of one
// element type (arrays may nest).
type GGUFKV struct {
	Key   string
	Value any
}

type ggufWriter struct {
	w   *bufio.Writer
	pos int64
	err error
}

func (g *ggufWriter) put(v any) {
	if g.err != nil {
		return
	}
	switch x := v.(type) {
	case []byte:
		n, err := g.w.Write(x)
		g.pos += int64(n)
		g.err = err
		return
	}
	g.err = binary.Write(g.w, binary.LittleEndian, v)
	g.pos += int64(binary.Size(v))
}

func (g *ggufWriter) str(s string) { g.put(uint64(len(s))); g.put([]byte(s)) }

func ggufType(v any) (uint32, error) {
	switch v.(type) {
	case uint8:
		return ggufU8, nil
	case int8:
		return ggufI8, nil
	case uint16:
		return ggufU16, nil
	case int16:
		return ggufI16, nil
	case uint32:
		return ggufU32, nil
	case int32:
		return ggufI32, nil
	case float32:
		return ggufF32, nil
	case bool:
		return ggufBool, nil
	case string:
		return ggufString, nil
	case uint64:
		return ggufU64, nil
	case int64:
		return ggufI64, nil
	case float64:
		return ggufF64, nil
	case []string, []float32, []int32, []uint32, []any:
		return ggufArray, nil
	}
	return 0, fmt.Errorf("GGUF writer: value of type %T not supported", v)
}

// value writes a typed value (without its type tag).
func (g *ggufWriter) value(v any) error {
	switch x := v.(type) {
	case string:
		g.str(x)
	case bool:
		b := uint8(0)
		if x {
			b = 1
		}
		g.put(b)
	case []string:
		g.put(uint32(ggufString))
		g.put(uint64(len(x)))
		for _, s := range x {
			g.str(s)
		}
	case []float32:
		g.put(uint32(ggufF32))
		g.put(uint64(len(x)))
		g.put(x)
	case []int32:
		g.put(uint32(ggufI32))
		g.put(uint64(len(x)))
		g.put(x)
	case []uint32:
		g.put(uint32(ggufU32))
		g.put(uint64(len(x)))
		g.put(x)
	case []any:
		et := uint32(ggufU8)
		if len(x) > 0 {
			var err error
			if et, err = ggufType(x[0]); err != nil {
				return err
			}
		}
		g.put(et)
		g.put(uint64(len(x)))
		for _, e := range x {
			if t, err := ggufType(e); err != nil || t != et {
				return fmt.Errorf("GGUF writer: array mixes %T with element type %d", e, et)
			}
			if err := g.value(e); err != nil {
				return err
			}
		}
	default:
		if _, err := ggufType(v); err != nil {
			return err
		}
		g.put(v)
	}
	return g.err
}

// ggufTensorBytes is the file size of a tensor: Q8_0 is 34 bytes per 32 values.
func ggufTensorBytes(t WriteTensor) (int64, uint32, error) {
	n := shapeElems(t.Shape)
	switch t.DType {
	case F32:
		return 4 * n, ggmlF32, nil
	case F16:
		return 2 * n, ggmlF16, nil
	case BF16:
		return 2 * n, ggmlBF16, nil
	case Q8_0:
		if t.Shape[len(t.Shape)-1]%32 != 0 {
			return 0, 0, fmt.Errorf("GGUF writer: tensor %s: Q8_0 needs rows of a multiple of 32 values, shape %v", t.Name, t.Shape)
		}
		return n / 32 * 34, ggmlQ8_0, nil
	}
	return 0, 0, fmt.Errorf("GGUF writer: tensor %s: dtype %s not supported (F32, F16, BF16, Q8_0)", t.Name, t.DType)
}

// WriteGGUF writes a GGUF v3 file. alignment 0 means 32 (and then general.alignment is not written).
// Tensor shapes are row-major; the file stores them in ggml order. Q8_0 tensors write ggml blocks
// (see EncodeQ8_0Blocks).
func WriteGGUF(w io.Writer, kvs []GGUFKV, tensors []WriteTensor, alignment int) error {
	if alignment == 0 {
		alignment = 32
	} else {
		kvs = append(kvs, GGUFKV{"general.alignment", uint32(alignment)})
	}
	if alignment%8 != 0 || alignment <= 0 {
		return fmt.Errorf("GGUF writer: alignment %d, want a multiple of 8", alignment)
	}
	g := &ggufWriter{w: bufio.NewWriterSize(w, 1<<20)}
	g.put([]byte("GGUF"))
	g.put(uint32(3))
	g.put(uint64(len(tensors)))
	g.put(uint64(len(kvs)))
	for _, kv := range kvs {
		typ, err := ggufType(kv.Value)
		if err != nil {
			return fmt.Errorf("%v (key %s)", err, kv.Key)
		}
		g.str(kv.Key)
		g.put(typ)
		if err := g.value(kv.Value); err != nil {
			return fmt.Errorf("%v (key %s)", err, kv.Key)
		}
	}
	sizes := make([]int64, len(tensors))
	var off int64
	for i, t := range tensors {
		size, typ, err := ggufTensorBytes(t)
		if err != nil {
			return err
		}
		sizes[i] = size
		g.str(t.Name)
		g.put(uint32(len(t.Shape)))
		for d := len(t.Shape) - 1; d >= 0; d-- {
			g.put(uint64(t.Shape[d]))
		}
		g.put(typ)
		g.put(uint64(off))
		off += (size + int64(alignment) - 1) / int64(alignment) * int64(alignment)
	}
	pad := func() {
		if r := g.pos % int64(alignment); r != 0 {
			g.put(make([]byte, int64(alignment)-r))
		}
	}
	pad()
	if g.err != nil {
		return g.err
	}
	for i, t := range tensors {
		cw := &countWriter{w: g.w}
		if err := writeCounted(cw, t, sizes[i], "GGUF writer"); err != nil {
			return err
		}
		g.pos += cw.n
		pad()
	}
	if g.err != nil {
		return g.err
	}
	return g.w.Flush()
}

// EncodeQ8_0Blocks quantizes rows of a multiple of 32 values into ggml Q8_0 blocks: an f16 scale
// d = max|x|/127, then 32 int8 round(x/d).
func EncodeQ8_0Blocks(v []float32) []byte {
	out := make([]byte, len(v)/32*34)
	for b := 0; b < len(v)/32; b++ {
		grp := v[32*b : 32*b+32]
		var amax float32
		for _, x := range grp {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		d := amax / 127
		binary.LittleEndian.PutUint16(out[34*b:], f32ToHalf(d))
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		for i, x := range grp {
			out[34*b+2+i] = byte(int8(math.Round(float64(x * inv))))
		}
	}
	return out
}

// GGUFModelOptions says how WriteGGUFModel stores a model.
type GGUFModelOptions struct {
	DType     DType    // matrices (and token_embd/output): F32, F16, BF16 or Q8_0 (rows not a multiple of 32 fall back to F16); norms F32
	Name      string   // general.name
	Extra     []GGUFKV // more metadata, e.g. the tokenizer.ggml.* keys
	Alignment int      // 0: the default 32
}

// WriteGGUFModel writes a llama GGUF with canonical tensor names and llama.* keys; Q/K rows are
// converted from cfg.RopeLayout to interleaved. One tensor is held at a time.
func WriteGGUFModel(w io.Writer, cfg Config, opt GGUFModelOptions, src TensorSource) error {
	kvs := []GGUFKV{
		{"general.architecture", "llama"},
		{"general.name", opt.Name},
		{"llama.context_length", uint32(cfg.Context)},
		{"llama.embedding_length", uint32(cfg.Dim)},
		{"llama.block_count", uint32(cfg.Layers)},
		{"llama.feed_forward_length", uint32(cfg.FFN)},
		{"llama.rope.dimension_count", uint32(cfg.HeadDim)},
		{"llama.attention.head_count", uint32(cfg.Heads)},
		{"llama.attention.head_count_kv", uint32(cfg.KVHeads)},
		{"llama.attention.layer_norm_rms_epsilon", float32(cfg.NormEps)},
		{"llama.rope.freq_base", float32(cfg.RopeTheta)},
		{"llama.vocab_size", uint32(cfg.Vocab)},
		{"tokenizer.ggml.bos_token_id", uint32(cfg.BOS)},
	}
	if cfg.HeadDim*cfg.Heads != cfg.Dim {
		kvs = append(kvs, GGUFKV{"llama.attention.key_length", uint32(cfg.HeadDim)}, GGUFKV{"llama.attention.value_length", uint32(cfg.HeadDim)})
	}
	if len(cfg.EOS) > 0 {
		kvs = append(kvs, GGUFKV{"tokenizer.ggml.eos_token_id", uint32(cfg.EOS[0])})
	}
	if opt.DType == Q8_0 {
		kvs = append(kvs, GGUFKV{"general.quantization_version", uint32(2)})
	}
	kvs = append(kvs, opt.Extra...)
	kvs, err := checkGGUFVocab(kvs, cfg.Vocab)
	if err != nil {
		return err
	}
	var tensors []WriteTensor
	for _, s := range CanonicalTensors(cfg) {
		s := s
		dt := opt.DType
		if len(s.Shape) == 1 {
			dt = F32
		}
		if dt == Q8_0 && s.Shape[1]%32 != 0 {
			dt = F16 // as llama.cpp does: rows that are not whole Q8_0 blocks fall back to f16
		}
		tensors = append(tensors, WriteTensor{Name: s.Name + ".weight", DType: dt, Shape: s.Shape, Write: func(w io.Writer) error {
			v, err := fetch(src, s.Name, s.Shape)
			if err != nil {
				return err
			}
			if v, err = toLayout(cfg, s.Name, v, s.Shape, RopeInterleaved); err != nil {
				return err
			}
			var b []byte
			if dt == Q8_0 {
				b = EncodeQ8_0Blocks(v)
			} else if b, err = EncodeValues(dt, v); err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}})
	}
	return WriteGGUF(w, kvs, tensors, opt.Alignment)
}
