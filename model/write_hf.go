package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// HFOptions says how WriteHF lays out a Hugging Face folder.
type HFOptions struct {
	DType DType // F32, F16 or BF16 for every tensor; F8E4M3 quantizes the q/k/v/o/gate/up/down projections
	// (embeddings, norms and lm_head then stay BF16)
	FP8Method     string    // "compressed-tensors" (default), "fbgemm_fp8" or "fp8" (128x128 blocks, weight_scale_inv)
	FP8Scale      ScaleKind // compressed-tensors only: ScaleTensor (default), ScaleChannel or ScaleBlock
	ScaleVector   bool      // per-tensor scales as shape [1] instead of [], per-channel as [out] instead of [out, 1]
	InputScales   bool      // write static per-tensor input_scale tensors (compressed-tensors)
	Ignore        []string  // more modules to keep in BF16 (lm_head is always kept)
	ShardBytes    int64     // > 0: shard at about this size with an index; 0: one model.safetensors
	Compress      bool      // write shards as .safetensors.zst
	Sparse        bool      // write headers only and leave data as holes (os.Truncate): header-level fixtures
	Architecture  string    // default LlamaForCausalLM
	ExtraMetadata map[string]string
}

type hfPlanned struct {
	WriteTensor
	canon string // source tensor
	role  string // "weight", "scale", "input_scale"
}

// WriteHF writes config.json, the safetensors shards and (when sharded) model.safetensors.index.json into
// dir. Q/K rows are converted from cfg.RopeLayout to rotate-half, as Hugging Face stores them. One tensor
// (and its scales) is held at a time.
func WriteHF(dir string, cfg Config, opt HFOptions, src TensorSource) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if opt.Architecture == "" {
		opt.Architecture = "LlamaForCausalLM"
	}
	fp8 := opt.DType == F8E4M3
	kind := opt.FP8Scale
	switch {
	case !fp8:
	case opt.FP8Method == "" || opt.FP8Method == "compressed-tensors":
		opt.FP8Method = "compressed-tensors"
		if kind == ScaleNone {
			kind = ScaleTensor
		}
	case opt.FP8Method == "fbgemm_fp8":
		kind = ScaleChannel
	case opt.FP8Method == "fp8":
		kind = ScaleBlock
	default:
		return fmt.Errorf("HF writer: FP8 method %q unknown", opt.FP8Method)
	}
	ignore := append([]string{"lm_head"}, opt.Ignore...)
	scheme := &fp8Scheme{Ignore: ignore}
	if err := scheme.compileIgnore(); err != nil {
		return fmt.Errorf("HF writer: %v", err)
	}
	scaleName := "weight_scale"
	if opt.FP8Method == "fp8" {
		scaleName = "weight_scale_inv"
	}
	// Plan every tensor with its size, then cut shards.
	var plan []hfPlanned
	for _, s := range CanonicalTensors(cfg) {
		module := hfModule(s.Name)
		quant := fp8 && len(s.Shape) == 2 && s.Name != "token_embd" && !scheme.ignored(module)
		dt := opt.DType
		if fp8 && !quant {
			dt = BF16
		}
		st := &fp8State{}
		plan = append(plan, hfPlanned{WriteTensor{Name: module + ".weight", DType: dt, Shape: s.Shape,
			Write: hfWeightWriter(cfg, s, dt, quant, kind, st, src)}, s.Name, "weight"})
		if !quant {
			continue
		}
		var sshape []int
		rows, cols := s.Shape[0], s.Shape[1]
		switch kind {
		case ScaleTensor:
			sshape = []int{}
			if opt.ScaleVector {
				sshape = []int{1}
			}
		case ScaleChannel:
			sshape = []int{rows, 1}
			if opt.ScaleVector {
				sshape = []int{rows}
			}
		case ScaleBlock:
			sshape = []int{(rows + 127) / 128, (cols + 127) / 128}
		}
		plan = append(plan, hfPlanned{WriteTensor{Name: module + "." + scaleName, DType: F32, Shape: sshape,
			Write: func(w io.Writer) error { return writeF32s(w, st.scales) }}, s.Name, "scale"})
		if opt.InputScales {
			plan = append(plan, hfPlanned{WriteTensor{Name: module + ".input_scale", DType: F32, Shape: []int{},
				Write: func(w io.Writer) error { return writeF32s(w, []float32{st.inputScale}) }}, s.Name, "input_scale"})
		}
	}
	var shards [][]WriteTensor
	var cur []WriteTensor
	var curBytes int64
	for i, p := range plan {
		size := shapeElems(p.Shape) * int64(p.DType.ElemBytes())
		// A weight's scales stay in its shard (they are written from the weight's quantization).
		if opt.ShardBytes > 0 && len(cur) > 0 && p.role == "weight" && curBytes+size > opt.ShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, plan[i].WriteTensor)
		curBytes += size
	}
	shards = append(shards, cur)
	weightMap := map[string]string{}
	var total int64
	for i, sh := range shards {
		name := "model.safetensors"
		if opt.ShardBytes > 0 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
		for _, t := range sh {
			weightMap[t.Name] = name
			total += shapeElems(t.Shape) * int64(t.DType.ElemBytes())
		}
		if err := writeShard(filepath.Join(dir, name), sh, opt); err != nil {
			return err
		}
	}
	if opt.ShardBytes > 0 {
		idx, _ := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644); err != nil {
			return err
		}
	}
	cj, err := hfConfigFile(cfg, opt, kind, ignore)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644)
}

func writeShard(path string, tensors []WriteTensor, opt HFOptions) error {
	if opt.Sparse {
		// Header only: the data region is a hole of the right length.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		var data int64
		for _, t := range tensors {
			data += shapeElems(t.Shape) * int64(t.DType.ElemBytes())
		}
		// Write the real header (sizes from shapes) by writing with a writer that stops after it.
		hw := &headerOnly{w: f}
		err = WriteSafetensors(hw, withSizes(tensors), opt.ExtraMetadata)
		if err != nil && !errors.Is(err, errHeaderDone) {
			f.Close()
			return err
		}
		if err := f.Truncate(hw.n + data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	f, err := os.Create(path + map[bool]string{true: ".zst", false: ""}[opt.Compress])
	if err != nil {
		return err
	}
	if !opt.Compress {
		err = WriteSafetensors(f, tensors, opt.ExtraMetadata)
	} else {
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- CompressZstd(f, pr) }()
		err = WriteSafetensors(pw, tensors, opt.ExtraMetadata)
		pw.CloseWithError(err)
		if zerr := <-done; err == nil {
			err = zerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// withSizes marks tensors so WriteSafetensors computes header sizes from their shapes; data writers
// are replaced by one that ends the header-only write.
func withSizes(ts []WriteTensor) []WriteTensor {
	out := make([]WriteTensor, len(ts))
	for i, t := range ts {
		out[i] = t
		out[i].Write = func(io.Writer) error { return errHeaderDone }
	}
	return out
}

var errHeaderDone = fmt.Errorf("header written")

type headerOnly struct {
	w io.Writer
	n int64
}

func (h *headerOnly) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.n += int64(n)
	return n, err
}

// fp8State carries a weight's scales from its writer to its scale tensor's writer.
type fp8State struct {
	scales     []float32
	inputScale float32
}

func hfWeightWriter(cfg Config, s TensorSpec, dt DType, quant bool, kind ScaleKind, st *fp8State, src TensorSource) func(io.Writer) error {
	return func(w io.Writer) error {
		v, err := fetch(src, s.Name, s.Shape)
		if err != nil {
			return err
		}
		if v, err = toLayout(cfg, s.Name, v, s.Shape, RopeRotateHalf); err != nil {
			return err
		}
		if !quant {
			b, err := EncodeValues(dt, v)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
		q, scales := QuantizeFP8(v, s.Shape[0], s.Shape[1], kind)
		st.scales = scales
		st.inputScale = 0.0125 // a plausible static activation scale (absmax 5.6 / 448)
		_, err = w.Write(q)
		return err
	}
}

// QuantizeFP8 quantizes a [rows, cols] matrix to e4m3 with scale = absmax/448 per tensor, per row, or
// per 128x128 block (w ~ q * scale). All-zero groups get scale 1.
func QuantizeFP8(v []float32, rows, cols int, kind ScaleKind) ([]byte, []float32) {
	group := func(r, k int) int {
		switch kind {
		case ScaleChannel:
			return r
		case ScaleBlock:
			return (r/128)*((cols+127)/128) + k/128
		}
		return 0
	}
	n := 1
	switch kind {
	case ScaleChannel:
		n = rows
	case ScaleBlock:
		n = ((rows + 127) / 128) * ((cols + 127) / 128)
	}
	amax := make([]float32, n)
	for r := 0; r < rows; r++ {
		for k := 0; k < cols; k++ {
			g := group(r, k)
			amax[g] = max(amax[g], float32(math.Abs(float64(v[r*cols+k]))))
		}
	}
	scales := make([]float32, n)
	for i, a := range amax {
		scales[i] = a / 448
		if a == 0 {
			scales[i] = 1
		}
	}
	q := make([]byte, len(v))
	for r := 0; r < rows; r++ {
		for k := 0; k < cols; k++ {
			q[r*cols+k] = f32ToFP8E4M3(v[r*cols+k] / scales[group(r, k)])
		}
	}
	return q, scales
}

func writeF32s(w io.Writer, v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	_, err := w.Write(b)
	return err
}

// hfConfigFile renders config.json for cfg.
func hfConfigFile(cfg Config, opt HFOptions, kind ScaleKind, ignore []string) ([]byte, error) {
	m := map[string]any{
		"architectures":           []string{opt.Architecture},
		"model_type":              strings.ToLower(strings.TrimSuffix(opt.Architecture, "ForCausalLM")),
		"hidden_size":             cfg.Dim,
		"intermediate_size":       cfg.FFN,
		"num_hidden_layers":       cfg.Layers,
		"num_attention_heads":     cfg.Heads,
		"num_key_value_heads":     cfg.KVHeads,
		"head_dim":                cfg.HeadDim,
		"vocab_size":              cfg.Vocab,
		"max_position_embeddings": cfg.Context,
		"rms_norm_eps":            cfg.NormEps,
		"rope_theta":              cfg.RopeTheta,
		"tie_word_embeddings":     cfg.Tied,
		"bos_token_id":            cfg.BOS,
		"hidden_act":              "silu",
		"torch_dtype":             map[DType]string{F32: "float32", F16: "float16", BF16: "bfloat16", F8E4M3: "bfloat16"}[opt.DType],
	}
	if len(cfg.EOS) == 1 {
		m["eos_token_id"] = cfg.EOS[0]
	} else if len(cfg.EOS) > 1 {
		m["eos_token_id"] = cfg.EOS
	}
	if rs := cfg.RopeScaling; rs != nil {
		m["rope_scaling"] = map[string]any{"rope_type": rs.Type, "factor": rs.Factor, "low_freq_factor": rs.LowFreqFactor,
			"high_freq_factor": rs.HighFreqFactor, "original_max_position_embeddings": rs.OriginalContext}
	}
	if opt.DType == F8E4M3 {
		switch opt.FP8Method {
		case "compressed-tensors":
			strategy := map[ScaleKind]string{ScaleTensor: "tensor", ScaleChannel: "channel", ScaleBlock: "block"}[kind]
			weights := map[string]any{"num_bits": 8, "type": "float", "strategy": strategy, "symmetric": true, "dynamic": false}
			if kind == ScaleBlock {
				weights["block_structure"] = []int{128, 128}
			}
			group := map[string]any{"targets": []string{"Linear"}, "weights": weights}
			if opt.InputScales {
				group["input_activations"] = map[string]any{"num_bits": 8, "type": "float", "strategy": "tensor", "symmetric": true, "dynamic": false}
			}
			m["quantization_config"] = map[string]any{"quant_method": "compressed-tensors", "format": "float-quantized",
				"config_groups": map[string]any{"group_0": group}, "ignore": ignore, "kv_cache_scheme": nil}
		case "fbgemm_fp8":
			m["quantization_config"] = map[string]any{"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0, "modules_to_not_convert": ignore}
		case "fp8":
			m["quantization_config"] = map[string]any{"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
				"weight_block_size": []int{128, 128}, "modules_to_not_convert": ignore}
		}
	}
	return json.MarshalIndent(m, "", "  ")
}
