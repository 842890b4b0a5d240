package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Hugging Face llama tensor names <-> canonical (GGUF) names.

var hfLayerNames = map[string]string{
	"input_layernorm":          "attn_norm",
	"self_attn.q_proj":         "attn_q",
	"self_attn.k_proj":         "attn_k",
	"self_attn.v_proj":         "attn_v",
	"self_attn.o_proj":         "attn_output",
	"post_attention_layernorm": "ffn_norm",
	"mlp.gate_proj":            "ffn_gate",
	"mlp.up_proj":              "ffn_up",
	"mlp.down_proj":            "ffn_down",
}

var hfGlobalNames = map[string]string{
	"model.embed_tokens": "token_embd",
	"model.norm":         "output_norm",
	"lm_head":            "output",
}

// canonicalFromHF maps an HF module name (without ".weight") to a canonical name, or "" if unknown.
func canonicalFromHF(module string) string {
	if c, ok := hfGlobalNames[module]; ok {
		return c
	}
	rest, ok := strings.CutPrefix(module, "model.layers.")
	if !ok {
		return ""
	}
	i := strings.IndexByte(rest, '.')
	if i <= 0 {
		return ""
	}
	l, err := strconv.Atoi(rest[:i])
	if err != nil || l < 0 || strconv.Itoa(l) != rest[:i] {
		return ""
	}
	if c, ok := hfLayerNames[rest[i+1:]]; ok {
		return LayerTensor(l, c)
	}
	return ""
}

// hfModule maps a canonical name to its HF module name (without ".weight"), or "" if none.
func hfModule(canonical string) string {
	for h, c := range hfGlobalNames {
		if c == canonical {
			return h
		}
	}
	var l int
	var suffix string
	if n, _ := fmt.Sscanf(canonical, "blk.%d.", &l); n != 1 {
		return ""
	}
	suffix = canonical[strings.IndexByte(canonical[4:], '.')+5:]
	for h, c := range hfLayerNames {
		if c == suffix {
			return fmt.Sprintf("model.layers.%d.%s", l, h)
		}
	}
	return ""
}

// hfName is the HF weight tensor name of a canonical name.
func hfName(canonical string) string {
	if m := hfModule(canonical); m != "" {
		return m + ".weight"
	}
	return ""
}
