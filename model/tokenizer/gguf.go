package tokenizer

import (
	"fmt"
	"math"
	"strings"
)

// GGUF token types (tokenizer.ggml.token_type).
const (
	ggufNormal      = 1
	ggufUnknown     = 2
	ggufControl     = 3
	ggufUserDefined = 4
	ggufUnused      = 5
	ggufByte        = 6
)

// FromGGUF builds the tokenizer stored in GGUF metadata (as the model reader exposes it: strings as
// string, string arrays as []string, f32 arrays as []float32, i32 arrays as []int32, integers as their
// Go types).
//
// tokenizer.ggml.model "llama" is SentencePiece: tokens, scores and token_type, encoded with run.c's
// score-greedy merging, "▁" for spaces, <0xXX> byte tokens and a dummy prefix space unless
// tokenizer.ggml.add_space_prefix is false. "gpt2" is byte-level BPE: tokens and merges, split by the
// pre-tokenizer named in tokenizer.ggml.pre: "gpt2"/"gpt-2" use GPT-2's regex; "llama-bpe" and every
// other or missing name use Llama-3's (the common case for llama-family GGUFs; other families' regexes
// are not implemented). Control and user-defined tokens are matched whole in the text. EOS is
// tokenizer.ggml.eos_token_id followed by eot_token_id and eom_token_id when present.
func FromGGUF(meta map[string]any) (Tokenizer, error) {
	kind, err := metaString(meta, "tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	tokens, ok := meta["tokenizer.ggml.tokens"].([]string)
	if !ok {
		return nil, missingOrWrong(meta, "tokenizer.ggml.tokens", "a string array")
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.tokens is empty")
	}
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = ggufNormal
	}
	if raw, present := meta["tokenizer.ggml.token_type"]; present {
		t, ok := raw.([]int32)
		if !ok || len(t) != len(tokens) {
			return nil, fmt.Errorf("gguf: tokenizer.ggml.token_type: want an i32 array of %d entries (one per token), got %T of %d",
				len(tokens), raw, lenOf(raw))
		}
		copy(types, t)
	}
	v := newVocab(tokens)
	if v.bos, err = metaTokenID(meta, "tokenizer.ggml.bos_token_id", len(tokens), true); err != nil {
		return nil, err
	}
	eos, err := metaTokenID(meta, "tokenizer.ggml.eos_token_id", len(tokens), true)
	if err != nil {
		return nil, err
	}
	v.eos = []int{eos}
	for _, key := range []string{"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"} {
		id, err := metaTokenID(meta, key, len(tokens), false)
		if err != nil {
			return nil, err
		}
		if id >= 0 && !containsInt(v.eos, id) {
			v.eos = append(v.eos, id)
		}
	}

	var specials []specialToken
	for i, t := range types {
		switch t {
		case ggufControl:
			v.skip[i] = true
			specials = append(specials, specialToken{text: tokens[i], id: i})
		case ggufUserDefined:
			specials = append(specials, specialToken{text: tokens[i], id: i})
		}
	}
	v.specials = newSpecialSet(specials)

	switch kind {
	case "llama":
		scores, ok := meta["tokenizer.ggml.scores"].([]float32)
		if !ok || len(scores) != len(tokens) {
			if !ok {
				return nil, missingOrWrong(meta, "tokenizer.ggml.scores", "an f32 array")
			}
			return nil, fmt.Errorf("gguf: tokenizer.ggml.scores has %d entries for %d tokens", len(scores), len(tokens))
		}
		addPrefix := true
		if raw, present := meta["tokenizer.ggml.add_space_prefix"]; present {
			b, ok := raw.(bool)
			if !ok {
				return nil, fmt.Errorf("gguf: tokenizer.ggml.add_space_prefix: want a bool, got %T", raw)
			}
			addPrefix = b
		}
		unk, err := metaTokenID(meta, "tokenizer.ggml.unknown_token_id", len(tokens), false)
		if err != nil {
			return nil, err
		}
		var byteIDs [256]int
		for b := range byteIDs {
			byteIDs[b] = unk
			if id, ok := v.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
				byteIDs[b] = id
			}
		}
		for i, p := range tokens {
			if b, ok := byteToken(p); ok && (types[i] == ggufByte || types[i] == ggufNormal) {
				v.decoded[i] = []byte{b}
			} else if types[i] == ggufUserDefined {
				v.decoded[i] = []byte(p) // llama.cpp prints user-defined tokens as stored
			} else {
				v.decoded[i] = []byte(strings.ReplaceAll(p, "▁", " "))
			}
		}
		prefix := prefixNever
		if addPrefix {
			prefix = prefixAlways // llama.cpp adds it to every text run that starts or follows a special token
		}
		v.stripAfterBOS = addPrefix
		v.segment = &scoreEncoder{v: v, scores: scores, space: "▁", prefix: prefix,
			minScore: float32(math.Inf(-1)), byteID: func(b byte) int { return byteIDs[b] }, leadLength: true}
	case "gpt2":
		merges, ok := meta["tokenizer.ggml.merges"].([]string)
		if !ok {
			return nil, missingOrWrong(meta, "tokenizer.ggml.merges", "a string array")
		}
		e := &rankEncoder{v: v, ids: v.ids, unk: -1, merges: make(map[[2]int]rankedMerge, len(merges))}
		for rank, m := range merges {
			a, b, found := strings.Cut(m, " ")
			ia, okA := v.ids[a]
			ib, okB := v.ids[b]
			im, okM := v.ids[a+b]
			if !found || !okA || !okB || !okM {
				return nil, fmt.Errorf("gguf: tokenizer.ggml.merges[%d] %q: want two tokens separated by a space whose merge is a token", rank, m)
			}
			if _, dup := e.merges[[2]int{ia, ib}]; !dup {
				e.merges[[2]int{ia, ib}] = rankedMerge{rank: rank, id: im}
			}
		}
		split := splitLlama3
		e.ignoreMerges = true // llama.cpp does so for Llama-3
		if pre, _ := meta["tokenizer.ggml.pre"].(string); pre == "gpt2" || pre == "gpt-2" {
			split, e.ignoreMerges = splitGPT2, false
		}
		e.pretok = []func([]string, bool) []string{func(words []string, _ bool) []string {
			var out []string
			for _, w := range words {
				for _, p := range split(w) {
					out = append(out, byteLevelEncode(p))
				}
			}
			return out
		}}
		for i, p := range tokens {
			if types[i] == ggufUserDefined {
				v.decoded[i] = []byte(p)
			} else {
				v.decoded[i] = byteLevelDecode(p)
			}
		}
		v.segment = e
	default:
		return nil, fmt.Errorf("gguf: tokenizer.ggml.model %q is not supported (want llama or gpt2)", kind)
	}
	v.markSkipped()
	return v, nil
}

func metaString(meta map[string]any, key string) (string, error) {
	s, ok := meta[key].(string)
	if !ok {
		return "", missingOrWrong(meta, key, "a string")
	}
	return s, nil
}

func missingOrWrong(meta map[string]any, key, want string) error {
	raw, present := meta[key]
	if !present {
		return fmt.Errorf("gguf: metadata key %s is missing (want %s)", key, want)
	}
	return fmt.Errorf("gguf: metadata key %s: want %s, got %T", key, want, raw)
}

func lenOf(x any) int {
	switch a := x.(type) {
	case []int32:
		return len(a)
	case []any:
		return len(a)
	case []string:
		return len(a)
	case []float32:
		return len(a)
	}
	return 0
}

// metaTokenID reads an integer token id in [0, vocab); -1 when it is absent and not required.
func metaTokenID(meta map[string]any, key string, vocab int, required bool) (int, error) {
	raw, present := meta[key]
	if !present {
		if required {
			return -1, fmt.Errorf("gguf: metadata key %s is missing (want a token id)", key)
		}
		return -1, nil
	}
	var id int64
	switch x := raw.(type) {
	case uint8:
		id = int64(x)
	case int8:
		id = int64(x)
	case uint16:
		id = int64(x)
	case int16:
		id = int64(x)
	case uint32:
		id = int64(x)
	case int32:
		id = int64(x)
	case uint64:
		if x > math.MaxInt32 {
			id = math.MaxInt32
		} else {
			id = int64(x)
		}
	case int64:
		id = x
	case int:
		id = int64(x)
	default:
		return -1, fmt.Errorf("gguf: metadata key %s: want an integer token id, got %T", key, raw)
	}
	if id < 0 || id >= int64(vocab) {
		return -1, fmt.Errorf("gguf: metadata key %s = %d is outside the vocab [0, %d)", key, id, vocab)
	}
	return int(id), nil
}
