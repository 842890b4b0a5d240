package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// WriteTensor is one tensor handed to a file writer. Write streams exactly its bytes in the target
// file's encoding, so writers never hold a whole model (nor, for Q8_0/FP8 producers, more than one tensor).
type WriteTensor struct {
	Name  string
	DType DType // safetensors: F32, F16, BF16, F8E4M3, I32; GGUF: F32, F16, BF16, Q8_0 (ggml blocks of 34 bytes)
	Shape []int // row-major [out, in]
	Write func(w io.Writer) error
	// FileDType and Size override the dtype name and byte count written to a safetensors header
	// (tests use them to make files with dtypes the reader refuses).
	FileDType string
	Size      int64
}

// BytesTensor is a WriteTensor over bytes already in memory.
func BytesTensor(name string, dt DType, shape []int, data []byte) WriteTensor {
	return WriteTensor{Name: name, DType: dt, Shape: shape, Write: func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}}
}

// EncodeValues encodes f32 values as F32, F16, BF16 or unscaled F8E4M3 bytes (little-endian).
func EncodeValues(dt DType, v []float32) ([]byte, error) {
	switch dt {
	case F32:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out, nil
	case F16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToHalf(x))
		}
		return out, nil
	case BF16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], f32ToBF16(x))
		}
		return out, nil
	case F8E4M3:
		out := make([]byte, len(v))
		for i, x := range v {
			out[i] = f32ToFP8E4M3(x)
		}
		return out, nil
	}
	return nil, fmt.Errorf("encode: dtype %s is not a plain element type", dt)
}

func shapeElems(s []int) int64 {
	n := int64(1)
	for _, d := range s {
		n *= int64(d)
	}
	return n
}

// countWriter counts what passes through, so a Write callback that writes the wrong length is caught.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeCounted(w io.Writer, t WriteTensor, want int64, file string) error {
	cw := &countWriter{w: w}
	if t.Write == nil {
		return fmt.Errorf("%s: tensor %s has no data writer", file, t.Name)
	}
	if err := t.Write(cw); err != nil {
		return fmt.Errorf("%s: tensor %s: %w", file, t.Name, err)
	}
	if cw.n != want {
		return fmt.Errorf("%s: tensor %s: wrote %d bytes, want %d (shape %v, %s)", file, t.Name, cw.n, want, t.Shape, t.DType)
	}
	return nil
}

// WriteSafetensors writes a safetensors file: header (padded with spaces to 8 bytes), then each tensor's
// bytes in the given order.
func WriteSafetensors(w io.Writer, tensors []WriteTensor, meta map[string]string) error {
	type entry struct {
		DType       string  `json:"dtype"`
		Shape       []int   `json:"shape"`
		DataOffsets []int64 `json:"data_offsets"`
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	if len(meta) > 0 {
		m, _ := json.Marshal(meta)
		buf.WriteString(`"__metadata__":`)
		buf.Write(m)
		first = false
	}
	sizes := make([]int64, len(tensors))
	var off int64
	seen := map[string]bool{}
	for i, t := range tensors {
		if seen[t.Name] {
			return fmt.Errorf("safetensors writer: duplicate tensor %s", t.Name)
		}
		seen[t.Name] = true
		name, ok := safetensorsNames[t.DType]
		size := shapeElems(t.Shape) * int64(t.DType.ElemBytes())
		if t.FileDType != "" {
			name, ok, size = t.FileDType, true, t.Size
		}
		if !ok {
			return fmt.Errorf("safetensors writer: tensor %s: dtype %s has no safetensors name", t.Name, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		e, _ := json.Marshal(entry{name, shape, []int64{off, off + size}})
		k, _ := json.Marshal(t.Name)
		if !first {
			buf.WriteByte(',')
		}
		first = false
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(e)
		sizes[i] = size
		off += size
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	var n8 [8]byte
	binary.LittleEndian.PutUint64(n8[:], uint64(buf.Len()))
	if _, err := w.Write(n8[:]); err != nil {
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	for i, t := range tensors {
		if err := writeCounted(w, t, sizes[i], "safetensors writer"); err != nil {
			return err
		}
	}
	return nil
}

// TensorSpec is a canonical tensor's name and shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// CanonicalTensors lists the tensors a Config implies, in llama order: token_embd, per layer attn_norm,
// attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then output_norm and output
// (unless Tied).
func CanonicalTensors(cfg Config) []TensorSpec {
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	out := []TensorSpec{{"token_embd", []int{cfg.Vocab, cfg.Dim}}}
	for l := 0; l < cfg.Layers; l++ {
		for _, s := range []TensorSpec{
			{"attn_norm", []int{cfg.Dim}}, {"attn_q", []int{q, cfg.Dim}}, {"attn_k", []int{kv, cfg.Dim}},
			{"attn_v", []int{kv, cfg.Dim}}, {"attn_output", []int{cfg.Dim, q}}, {"ffn_norm", []int{cfg.Dim}},
			{"ffn_gate", []int{cfg.FFN, cfg.Dim}}, {"ffn_up", []int{cfg.FFN, cfg.Dim}}, {"ffn_down", []int{cfg.Dim, cfg.FFN}},
		} {
			out = append(out, TensorSpec{LayerTensor(l, s.Name), s.Shape})
		}
	}
	out = append(out, TensorSpec{"output_norm", []int{cfg.Dim}})
	if !cfg.Tied {
		out = append(out, TensorSpec{"output", []int{cfg.Vocab, cfg.Dim}})
	}
	return out
}

// TensorSource yields a canonical tensor's values as f32, row-major, with Q/K rows in the Config's
// RopeLayout. Model writers call it once per tensor, in their file order.
type TensorSource func(name string, shape []int) ([]float32, error)

// CheckpointSource reads (and dequantizes) the tensors of an open checkpoint.
func CheckpointSource(c *Checkpoint) TensorSource {
	return func(name string, shape []int) ([]float32, error) {
		t, err := c.Tensor(name)
		if err != nil {
			return nil, err
		}
		return t.Float32()
	}
}

// RandomSource yields deterministic pseudo-random weights: a tensor depends only on (seed, name), so
// any writer order gives the same model. Norm weights are near 1, matrices uniform in ±1/sqrt(cols).
func RandomSource(seed uint64) TensorSource {
	return func(name string, shape []int) ([]float32, error) {
		h := seed ^ 0x9e3779b97f4a7c15
		for i := 0; i < len(name); i++ {
			h = (h ^ uint64(name[i])) * 0x100000001b3
		}
		n := shapeElems(shape)
		out := make([]float32, n)
		cols := shape[len(shape)-1]
		amp := float32(1 / math.Sqrt(float64(cols)))
		for i := range out {
			h ^= h << 13
			h ^= h >> 7
			h ^= h << 17
			u := float32(h>>40)/float32(1<<24)*2 - 1
			if len(shape) == 1 {
				out[i] = 1 + 0.1*u
			} else {
				out[i] = amp * u
			}
		}
		return out, nil
	}
}

// toLayout converts a canonical Q/K tensor's rows from cfg's RopeLayout to the target layout.
func toLayout(cfg Config, name string, v []float32, shape []int, to RopeLayout) ([]float32, error) {
	heads := 0
	switch {
	case isLayerTensor(name, "attn_q"):
		heads = cfg.Heads
	case isLayerTensor(name, "attn_k"):
		heads = cfg.KVHeads
	default:
		return v, nil
	}
	return PermuteRopeF32(v, heads, cfg.HeadDim, shape[1], cfg.RopeLayout, to)
}

func isLayerTensor(name, suffix string) bool {
	var l int
	n, _ := fmt.Sscanf(name, "blk.%d.", &l)
	return n == 1 && name == LayerTensor(l, suffix)
}

// fetch calls src and checks the length.
func fetch(src TensorSource, name string, shape []int) ([]float32, error) {
	v, err := src(name, shape)
	if err != nil {
		return nil, err
	}
	if int64(len(v)) != shapeElems(shape) {
		return nil, fmt.Errorf("tensor source: %s has %d values, want %d (shape %v)", name, len(v), shapeElems(shape), shape)
	}
	return v, nil
}
