package model

import (
	"strings"
	"testing"
)

func TestParseHFConfig(t *testing.T) {
	base := `"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	cases := []struct {
		extra string
		check func(Config) bool
		err   string
	}{
		{``, func(c Config) bool {
			return c.KVHeads == 4 && c.HeadDim == 16 && c.NormEps == 1e-6 && c.RopeTheta == 10000 && !c.Tied && c.BOS == 1 && len(c.EOS) == 1 && c.EOS[0] == 2 && c.Context == 2048
		}, ""},
		{`,"num_key_value_heads":2,"head_dim":32,"eos_token_id":[7,8],"bos_token_id":5,"tie_word_embeddings":true,"max_position_embeddings":4096`, func(c Config) bool {
			return c.KVHeads == 2 && c.HeadDim == 32 && len(c.EOS) == 2 && c.EOS[1] == 8 && c.BOS == 5 && c.Tied && c.Context == 4096
		}, ""},
		{`,"eos_token_id":null,"rope_scaling":{"rope_type":"default"}`, func(c Config) bool { return c.RopeScaling == nil && c.EOS[0] == 2 }, ""},
		{`,"rope_scaling":{"type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}`,
			func(c Config) bool { return c.RopeScaling != nil && c.RopeScaling.HighFreqFactor == 4 }, ""},
		{`,"rope_scaling":{"rope_type":"yarn","factor":4}`, nil, "yarn"},
		{`,"rope_scaling":{"rope_type":"llama3","factor":8}`, nil, "low_freq_factor"},
		{`,"num_key_value_heads":8`, nil, "num_key_value_heads"},
		{`,"eos_token_id":"x"`, nil, "eos_token_id"},
		{`,"quantization_config":{"quant_method":"fp8","weight_block_size":[64,64]}`, nil, "weight_block_size"},
		{`,"quantization_config":{"quant_method":"compressed-tensors","config_groups":{"g":{"weights":{"num_bits":8,"type":"int","strategy":"channel"}}}}`, nil, "int"},
		{`,"quantization_config":{"quant_method":"compressed-tensors","ignore":["re:(("],"config_groups":{"g":{"weights":{"num_bits":8,"type":"float","strategy":"tensor"}}}}`, nil, "re:(("},
	}
	for i, tc := range cases {
		cfg, _, _, _, err := parseHFConfig("config.json", []byte("{"+base+tc.extra+"}"))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("case %d: error %v, want one with %q", i, err, tc.err)
			}
			continue
		}
		if err != nil || !tc.check(cfg) {
			t.Fatalf("case %d: %+v, %v", i, cfg, err)
		}
	}
	_, _, _, _, err := parseHFConfig("config.json", []byte(`{"architectures":["LlamaForCausalLM"],"hidden_size":0}`))
	if err == nil || !strings.Contains(err.Error(), "hidden_size") {
		t.Fatalf("zero hidden_size: %v", err)
	}
}

func TestIgnoreMatching(t *testing.T) {
	s := &fp8Scheme{Ignore: []string{"lm_head", "re:.*mlp\\.down_proj$", "model.layers.3"}}
	if err := s.compileIgnore(); err != nil {
		t.Fatal(err)
	}
	for module, want := range map[string]bool{
		"lm_head": true, "model.layers.0.mlp.down_proj": true, "model.layers.0.mlp.up_proj": false,
		"model.layers.3.self_attn.q_proj": true, "model.layers.30.self_attn.q_proj": false, "lm_head2": false,
	} {
		if s.ignored(module) != want {
			t.Fatalf("ignored(%s) = %v, want %v", module, !want, want)
		}
	}
}
