package model

import (
	"fmt"
)

// GGUF token types (tokenizer.ggml.token_type), as llama.cpp numbers them.
const (
	ggufTokNormal  = 1
	ggufTokUnknown = 2
	ggufTokControl = 3
	ggufTokByte    = 6

	// GGUFTokenByte is the token type of a <0xXX> byte token.
	GGUFTokenByte = ggufTokByte
)

// SyntheticVocab is a SentencePiece-style vocabulary of n tokens (n >= 259) for models with random
// weights, so that every text command runs on them: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>
// at ids 3..258 (any text encodes through them), then distinct pieces "▁", "a", "▁a", "b", ... "aa", "▁aa",
// ... scored so that shorter pieces are preferred.
func SyntheticVocab(n int) (tokens []string, scores []float32, types []int32, err error) {
	if n < 259 {
		return nil, nil, nil, fmt.Errorf("a synthetic vocabulary needs at least 259 tokens (<unk>, <s>, </s>, 256 bytes), the model has %d", n)
	}
	tokens = make([]string, 0, n)
	types = make([]int32, 0, n)
	add := func(s string, typ int32) { tokens, types = append(tokens, s), append(types, typ) }
	add("<unk>", ggufTokUnknown)
	add("<s>", ggufTokControl)
	add("</s>", ggufTokControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), ggufTokByte)
	}
	if len(tokens) < n {
		add("▁", ggufTokNormal)
	}
	// Words over a..z in length order, each bare and with the space marker.
	for k := 0; len(tokens) < n; k++ {
		var w []byte
		for x := k; ; x = x/26 - 1 {
			w = append([]byte{byte('a' + x%26)}, w...)
			if x < 26 {
				break
			}
		}
		add(string(w), ggufTokNormal)
		if len(tokens) < n {
			add("▁"+string(w), ggufTokNormal)
		}
	}
	scores = make([]float32, n)
	for i := range scores {
		scores[i] = -float32(i)
	}
	return tokens, scores, types, nil
}

// SyntheticVocabKVs is SyntheticVocab as GGUF "llama" tokenizer metadata.
func SyntheticVocabKVs(n int) ([]GGUFKV, error) {
	tokens, scores, types, err := SyntheticVocab(n)
	if err != nil {
		return nil, err
	}
	return []GGUFKV{
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
	}, nil
}

// checkGGUFVocab makes the tokenizer metadata of a model kvc writes acceptable to llama.cpp's loader as
// well as kvc's: tokenizer.ggml.model is always present ("none" when there is no vocabulary), and a
// vocabulary has one distinct string per token (llama.cpp maps strings back to ids and aborts on a
// repeat), as many tokens as the model's rows, per-token arrays of the same length, and, for "llama",
// a newline token (<0x0A> or "\n", which llama.cpp looks up at load).
func checkGGUFVocab(kvs []GGUFKV, vocab int) ([]GGUFKV, error) {
	get := func(key string) (any, bool) {
		for _, kv := range kvs {
			if kv.Key == key {
				return kv.Value, true
			}
		}
		return nil, false
	}
	kind, ok := get("tokenizer.ggml.model")
	if !ok {
		if _, has := get("tokenizer.ggml.tokens"); has {
			return nil, fmt.Errorf("gguf: tokenizer.ggml.tokens without tokenizer.ggml.model")
		}
		return append(kvs, GGUFKV{"tokenizer.ggml.model", "none"}), nil
	}
	if kind == "none" || kind == "no_vocab" {
		return kvs, nil
	}
	raw, ok := get("tokenizer.ggml.tokens")
	tokens, isStrings := raw.([]string)
	if !ok || !isStrings {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.model %q needs tokenizer.ggml.tokens (a string array)", kind)
	}
	if len(tokens) != vocab {
		return nil, fmt.Errorf("gguf: %d tokens for a model vocabulary of %d", len(tokens), vocab)
	}
	seen := make(map[string]int, len(tokens))
	for i, s := range tokens {
		if j, dup := seen[s]; dup {
			return nil, fmt.Errorf("gguf: tokens %d and %d are both %q; llama.cpp needs distinct token strings", j, i, s)
		}
		seen[s] = i
	}
	for _, key := range []string{"tokenizer.ggml.scores", "tokenizer.ggml.token_type"} {
		v, present := get(key)
		if !present {
			continue
		}
		n := -1
		switch a := v.(type) {
		case []float32:
			n = len(a)
		case []int32:
			n = len(a)
		}
		if n != len(tokens) {
			return nil, fmt.Errorf("gguf: %s has %d entries for %d tokens", key, n, len(tokens))
		}
	}
	if kind == "llama" {
		_, hex := seen["<0x0A>"]
		_, raw := seen["\n"]
		if !hex && !raw {
			return nil, fmt.Errorf("gguf: a \"llama\" vocabulary needs a newline token (<0x0A>)")
		}
	}
	return kvs, nil
}
