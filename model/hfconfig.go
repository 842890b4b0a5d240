package model

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// SupportedHFArchitectures are the config.json architectures the HF reader maps onto Config.
var SupportedHFArchitectures = []string{"LlamaForCausalLM", "MistralForCausalLM"}

// hfConfigJSON is the part of a Hugging Face config.json we read.
type hfConfigJSON struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             int             `json:"vocab_size"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           map[string]any  `json:"rope_scaling"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	SlidingWindow         *int            `json:"sliding_window"`
	QuantizationConfig    json.RawMessage `json:"quantization_config"`
}

// fp8Scheme is how a config.json says its F8_E4M3 weights are scaled.
type fp8Scheme struct {
	Method    string    // compressed-tensors, fbgemm_fp8, fp8
	Kind      ScaleKind // expected layout of weight scales
	ScaleName string    // suffix replacing "weight": weight_scale or weight_scale_inv
	Ignore    []string  // modules left unquantized: exact names or "re:" regexes
	ignoreRE  []*regexp.Regexp
	Desc      string
}

// parseHFConfig maps config.json onto Config; notes collects assumptions.
func parseHFConfig(file string, js []byte) (Config, string, *fp8Scheme, []string, error) {
	var h hfConfigJSON
	var notes []string
	if err := json.Unmarshal(js, &h); err != nil {
		return Config{}, "", nil, nil, fmt.Errorf("%s: %v", file, err)
	}
	arch := ""
	if len(h.Architectures) > 0 {
		arch = h.Architectures[0]
	}
	ok := false
	for _, a := range SupportedHFArchitectures {
		ok = ok || a == arch
	}
	if !ok {
		return Config{}, arch, nil, nil, fmt.Errorf("%s: architectures %v not supported (supported: %s)", file, h.Architectures, strings.Join(SupportedHFArchitectures, ", "))
	}
	cfg := Config{
		Arch: "llama", Dim: h.HiddenSize, Layers: h.NumHiddenLayers, Heads: h.NumAttentionHeads, FFN: h.IntermediateSize,
		Vocab: h.VocabSize, Context: h.MaxPositionEmbeddings, NormEps: 1e-6, RopeLayout: RopeRotateHalf, RopeTheta: 10000,
		BOS: 1, EOS: []int{2},
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden_size", h.HiddenSize}, {"intermediate_size", h.IntermediateSize}, {"num_hidden_layers", h.NumHiddenLayers},
		{"num_attention_heads", h.NumAttentionHeads}, {"vocab_size", h.VocabSize}} {
		if f.v <= 0 || f.v > 1<<24 {
			return cfg, arch, nil, nil, fmt.Errorf("%s: field %s = %d, want 1..%d", file, f.name, f.v, 1<<24)
		}
	}
	cfg.KVHeads = cfg.Heads
	if h.NumKeyValueHeads != nil {
		cfg.KVHeads = *h.NumKeyValueHeads
	}
	if cfg.KVHeads <= 0 || cfg.KVHeads > cfg.Heads {
		return cfg, arch, nil, nil, fmt.Errorf("%s: field num_key_value_heads = %d, want 1..num_attention_heads (%d)", file, cfg.KVHeads, cfg.Heads)
	}
	if h.HeadDim != nil {
		if *h.HeadDim <= 0 {
			return cfg, arch, nil, nil, fmt.Errorf("%s: field head_dim = %d, want a positive number (or no head_dim: hidden_size / num_attention_heads)", file, *h.HeadDim)
		}
		cfg.HeadDim = *h.HeadDim
	} else {
		if cfg.Dim%cfg.Heads != 0 {
			return cfg, arch, nil, nil, fmt.Errorf("%s: hidden_size %d not a multiple of num_attention_heads %d and no head_dim", file, cfg.Dim, cfg.Heads)
		}
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	if cfg.HeadDim > 1<<16 {
		return cfg, arch, nil, nil, fmt.Errorf("%s: field head_dim = %d, too large", file, cfg.HeadDim)
	}
	if cfg.Context < 0 || cfg.Context > MaxContext {
		return cfg, arch, nil, nil, fmt.Errorf("%s: field max_position_embeddings = %d, want 1..%d", file, cfg.Context, MaxContext)
	}
	if cfg.Context == 0 {
		notes = append(notes, "max_position_embeddings missing: context 2048 assumed")
		cfg.Context = 2048
	}
	if h.RMSNormEps != nil {
		cfg.NormEps = *h.RMSNormEps
	}
	if h.RopeTheta != nil {
		cfg.RopeTheta = *h.RopeTheta
	}
	if !(cfg.NormEps > 0) || !(cfg.RopeTheta > 0) {
		return cfg, arch, nil, nil, fmt.Errorf("%s: rms_norm_eps %v and rope_theta %v must be positive", file, cfg.NormEps, cfg.RopeTheta)
	}
	if h.TieWordEmbeddings != nil {
		cfg.Tied = *h.TieWordEmbeddings
	}
	if h.SlidingWindow != nil && *h.SlidingWindow > 0 {
		notes = append(notes, fmt.Sprintf("sliding_window %d ignored (full attention)", *h.SlidingWindow))
	}
	if typ, _ := h.RopeScaling["rope_type"].(string); typ == "default" {
		h.RopeScaling = nil
	}
	if len(h.RopeScaling) > 0 {
		rs, err := parseRopeScaling(file, h.RopeScaling)
		if err != nil {
			return cfg, arch, nil, nil, err
		}
		cfg.RopeScaling = rs
	}
	var err error
	if ids, err2 := tokenIDs(h.BOSTokenID); err2 != nil {
		return cfg, arch, nil, nil, fmt.Errorf("%s: bos_token_id: %v", file, err2)
	} else if len(ids) > 0 {
		cfg.BOS = ids[0]
	}
	if ids, err2 := tokenIDs(h.EOSTokenID); err2 != nil {
		return cfg, arch, nil, nil, fmt.Errorf("%s: eos_token_id: %v", file, err2)
	} else if len(ids) > 0 {
		cfg.EOS = ids
	}
	var q *fp8Scheme
	if len(h.QuantizationConfig) > 0 && string(h.QuantizationConfig) != "null" {
		q, err = parseQuantConfig(file, h.QuantizationConfig)
		if err != nil {
			return cfg, arch, nil, nil, err
		}
	}
	return cfg, arch, q, notes, nil
}

// tokenIDs reads an int, a list of ints, or null.
func tokenIDs(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want an int or a list of ints, got %s", raw)
	}
	return many, nil
}

func parseRopeScaling(file string, m map[string]any) (*RopeScaling, error) {
	typ, _ := m["rope_type"].(string)
	if typ == "" {
		typ, _ = m["type"].(string)
	}
	if typ != "llama3" {
		return nil, fmt.Errorf("%s: rope_scaling type %q not supported (want llama3)", file, typ)
	}
	num := func(k string) (float64, error) {
		v, ok := m[k].(float64)
		if !ok || !(v > 0) {
			return 0, fmt.Errorf("%s: rope_scaling.%s = %v, want a positive number", file, k, m[k])
		}
		return v, nil
	}
	rs := &RopeScaling{Type: typ}
	var err error
	if rs.Factor, err = num("factor"); err != nil {
		return nil, err
	}
	if rs.LowFreqFactor, err = num("low_freq_factor"); err != nil {
		return nil, err
	}
	if rs.HighFreqFactor, err = num("high_freq_factor"); err != nil {
		return nil, err
	}
	o, err := num("original_max_position_embeddings")
	if err != nil {
		return nil, err
	}
	rs.OriginalContext = int(o)
	return rs, nil
}

// parseQuantConfig reads quantization_config for the FP8 schemes we decode.
func parseQuantConfig(file string, raw json.RawMessage) (*fp8Scheme, error) {
	var q struct {
		QuantMethod          string   `json:"quant_method"`
		Format               string   `json:"format"`
		Ignore               []string `json:"ignore"`
		ModulesToNotConvert  []string `json:"modules_to_not_convert"`
		WeightBlockSize      []int    `json:"weight_block_size"`
		ActivationSchemeName string   `json:"activation_scheme"`
		ConfigGroups         map[string]struct {
			Weights *struct {
				NumBits  int    `json:"num_bits"`
				Type     string `json:"type"`
				Strategy string `json:"strategy"`
				Block    []int  `json:"block_structure"`
			} `json:"weights"`
		} `json:"config_groups"`
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		return nil, fmt.Errorf("%s: quantization_config: %v", file, err)
	}
	s := &fp8Scheme{Method: q.QuantMethod, ScaleName: "weight_scale"}
	switch q.QuantMethod {
	case "compressed-tensors":
		s.Ignore = q.Ignore
		strategy := ""
		for name, g := range q.ConfigGroups {
			if g.Weights == nil {
				continue
			}
			w := g.Weights
			if w.Type != "float" || w.NumBits != 8 {
				return nil, fmt.Errorf("%s: quantization_config.config_groups.%s.weights: type %q num_bits %d not supported (want float, 8)", file, name, w.Type, w.NumBits)
			}
			if strategy != "" && strategy != w.Strategy {
				return nil, fmt.Errorf("%s: quantization_config: config groups mix weight strategies %q and %q", file, strategy, w.Strategy)
			}
			strategy = w.Strategy
			if w.Strategy == "block" && (len(w.Block) != 2 || w.Block[0] != 128 || w.Block[1] != 128) {
				return nil, fmt.Errorf("%s: quantization_config.config_groups.%s.weights.block_structure %v, want [128, 128]", file, name, w.Block)
			}
		}
		switch strategy {
		case "tensor":
			s.Kind = ScaleTensor
		case "channel":
			s.Kind = ScaleChannel
		case "block":
			s.Kind = ScaleBlock
		default:
			return nil, fmt.Errorf("%s: quantization_config: weight strategy %q not supported (want tensor, channel or block)", file, strategy)
		}
	case "fbgemm_fp8":
		s.Kind, s.Ignore = ScaleChannel, q.ModulesToNotConvert
	case "fp8":
		s.Ignore, s.ScaleName = q.ModulesToNotConvert, "weight_scale_inv"
		if len(q.WeightBlockSize) != 2 || q.WeightBlockSize[0] != 128 || q.WeightBlockSize[1] != 128 {
			return nil, fmt.Errorf("%s: quantization_config.weight_block_size %v, want [128, 128]", file, q.WeightBlockSize)
		}
		s.Kind = ScaleBlock
	default:
		return nil, fmt.Errorf("%s: quantization_config.quant_method %q not supported (want compressed-tensors, fbgemm_fp8 or fp8)", file, q.QuantMethod)
	}
	if err := s.compileIgnore(); err != nil {
		return nil, fmt.Errorf("%s: quantization_config %v", file, err)
	}
	s.Desc = fmt.Sprintf("fp8-e4m3 %s, %s weight scales", s.Method, s.Kind)
	if len(s.Ignore) > 0 {
		s.Desc += fmt.Sprintf(", not quantized: %s", strings.Join(s.Ignore, ", "))
	}
	return s, nil
}

// compileIgnore compiles the "re:" entries of Ignore.
func (s *fp8Scheme) compileIgnore() error {
	s.ignoreRE = nil
	for _, ig := range s.Ignore {
		if p, ok := strings.CutPrefix(ig, "re:"); ok {
			re, err := regexp.Compile("^(?:" + p + ")")
			if err != nil {
				return fmt.Errorf("ignore entry %q: %v", ig, err)
			}
			s.ignoreRE = append(s.ignoreRE, re)
		}
	}
	return nil
}

// ignored reports whether a module (e.g. "lm_head", "model.layers.3.mlp.down_proj") stays unquantized:
// an exact entry, a "re:" regex matching from the start, or an entry naming a dotted prefix of it.
func (s *fp8Scheme) ignored(module string) bool {
	for _, ig := range s.Ignore {
		if strings.HasPrefix(ig, "re:") {
			continue
		}
		if module == ig || strings.HasPrefix(module, ig+".") {
			return true
		}
	}
	for _, re := range s.ignoreRE {
		if re.MatchString(module) {
			return true
		}
	}
	return false
}
