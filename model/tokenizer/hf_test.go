package tokenizer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// trainCorpus is the text the byte-level fixture learns its merges from.
const trainCorpus = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park.
One day, she saw a big, red ball. "Can I play with it?" she asked her mom. Her mom said, "Yes, you can!"
Lily and Ben played with the ball all day. They were very happy. The sun was shining and the birds
were singing. 1234567890 apples, 3.14 pies, and 42 cats. Don't worry, I'm here; we'll see, they're fine.
Café au lait, naïve résumé. 日本語のテキスト。 Emoji: 😀🎉.
`

// byteLevelFixture learns merges from trainCorpus (most frequent adjacent pair within Llama-3
// pre-tokens, repeated) and returns the vocab in id order and the merges in rank order.
func byteLevelFixture(nMerges int) (vocab []string, merges [][2]string) {
	for b := 0; b < 256; b++ {
		vocab = append(vocab, string(byteToRune[b]))
	}
	var words [][]string
	for _, w := range splitLlama3(trainCorpus) {
		var syms []string
		for _, r := range byteLevelEncode(w) {
			syms = append(syms, string(r))
		}
		words = append(words, syms)
	}
	for len(merges) < nMerges {
		counts := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				counts[[2]string{w[i], w[i+1]}]++
			}
		}
		best, bestN := [2]string{}, 0
		for p, n := range counts {
			if n > bestN || (n == bestN && p[0]+" "+p[1] < best[0]+" "+best[1]) {
				best, bestN = p, n
			}
		}
		if bestN == 0 {
			break
		}
		merges = append(merges, best)
		vocab = append(vocab, best[0]+best[1])
		for k, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
				} else {
					out = append(out, w[i])
				}
			}
			words[k] = out
		}
	}
	return vocab, merges
}

var llama3Specials = []string{"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}

func byteLevelJSON(t testing.TB, vocab []string, merges [][2]string, mergesAsPairs bool) []byte {
	t.Helper()
	v := map[string]int{}
	for i, s := range vocab {
		v[s] = i
	}
	var m any
	if mergesAsPairs {
		m = merges
	} else {
		var strs []string
		for _, p := range merges {
			strs = append(strs, p[0]+" "+p[1])
		}
		m = strs
	}
	var added []map[string]any
	for i, s := range llama3Specials {
		added = append(added, map[string]any{"id": len(vocab) + i, "content": s, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": added,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}}},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
			"vocab": v, "merges": m},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func byteLevelHF(t testing.TB) Tokenizer {
	t.Helper()
	vocab, merges := byteLevelFixture(300)
	tk, err := ParseHF(byteLevelJSON(t, vocab, merges, false), []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}`))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// naiveBPE is the textbook ranked BPE (rescan every pair, merge the best, leftmost), the reference the
// heap-based merging is checked against.
func naiveBPE(syms []string, merges [][2]string) []string {
	rank := map[[2]string]int{}
	for i, m := range merges {
		if _, ok := rank[m]; !ok {
			rank[m] = i
		}
	}
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := rank[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			return syms
		}
		syms = append(syms[:at], append([]string{syms[at] + syms[at+1]}, syms[at+2:]...)...)
	}
}

func TestByteLevelHFMatchesNaiveBPE(t *testing.T) {
	vocab, merges := byteLevelFixture(300)
	if len(merges) < 200 {
		t.Fatalf("fixture learned only %d merges", len(merges))
	}
	for _, asPairs := range []bool{false, true} {
		tk, err := ParseHF(byteLevelJSON(t, vocab, merges, asPairs), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]int{}
		for i, s := range vocab {
			ids[s] = i
		}
		for _, text := range append(mixedTexts, trainCorpus, "the little girl played in the park with Lily") {
			var want []int
			for _, w := range splitLlama3(text) {
				bw := byteLevelEncode(w)
				if id, ok := ids[bw]; ok { // ignore_merges: a whole word in the vocab
					want = append(want, id)
					continue
				}
				var syms []string
				for _, r := range bw {
					syms = append(syms, string(r))
				}
				for _, s := range naiveBPE(syms, merges) {
					want = append(want, ids[s])
				}
			}
			if got := tk.Encode(text, false); !reflect.DeepEqual(got, want) {
				t.Errorf("merges as pairs=%v, %q:\n got %v\nwant %v", asPairs, text, got, want)
			}
		}
	}
}

func TestByteLevelHF(t *testing.T) {
	tk := byteLevelHF(t)
	roundTrip(t, tk, mixedTexts)
	// Learned merges compress: common words are single tokens.
	if ids := tk.Encode(" the", false); len(ids) != 1 {
		t.Errorf("\" the\" = %v, want one token", ids)
	}
	if text := "Lily and Ben played in the park."; len(tk.Encode(text, false))*2 > len(text) {
		t.Errorf("%q = %v: merges not applied", text, tk.Encode(text, false))
	}
	bos, _ := tk.TokenID("<|begin_of_text|>")
	eot, _ := tk.TokenID("<|eot_id|>")
	sh, _ := tk.TokenID("<|start_header_id|>")
	eh, _ := tk.TokenID("<|end_header_id|>")
	eotext, _ := tk.TokenID("<|end_of_text|>")
	if tk.BOS() != bos || !reflect.DeepEqual(tk.EOS(), []int{eot, eotext}) {
		t.Errorf("BOS %d EOS %v, want %d [%d %d]", tk.BOS(), tk.EOS(), bos, eot, eotext)
	}
	// Special tokens are matched whole, not split, and Decode omits them.
	prompt := "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
	ids := tk.Encode(prompt, true)
	body := append(append([]int{}, tk.Encode("user", false)...), eh)
	want := append([]int{bos, sh}, body...)
	want = append(want, tk.Encode("\n\nHi there!", false)...)
	want = append(want, eot)
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("chat prompt ids %v, want %v", ids, want)
	}
	if got := tk.Decode(ids); got != "user\n\nHi there!" {
		t.Errorf("Decode = %q", got)
	}
	// Byte-level has no dummy prefix.
	if got := tk.Decode(tk.Encode("hello", true)); got != "hello" {
		t.Errorf("round trip without prefix: %q", got)
	}
}

// spmFixture turns tok512.bin into a SentencePiece-style tokenizer.json the way HF's converter does:
// "▁" for spaces, merges of every pair of tokens whose concatenation is a token, ranked by the merged
// token's score (then by the left part's id).
func spmFixture(t testing.TB, metaspace bool) []byte {
	t.Helper()
	tk := loadTok512(t).(*vocab)
	scores := tk.segment.(*scoreEncoder).scores
	vocabMap := map[string]int{}
	pieces := make([]string, len(tk.pieces))
	for i, p := range tk.pieces {
		switch i {
		case 0:
			p = "<unk>"
		case 1:
			p = "<s>"
		case 2:
			p = "</s>"
		default:
			p = strings.ReplaceAll(p, " ", "▁")
		}
		pieces[i] = p
		vocabMap[p] = i
	}
	type merge struct {
		a, b  string
		score float32
		left  int
	}
	var ms []merge
	for i, p := range pieces {
		if i < 3+256 {
			continue
		}
		for k := 1; k < len(p); k++ {
			l, r := p[:k], p[k:]
			li, okL := vocabMap[l]
			_, okR := vocabMap[r]
			if okL && okR && li >= 3+256 || okL && okR && len(l) == 1 {
				ms = append(ms, merge{l, r, scores[i], li})
			}
		}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if ms[i].score != ms[j].score {
			return ms[i].score > ms[j].score
		}
		return ms[i].left < ms[j].left
	})
	var merges []string
	for _, m := range ms {
		merges = append(merges, m.a+" "+m.b)
	}
	added := []map[string]any{}
	for i, s := range []string{"<unk>", "<s>", "</s>"} {
		added = append(added, map[string]any{"id": i, "content": s, "special": true})
	}
	doc := map[string]any{
		"added_tokens": added,
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
			"vocab": vocabMap, "merges": merges},
	}
	if metaspace {
		doc["normalizer"] = nil
		doc["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}
		doc["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false},
		}}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spmHF(t testing.TB, metaspace bool) Tokenizer {
	t.Helper()
	tk, err := ParseHF(spmFixture(t, metaspace), []byte(`{"bos_token": {"content": "<s>"}, "eos_token": "</s>"}`))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// SentencePiece-style HF BPE with merges ranked by score gives the same ids as run.c's score-greedy
// merging of the same vocab.
func TestSentencePieceHFMatchesLlama2C(t *testing.T) {
	ref := loadTok512(t)
	tk := spmHF(t, false)
	if tk.BOS() != 1 || !reflect.DeepEqual(tk.EOS(), []int{2}) {
		t.Errorf("BOS %d EOS %v, want 1 [2]", tk.BOS(), tk.EOS())
	}
	for _, text := range append(mixedTexts, trainCorpus, "  two  spaces ", "a\tb") {
		want := ref.Encode(text, true)
		if got := tk.Encode(text, true); !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %v\nwant %v (llama2.c)", text, got, want)
		}
	}
	roundTrip(t, tk, mixedTexts)
}

func TestSentencePieceHFMetaspace(t *testing.T) {
	tk := spmHF(t, true)
	ref := loadTok512(t)
	if got, want := tk.Encode("Lily went home", true), ref.Encode("Lily went home", true); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Metaspace prepends "▁" only when the text does not start with one: " a" encodes like "a".
	if got, want := tk.Encode(" a", false), tk.Encode("a", false); !reflect.DeepEqual(got, want) {
		t.Errorf("\" a\" = %v, want %v", got, want)
	}
	// prepend_scheme "first": no "▁" after a special token.
	ids := tk.Encode("</s>hi", false)
	if ids[0] != 2 || tk.Decode(ids[1:]) != "hi" || strings.HasPrefix(ref.(*vocab).pieces[ids[1]], " ") {
		t.Errorf("\"</s>hi\" = %v: want </s> then \"hi\" without a prefix space", ids)
	}
	roundTrip(t, tk, []string{"Once upon a time", "日本 😀 café", "two\nlines"})
}

func TestParseHFErrors(t *testing.T) {
	vocab, merges := byteLevelFixture(20)
	good := string(byteLevelJSON(t, vocab, merges, false))
	cases := map[string]struct{ doc, want string }{
		"not json":      {"{", "tokenizer.json"},
		"unigram":       {`{"model": {"type": "Unigram", "vocab": []}}`, "Unigram"},
		"empty vocab":   {`{"model": {"type": "BPE", "vocab": {}, "merges": []}}`, "empty"},
		"negative id":   {`{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}`, "id -1"},
		"huge id":       {`{"model": {"type": "BPE", "vocab": {"a": 99999999}, "merges": []}}`, "id 99999999"},
		"bad merge":     {`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}}`, "merges[0]"},
		"merge oov":     {`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}`, "not in model.vocab"},
		"normalizer":    {`{"normalizer": {"type": "NFKC"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "NFKC"},
		"pre-tokenizer": {`{"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "Whitespace"},
		"decoder":       {`{"decoder": {"type": "WordPiece"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "WordPiece"},
		"unk":           {`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}}`, "unk_token"},
		"lookahead":     {strings.Replace(good, `(?i:'s`, `(?=x)(?i:'s`, 1), "not supported"},
		"duplicate id":  {`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 1}, "merges": []}}`, `tokens "b" and "c" both have id 1`},
		"added dup id":  {`{"added_tokens": [{"id": 3, "content": "<x>"}, {"id": 3, "content": "<y>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, "both have id 3"},
	}
	for name, c := range cases {
		_, err := ParseHF([]byte(c.doc), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.want)
		}
	}
	if _, err := ParseHF([]byte(good), []byte(`{"bos_token": "<nope>"}`)); err == nil || !strings.Contains(err.Error(), "bos_token") {
		t.Errorf("unknown bos_token: err = %v", err)
	}
}

func FuzzTokenizerJSON(f *testing.F) {
	vocab, merges := byteLevelFixture(30)
	f.Add(byteLevelJSON(f, vocab, merges, false))
	f.Add(byteLevelJSON(f, vocab, merges, true))
	f.Add(spmFixture(f, false))
	f.Add(spmFixture(f, true))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}}`))
	f.Add([]byte(`{"added_tokens": [{"id": 5, "content": ""}], "model": {"vocab": {"a": 0}, "merges": []}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseHF(data, nil)
		if err != nil {
			return
		}
		if tk.Vocab() > len(data)+1024 {
			t.Fatalf("vocab %d from %d bytes", tk.Vocab(), len(data))
		}
		ids := tk.Encode("Hi there 日本 😀 <s>", true)
		for _, id := range ids {
			if id < 0 || id >= tk.Vocab() {
				t.Fatalf("id %d outside vocab %d", id, tk.Vocab())
			}
		}
		d := tk.NewDecoder()
		for _, id := range ids {
			d.Push(id)
		}
		_ = d.Flush() + tk.Decode(ids) + fmt.Sprint(tk.EOS())
	})
}
