package engine

import (
	"fmt"
	"math"
	"slices"

	"kvc/model"
)

// RowDecoder gives one row of a weight as f32: a token embedding kept in host memory.
type RowDecoder interface {
	DecodeRow(r int, dst []float32)
}

// LoadOptions change where weights live.
type LoadOptions struct {
	// HostEmbedding, when set, keeps an untied token embedding in host memory (as llama.cpp does): only the
	// looked-up rows travel to the device each pass, and the vocab x dim table takes no device memory.
	HostEmbedding func(t *model.Tensor) (RowDecoder, error)
}

// Weights are a llama-family model's tensors on a backend, in their stored dtypes.
type Weights struct {
	TokEmb  Weight     // [vocab, dim] on the device; nil when HostEmb holds it
	HostEmb RowDecoder // the untied token embedding in host memory, or nil
	Layers  []Layer    // per transformer block
	OutNorm Weight     // [dim]
	Output  Weight     // [vocab, dim] (TokEmb when tied)
	Bytes   int64      // bytes of weight data uploaded to the device
	ByDType map[model.DType]int64
}

// Layer is one transformer block.
type Layer struct {
	AttnNorm   Weight // [dim]
	Q, K, V, O Weight // [heads*hd, dim], [kv*hd, dim], [kv*hd, dim], [dim, heads*hd]
	FFNNorm    Weight // [dim]
	Gate, Up   Weight // [ffn, dim]
	Down       Weight // [dim, ffn]
}

// LoadWeights uploads every tensor the config needs, checking its shape. progress (may be nil) is called
// with the bytes uploaded so far and the total.
func LoadWeights(b Backend, ck *model.Checkpoint, progress func(done, total int64)) (*Weights, error) {
	return LoadWeightsWith(b, ck, LoadOptions{}, progress)
}

// LoadWeightsWith is LoadWeights with options.
func LoadWeightsWith(b Backend, ck *model.Checkpoint, opt LoadOptions, progress func(done, total int64)) (*Weights, error) {
	cfg := ck.Config
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", ck.Path, err)
	}
	qd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	type want struct {
		name  string
		shape []int
		dst   *Weight
	}
	w := &Weights{Layers: make([]Layer, cfg.Layers), ByDType: map[model.DType]int64{}}
	list := []want{{"token_embd", []int{cfg.Vocab, cfg.Dim}, &w.TokEmb}}
	for l := range w.Layers {
		ly := &w.Layers[l]
		n := func(s string) string { return model.LayerTensor(l, s) }
		list = append(list,
			want{n("attn_norm"), []int{cfg.Dim}, &ly.AttnNorm},
			want{n("attn_q"), []int{qd, cfg.Dim}, &ly.Q},
			want{n("attn_k"), []int{kvd, cfg.Dim}, &ly.K},
			want{n("attn_v"), []int{kvd, cfg.Dim}, &ly.V},
			want{n("attn_output"), []int{cfg.Dim, qd}, &ly.O},
			want{n("ffn_norm"), []int{cfg.Dim}, &ly.FFNNorm},
			want{n("ffn_gate"), []int{cfg.FFN, cfg.Dim}, &ly.Gate},
			want{n("ffn_up"), []int{cfg.FFN, cfg.Dim}, &ly.Up},
			want{n("ffn_down"), []int{cfg.Dim, cfg.FFN}, &ly.Down})
	}
	list = append(list, want{"output_norm", []int{cfg.Dim}, &w.OutNorm})
	if !cfg.Tied {
		list = append(list, want{"output", []int{cfg.Vocab, cfg.Dim}, &w.Output})
	}
	tensors := make([]*model.Tensor, len(list))
	var total int64
	for i, x := range list {
		t, err := ck.Tensor(x.name)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(t.Shape, x.shape) {
			return nil, fmt.Errorf("%s: tensor %s (%s) has shape %v, expected %v for this config", t.File, x.name, t.SourceName, t.Shape, x.shape)
		}
		tensors[i] = t
		if !(x.name == "token_embd" && !cfg.Tied && opt.HostEmbedding != nil) {
			total += t.DataBytes()
		}
	}
	var done int64
	for i, x := range list {
		if x.name == "token_embd" && !cfg.Tied && opt.HostEmbedding != nil {
			var err error
			if w.HostEmb, err = opt.HostEmbedding(tensors[i]); err != nil {
				return nil, fmt.Errorf("loading %s into host memory: %w", x.name, err)
			}
			continue
		}
		up, err := b.UploadWeight(tensors[i])
		if err != nil {
			return nil, fmt.Errorf("uploading %s: %w", x.name, err)
		}
		*x.dst = up
		done += tensors[i].DataBytes()
		w.ByDType[tensors[i].DType] += tensors[i].DataBytes()
		if progress != nil {
			progress(done, total)
		}
	}
	if cfg.Tied {
		w.Output = w.TokEmb
	}
	w.Bytes = done
	return w, nil
}

func checkConfig(c model.Config) error {
	switch {
	case c.Dim <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.FFN <= 0 || c.Vocab <= 0:
		return fmt.Errorf("config has a non-positive size: %+v", c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("config: %d query heads are not a multiple of %d KV heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("config: head dim %d is odd; RoPE needs pairs", c.HeadDim)
	}
	return nil
}

// AttnScale is 1/sqrt(head dim).
func AttnScale(cfg model.Config) float32 { return float32(1 / math.Sqrt(float64(cfg.HeadDim))) }
