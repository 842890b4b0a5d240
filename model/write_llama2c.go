package model

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// WriteLlama2C writes a llama2.c checkpoint: version 0 is run.c's legacy layout (f32, freq_cis tables
// included), 1 the versioned f32 export, 2 the Q8_0 export with group size gs (a divisor of every
// tensor's column count). Q/K rows are converted from cfg.RopeLayout to interleaved; cfg.HeadDim must be
// Dim/Heads (llama2.c has no separate head size). One tensor is held at a time.
func WriteLlama2C(w io.Writer, cfg Config, version, gs int, src TensorSource) error {
	if cfg.HeadDim*cfg.Heads != cfg.Dim {
		return fmt.Errorf("llama2.c writer: head_dim %d x heads %d != dim %d", cfg.HeadDim, cfg.Heads, cfg.Dim)
	}
	if version == 2 && (gs <= 0 || cfg.Dim%gs != 0 || cfg.FFN%gs != 0) {
		return fmt.Errorf("llama2.c writer: group size %d must divide dim %d and ffn %d", gs, cfg.Dim, cfg.FFN)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	put := func(v ...int32) {
		for _, x := range v {
			binary.Write(bw, binary.LittleEndian, x)
		}
	}
	vocab := int32(cfg.Vocab)
	params := []int32{int32(cfg.Dim), int32(cfg.FFN), int32(cfg.Layers), int32(cfg.Heads), int32(cfg.KVHeads), vocab, int32(cfg.Context)}
	switch version {
	case 0:
		if !cfg.Tied {
			params[5] = -vocab
		}
		put(params...)
	case 1, 2:
		binary.Write(bw, binary.LittleEndian, uint32(llama2cMagic))
		put(int32(version))
		put(params...)
		shared := byte(0)
		if cfg.Tied {
			shared = 1
		}
		bw.WriteByte(shared)
		n := 37
		if version == 2 {
			put(int32(gs))
			n += 4
		}
		bw.Write(make([]byte, 256-n))
	default:
		return fmt.Errorf("llama2.c writer: version %d, want 0 (legacy), 1 or 2", version)
	}
	get := func(name string, shape []int) ([]float32, error) {
		v, err := fetch(src, name, shape)
		if err != nil {
			return nil, err
		}
		return toLayout(cfg, name, v, shape, RopeInterleaved)
	}
	writeF32 := func(v []float32) {
		var b [4]byte
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			bw.Write(b[:])
		}
	}
	specs := map[string][]int{}
	for _, s := range CanonicalTensors(cfg) {
		specs[s.Name] = s.Shape
	}
	// stack writes one canonical per-layer weight for every layer (f32), or Q8_0 values then scales.
	stack := func(names []string) error {
		if version != 2 {
			for _, n := range names {
				v, err := get(n, specs[n])
				if err != nil {
					return err
				}
				writeF32(v)
			}
			return nil
		}
		for _, n := range names {
			v, err := get(n, specs[n])
			if err != nil {
				return err
			}
			q, s := quantizeQ8(v, gs)
			bw.Write(q)
			writeF32(s)
		}
		return nil
	}
	layers := func(suffix string) []string {
		out := make([]string, cfg.Layers)
		for l := range out {
			out[l] = LayerTensor(l, suffix)
		}
		return out
	}
	matrices := []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"}
	var err error
	if version == 0 {
		err = firstErr(
			func() error { return stack([]string{"token_embd"}) },
			func() error { return stack(layers("attn_norm")) },
			func() error { return stack(layers("attn_q")) },
			func() error { return stack(layers("attn_k")) },
			func() error { return stack(layers("attn_v")) },
			func() error { return stack(layers("attn_output")) },
			func() error { return stack(layers("ffn_norm")) },
			func() error { return stack(layers("ffn_gate")) },
			func() error { return stack(layers("ffn_down")) },
			func() error { return stack(layers("ffn_up")) },
			func() error { return stack([]string{"output_norm"}) },
			func() error {
				// freq_cis_real then freq_cis_imag, [seq_len][head_size/2], as run.c's export wrote them.
				hs := cfg.HeadDim
				for part := 0; part < 2; part++ {
					row := make([]float32, 0, hs/2)
					for p := 0; p < cfg.Context; p++ {
						row = row[:0]
						for i := 0; i < hs/2; i++ {
							f := float64(p) / math.Pow(cfg.RopeTheta, float64(2*i)/float64(hs))
							if part == 0 {
								row = append(row, float32(math.Cos(f)))
							} else {
								row = append(row, float32(math.Sin(f)))
							}
						}
						writeF32(row)
					}
				}
				return nil
			},
		)
	} else {
		// Versioned: the norms in f32 first, then the (quantized) matrices.
		writeNorms := func(names []string) error {
			for _, n := range names {
				v, err := get(n, specs[n])
				if err != nil {
					return err
				}
				writeF32(v)
			}
			return nil
		}
		err = firstErr(
			func() error { return writeNorms(layers("attn_norm")) },
			func() error { return writeNorms(layers("ffn_norm")) },
			func() error { return writeNorms([]string{"output_norm"}) },
			func() error { return stack([]string{"token_embd"}) },
			func() error {
				for _, m := range matrices {
					if err := stack(layers(m)); err != nil {
						return err
					}
				}
				return nil
			},
		)
	}
	if err == nil && !cfg.Tied {
		err = stack([]string{"output"})
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

func firstErr(fs ...func() error) error {
	for _, f := range fs {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// quantizeQ8 is llama2.c's Q8_0: per group of gs values, scale = max|w|/127, q = round(w/scale).
func quantizeQ8(v []float32, gs int) ([]byte, []float32) {
	q := make([]byte, len(v))
	s := make([]float32, len(v)/gs)
	for g := range s {
		grp := v[g*gs : (g+1)*gs]
		var amax float32
		for _, x := range grp {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		scale := amax / 127
		s[g] = scale
		for i, x := range grp {
			var r float32
			if scale != 0 {
				r = float32(math.Round(float64(x / scale)))
			}
			q[g*gs+i] = byte(int8(r))
		}
	}
	return q, s
}
