// Package model reads llama-family checkpoints (llama2.c .bin, safetensors incl. sharded Hugging Face
// folders and FP8, GGUF, any of them zstd-compressed) into one normalized config and a set of tensors
// under canonical names, keeping every weight in its stored dtype.
package model

import "fmt"

// DType is a weight's stored element type.
type DType int

const (
	F32    DType = iota
	F16          // IEEE half
	BF16         // bfloat16
	F8E4M3       // float8 e4m3fn (bias 7, max 448, 0x7f/0xff NaN), with f32 scales (see ScaleKind)
	Q8_0         // int8 values with one f32 scale per Group consecutive inputs of a row
	I32
)

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	case F8E4M3:
		return "fp8-e4m3"
	case Q8_0:
		return "q8_0"
	case I32:
		return "i32"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// ElemBytes is the storage size of one element (scales of F8E4M3 and Q8_0 not included).
func (d DType) ElemBytes() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case F8E4M3, Q8_0:
		return 1
	}
	return 0
}

// ScaleKind says how an F8E4M3 tensor's f32 scales map onto its [Rows, Cols] weight. w = q * scale.
type ScaleKind int

const (
	ScaleNone    ScaleKind = iota
	ScaleTensor            // one scale for the whole tensor
	ScaleChannel           // one scale per output row: [Rows]
	ScaleBlock             // one per 128x128 block: [ceil(Rows/128)][ceil(Cols/128)]
)

func (s ScaleKind) String() string {
	return [...]string{"none", "per-tensor", "per-channel", "block-128x128"}[s]
}

// RopeLayout is how a checkpoint's Q and K weights pair the rotated dimensions.
type RopeLayout int

const (
	RopeInterleaved RopeLayout = iota // pairs (2i, 2i+1): llama2.c, GGUF
	RopeRotateHalf                    // pairs (i, i+d/2): Hugging Face
)

func (r RopeLayout) String() string {
	if r == RopeRotateHalf {
		return "rotate-half"
	}
	return "interleaved"
}

// RopeScaling is Llama-3.1's "llama3" frequency scaling.
type RopeScaling struct {
	Type            string  `json:"type"` // "llama3"
	Factor          float64 `json:"factor"`
	LowFreqFactor   float64 `json:"low_freq_factor"`
	HighFreqFactor  float64 `json:"high_freq_factor"`
	OriginalContext int     `json:"original_max_position_embeddings"`
}

// MaxContext is the longest context a config may declare (16M positions, above any released model's); a
// larger value is a damaged or hostile header, not a model.
const MaxContext = 1 << 24

// Config is the normalized llama-family configuration every reader produces.
type Config struct {
	Arch        string       `json:"arch"` // "llama" (llama2.c stories, Llama 2/3/3.1, Mistral, TinyLlama)
	Dim         int          `json:"dim"`
	Layers      int          `json:"layers"`
	Heads       int          `json:"heads"`
	KVHeads     int          `json:"kv_heads"`
	HeadDim     int          `json:"head_dim"`
	FFN         int          `json:"ffn"`
	Vocab       int          `json:"vocab"`
	Context     int          `json:"context"`
	NormEps     float64      `json:"norm_eps"`
	RopeLayout  RopeLayout   `json:"rope_layout"`
	RopeTheta   float64      `json:"rope_theta"`
	RopeScaling *RopeScaling `json:"rope_scaling,omitempty"`
	Tied        bool         `json:"tied_embeddings"` // output projection shares token_embd
	BOS         int          `json:"bos"`
	EOS         []int        `json:"eos"`
}

// Canonical tensor names (GGUF's): every reader maps its own names onto these.
//
//	token_embd           [Vocab, Dim]
//	blk.N.attn_norm      [Dim]
//	blk.N.attn_q         [Heads*HeadDim, Dim]
//	blk.N.attn_k         [KVHeads*HeadDim, Dim]
//	blk.N.attn_v         [KVHeads*HeadDim, Dim]
//	blk.N.attn_output    [Dim, Heads*HeadDim]
//	blk.N.ffn_norm       [Dim]
//	blk.N.ffn_gate       [FFN, Dim]   (w1)
//	blk.N.ffn_up         [FFN, Dim]   (w3)
//	blk.N.ffn_down       [Dim, FFN]   (w2)
//	output_norm          [Dim]
//	output               [Vocab, Dim] (absent when Tied)
//
// Shapes are row-major [out, in] as PyTorch stores them; Q and K rows are in the checkpoint's RopeLayout.
func LayerTensor(layer int, name string) string { return fmt.Sprintf("blk.%d.%s", layer, name) }
