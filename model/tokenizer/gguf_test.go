package tokenizer

import (
	"reflect"
	"strings"
	"testing"
)

// ggufLlamaMeta is tok512 as a GGUF "llama" vocab, the way convert_hf_to_gguf stores SentencePiece.
func ggufLlamaMeta(t testing.TB) map[string]any {
	t.Helper()
	v := loadTok512(t).(*vocab)
	scores := v.segment.(*scoreEncoder).scores
	tokens := make([]string, len(v.pieces))
	types := make([]int32, len(v.pieces))
	for i, p := range v.pieces {
		tokens[i], types[i] = strings.ReplaceAll(p, " ", "▁"), ggufNormal
		switch {
		case i == 0:
			tokens[i], types[i] = "<unk>", ggufUnknown
		case i == 1:
			tokens[i], types[i] = "<s>", ggufControl
		case i == 2:
			tokens[i], types[i] = "</s>", ggufControl
		case i < 3+256:
			types[i] = ggufByte
		}
	}
	return map[string]any{
		"tokenizer.ggml.model":            "llama",
		"tokenizer.ggml.tokens":           tokens,
		"tokenizer.ggml.scores":           append([]float32(nil), scores...),
		"tokenizer.ggml.token_type":       types,
		"tokenizer.ggml.bos_token_id":     uint32(1),
		"tokenizer.ggml.eos_token_id":     uint32(2),
		"tokenizer.ggml.unknown_token_id": uint32(0),
	}
}

func ggufGPT2Meta(t testing.TB) map[string]any {
	t.Helper()
	vocab, merges := byteLevelFixture(300)
	tokens := append(append([]string{}, vocab...), llama3Specials...)
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = ggufNormal
		if i >= len(vocab) {
			types[i] = ggufControl
		}
	}
	var ms []string
	for _, m := range merges {
		ms = append(ms, m[0]+" "+m[1])
	}
	return map[string]any{
		"tokenizer.ggml.model":        "gpt2",
		"tokenizer.ggml.pre":          "llama-bpe",
		"tokenizer.ggml.tokens":       tokens,
		"tokenizer.ggml.token_type":   types,
		"tokenizer.ggml.merges":       ms,
		"tokenizer.ggml.bos_token_id": uint32(len(vocab)),     // <|begin_of_text|>
		"tokenizer.ggml.eos_token_id": uint32(len(vocab) + 1), // <|end_of_text|>
		"tokenizer.ggml.eot_token_id": uint32(len(vocab) + 4), // <|eot_id|>
	}
}

func TestGGUFLlamaMatchesLlama2C(t *testing.T) {
	tk, err := FromGGUF(ggufLlamaMeta(t))
	if err != nil {
		t.Fatal(err)
	}
	ref := loadTok512(t)
	for _, text := range append(mixedTexts, trainCorpus) {
		if got, want := tk.Encode(text, true), ref.Encode(text, true); !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %v\nwant %v (llama2.c)", text, got, want)
		}
	}
	roundTrip(t, tk, mixedTexts)
	// Control tokens in the text are matched whole; the text after one gets its own dummy prefix.
	ids := tk.Encode("hi</s><s>hi", false)
	hi := ref.Encode("hi", false)
	want := append(append(append([]int{}, hi...), 2, 1), hi...)
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("\"hi</s><s>hi\" = %v, want %v", ids, want)
	}
	if tk.BOS() != 1 || !reflect.DeepEqual(tk.EOS(), []int{2}) {
		t.Errorf("BOS %d EOS %v", tk.BOS(), tk.EOS())
	}
	// add_space_prefix false: no dummy prefix, nothing stripped.
	meta := ggufLlamaMeta(t)
	meta["tokenizer.ggml.add_space_prefix"] = false
	tk, err = FromGGUF(meta)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Decode(tk.Encode("Lily", true)); got != "Lily" {
		t.Errorf("no prefix: round trip %q", got)
	}
	if ids := tk.Encode("Lily", false); strings.HasPrefix(tk.Decode(ids[:1]), " ") {
		t.Errorf("no prefix: %v starts with a space", ids)
	}
}

func TestGGUFGPT2MatchesHF(t *testing.T) {
	tk, err := FromGGUF(ggufGPT2Meta(t))
	if err != nil {
		t.Fatal(err)
	}
	ref := byteLevelHF(t)
	texts := append(mixedTexts, trainCorpus, "<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>")
	for _, text := range texts {
		if got, want := tk.Encode(text, true), ref.Encode(text, true); !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %v\nwant %v (tokenizer.json)", text, got, want)
		}
	}
	roundTrip(t, tk, mixedTexts)
	eot, _ := tk.TokenID("<|eot_id|>")
	eos, _ := tk.TokenID("<|end_of_text|>")
	if !reflect.DeepEqual(tk.EOS(), []int{eos, eot}) {
		t.Errorf("EOS %v, want [%d %d]", tk.EOS(), eos, eot)
	}
	// GPT-2's pre-tokenizer keeps digit runs whole.
	meta := ggufGPT2Meta(t)
	meta["tokenizer.ggml.pre"] = "gpt2"
	g2, err := FromGGUF(meta)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := g2.Decode(g2.Encode("123456", false)), tk.Decode(tk.Encode("123456", false)); a != "123456" || b != "123456" {
		t.Errorf("digits round trip: %q %q", a, b)
	}
}

func TestFromGGUFErrors(t *testing.T) {
	base := ggufLlamaMeta(t)
	edit := func(f func(m map[string]any)) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		f(m)
		return m
	}
	cases := map[string]struct {
		meta map[string]any
		want string
	}{
		"no model":   {edit(func(m map[string]any) { delete(m, "tokenizer.ggml.model") }), "tokenizer.ggml.model is missing"},
		"no tokens":  {edit(func(m map[string]any) { delete(m, "tokenizer.ggml.tokens") }), "tokenizer.ggml.tokens is missing"},
		"no scores":  {edit(func(m map[string]any) { delete(m, "tokenizer.ggml.scores") }), "tokenizer.ggml.scores is missing"},
		"no bos":     {edit(func(m map[string]any) { delete(m, "tokenizer.ggml.bos_token_id") }), "tokenizer.ggml.bos_token_id is missing"},
		"no eos":     {edit(func(m map[string]any) { delete(m, "tokenizer.ggml.eos_token_id") }), "tokenizer.ggml.eos_token_id is missing"},
		"eos range":  {edit(func(m map[string]any) { m["tokenizer.ggml.eos_token_id"] = uint32(99999) }), "outside the vocab"},
		"eos type":   {edit(func(m map[string]any) { m["tokenizer.ggml.eos_token_id"] = "2" }), "want an integer"},
		"types len":  {edit(func(m map[string]any) { m["tokenizer.ggml.token_type"] = []int32{1} }), "token_type"},
		"scores len": {edit(func(m map[string]any) { m["tokenizer.ggml.scores"] = []float32{1} }), "scores has 1"},
		"kind":       {edit(func(m map[string]any) { m["tokenizer.ggml.model"] = "bert" }), "\"bert\""},
		"no merges":  {edit(func(m map[string]any) { m["tokenizer.ggml.model"] = "gpt2" }), "tokenizer.ggml.merges is missing"},
		"bad merge": {edit(func(m map[string]any) {
			m["tokenizer.ggml.model"] = "gpt2"
			m["tokenizer.ggml.merges"] = []string{"nope"}
		}), "merges[0]"},
	}
	for name, c := range cases {
		_, err := FromGGUF(c.meta)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.want)
		}
	}
}
