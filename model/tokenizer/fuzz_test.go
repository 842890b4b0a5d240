package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeDecode checks, for every kind of tokenizer, that ids stay in the vocab and that decoding
// gives back the text, byte for byte, for any input (also invalid UTF-8: byte fallback and the
// byte-level alphabet cover every byte), and that the stream decoder agrees with Decode.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range append(mixedTexts, "", " ", "\xff\xfe", "\xe6\x97", "a\u00a0b", "  \n\n  ") {
		f.Add(s)
	}
	gguf, err := FromGGUF(ggufLlamaMeta(f))
	if err != nil {
		f.Fatal(err)
	}
	gpt2, err := FromGGUF(ggufGPT2Meta(f))
	if err != nil {
		f.Fatal(err)
	}
	kinds := []struct {
		name string
		tk   Tokenizer
		spm  bool // decodes "▁" as a space
		// needUTF8: round trips only valid UTF-8. GGUF "llama" splits characters as llama.cpp does, by
		// the length a lead byte announces, after spaces became "▁": a bad lead byte swallows the
		// following "▁" bytes into byte fallback, which then decode as "▁", not as a space.
		needUTF8 bool
	}{
		{"llama2.c", loadTok512(f), false, false},
		{"hf byte-level", byteLevelHF(f), false, false},
		{"hf sentencepiece", spmHF(f, false), true, false},
		{"gguf llama", gguf, true, true},
		{"gguf gpt2", gpt2, false, false},
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range kinds {
			ids := k.tk.Encode(s, true)
			for _, id := range ids {
				if id < 0 || id >= k.tk.Vocab() {
					t.Fatalf("%s: %q: id %d outside vocab %d", k.name, s, id, k.tk.Vocab())
				}
			}
			got := k.tk.Decode(ids)
			d := k.tk.NewDecoder()
			var sb strings.Builder
			for _, id := range ids {
				sb.WriteString(d.Push(id))
			}
			sb.WriteString(d.Flush())
			if sb.String() != got {
				t.Fatalf("%s: %q: stream %q != Decode %q", k.name, s, sb.String(), got)
			}
			// Special-token text is encoded as the token (omitted by Decode); "▁" decodes as a space.
			if strings.Contains(s, "<|") || strings.Contains(s, "<s>") || strings.Contains(s, "</s>") ||
				strings.Contains(s, "<unk>") || (k.spm && strings.Contains(s, "▁")) || (k.needUTF8 && !utf8.ValidString(s)) {
				continue
			}
			if got != s {
				t.Fatalf("%s: %q: ids %v decode to %q", k.name, s, ids, got)
			}
		}
	})
}
