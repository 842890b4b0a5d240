package model

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// SyntheticHFTokenizer is SyntheticVocab as a Hugging Face tokenizer.json and tokenizer_config.json of the
// Llama-2 (SentencePiece-style BPE) shape: "▁" for spaces, byte fallback through the <0xXX> tokens, and one
// merge per multi-character token (its text less the last character, then that character), ranked by id,
// so a folder written by `kvc synth --format hf` works with every text command, as its GGUF twin does.
func SyntheticHFTokenizer(n int) (tokenizerJSON, configJSON []byte, err error) {
	tokens, _, _, err := SyntheticVocab(n)
	if err != nil {
		return nil, nil, err
	}
	vocab := make(map[string]int, len(tokens))
	for id, t := range tokens {
		vocab[t] = id
	}
	merges := []string{}
	for _, t := range tokens {
		if strings.HasPrefix(t, "<") || utf8.RuneCountInString(t) < 2 {
			continue
		}
		_, last := utf8.DecodeLastRuneInString(t)
		head, tail := t[:len(t)-last], t[len(t)-last:]
		if _, ok := vocab[head]; ok {
			if _, ok := vocab[tail]; ok {
				merges = append(merges, head+" "+tail)
			}
		}
	}
	special := []map[string]any{}
	for i, s := range []string{"<unk>", "<s>", "</s>"} {
		special = append(special, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true})
	}
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": special,
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
			"vocab": vocab, "merges": merges},
	}
	if tokenizerJSON, err = json.MarshalIndent(doc, "", " "); err != nil {
		return nil, nil, err
	}
	configJSON, err = json.MarshalIndent(map[string]any{"tokenizer_class": "LlamaTokenizer",
		"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true}, "", " ")
	return tokenizerJSON, configJSON, err
}
