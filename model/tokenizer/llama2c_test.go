package tokenizer

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// tok512Path is stories260K's vocab (llama2.c, MIT) in ../shared/models: models and tokenizers are never committed.
const tok512Path = "../../../shared/models/stories260K/tok512.bin"

func loadTok512(t testing.TB) Tokenizer {
	t.Helper()
	tk, err := LoadLlama2C(tok512Path, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// llama2Tokenizer is the 32k Llama-2 vocab from ../shared/models (not committed).
func llama2Tokenizer(t *testing.T) Tokenizer {
	t.Helper()
	tk, err := LoadLlama2C("../../../shared/models/llama2-tokenizer.bin", 32000)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// collapseSpaces does what SentencePiece's remove_extra_whitespaces does to ASCII spaces: drop leading
// and trailing ones and squeeze runs to one.
func collapseSpaces(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
	return strings.Join(parts, " ")
}

// TestLlama2CMatchesSentencePiece compares run.c's algorithm on tok512.bin with spm_encode on
// tok512.model (testdata/spm_tok512.json, made by testdata/gen_spm.go).
//
// One difference is expected and asserted precisely: tok512.model was trained with SentencePiece's
// default remove_extra_whitespaces=true, so spm_encode strips leading/trailing spaces and squeezes runs
// of spaces before encoding, while run.c encodes the text as given. For those texts our ids must differ
// from SentencePiece's, and must equal them once the text is squeezed the same way.
func TestLlama2CMatchesSentencePiece(t *testing.T) {
	data, err := os.ReadFile("testdata/spm_tok512.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases in spm_tok512.json", len(cases))
	}
	tk := loadTok512(t)
	same, whitespace := 0, 0
	for _, c := range cases {
		got := tk.Encode(c.Text, false)
		if collapseSpaces(c.Text) == c.Text {
			if !reflect.DeepEqual(got, c.IDs) {
				t.Errorf("%q: got %v, spm_encode %v", c.Text, got, c.IDs)
			}
			same++
			continue
		}
		whitespace++
		if reflect.DeepEqual(got, c.IDs) {
			t.Errorf("%q: expected run.c to keep the extra spaces that SentencePiece removes, but ids are equal", c.Text)
		}
		if got := tk.Encode(collapseSpaces(c.Text), false); !reflect.DeepEqual(got, c.IDs) {
			t.Errorf("%q squeezed: got %v, spm_encode %v", collapseSpaces(c.Text), got, c.IDs)
		}
	}
	t.Logf("%d texts identical to SentencePiece, %d differ only by SentencePiece's whitespace squeezing", same, whitespace)
}

func TestLlama2CRunCRules(t *testing.T) {
	tk := loadTok512(t)
	if got := tk.Encode("", true); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("empty text with BOS: got %v, want [1] (no dummy prefix)", got)
	}
	if got := tk.Encode("", false); len(got) != 0 {
		t.Errorf("empty text: got %v, want []", got)
	}
	// A newline is not in the vocab: byte fallback <0x0A> = 10+3.
	ids := tk.Encode("a\nb", false)
	if !containsInt(ids, 13) {
		t.Errorf("\"a\\nb\" = %v: want the byte token 13 for \\n", ids)
	}
	// The dummy prefix is a space token merged into the first word.
	sp, _ := tk.TokenID(" ")
	if ids := tk.Encode("!", false); len(ids) == 0 || (ids[0] != sp && !strings.HasPrefix(tk.(*vocab).pieces[ids[0]], " ")) {
		t.Errorf("\"!\" = %v: want the dummy prefix space first", ids)
	}
	if got, want := tk.EOS(), []int{2, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("EOS() = %v, want %v", got, want)
	}
	for s, want := range map[string]int{"<s>": 1, "</s>": 2, "<unk>": 0, "<0x41>": 0x41 + 3} {
		if id, ok := tk.TokenID(s); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", s, id, ok, want)
		}
	}
	// Decode strips the space after BOS only (run.c), and skips BOS/EOS.
	if got := tk.Decode(tk.Encode("Lily", true)); got != "Lily" {
		t.Errorf("Decode after BOS = %q, want \"Lily\"", got)
	}
	if got := tk.Decode(tk.Encode("Lily", false)); got != " Lily" {
		t.Errorf("Decode without BOS = %q, want \" Lily\"", got)
	}
}

func TestLlama2C32kKnownIDs(t *testing.T) {
	tk := llama2Tokenizer(t)
	// Ids of the Llama-2 SentencePiece model (as its reference tokenizer gives them).
	for text, want := range map[string][]int{
		"Hello world":       {1, 15043, 3186},
		"Once upon a time,": {1, 9038, 2501, 263, 931, 29892},
	} {
		if got := tk.Encode(text, true); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %v, want %v", text, got, want)
		}
	}
	roundTrip(t, tk, mixedTexts)
}

// mixedTexts exercise every path: ASCII, punctuation, accents, CJK, emoji (byte fallback), newlines.
var mixedTexts = []string{
	"Once upon a time, there was a little girl named Lily.",
	"café naïve, Zürich straße; Ångström",
	"日本語のテキストと中文",
	"emoji 😀🎉 👍🏽 end",
	"line one\nline two\n\n  indented\ttab",
	"  leading and trailing  ",
	"don't I'M we'll 123456 3.14",
	"x",
}

func roundTrip(t *testing.T, tk Tokenizer, texts []string) {
	t.Helper()
	for _, s := range texts {
		ids := tk.Encode(s, true)
		if got := tk.Decode(ids); got != s {
			t.Errorf("round trip %q: ids %v decode to %q", s, ids, got)
		}
		for _, id := range ids {
			if id < 0 || id >= tk.Vocab() {
				t.Fatalf("%q: id %d outside the vocab %d", s, id, tk.Vocab())
			}
		}
		// The stream decoder must print the same text, never a partial character.
		d := tk.NewDecoder()
		var sb strings.Builder
		for _, id := range ids {
			part := d.Push(id)
			if !isValidUTF8(part) {
				t.Errorf("%q: stream printed invalid UTF-8 %q", s, part)
			}
			sb.WriteString(part)
		}
		sb.WriteString(d.Flush())
		if sb.String() != s {
			t.Errorf("stream %q: got %q", s, sb.String())
		}
	}
}

func TestLlama2CRoundTrip(t *testing.T) {
	roundTrip(t, loadTok512(t), mixedTexts)
}

func TestStreamDecoderSplitsCharacter(t *testing.T) {
	tk := loadTok512(t)
	ids := tk.Encode("日", false) // not in the 512 vocab: " " + three byte tokens E6 97 A5
	want := []int{tk.(*vocab).ids[" "], 0xE6 + 3, 0x97 + 3, 0xA5 + 3}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("Encode(日) = %v, want %v", ids, want)
	}
	d := tk.NewDecoder()
	var outs []string
	for _, id := range ids {
		outs = append(outs, d.Push(id))
	}
	if !reflect.DeepEqual(outs, []string{" ", "", "", "日"}) {
		t.Errorf("pushes printed %q, want [\" \" \"\" \"\" \"日\"]", outs)
	}
	if f := d.Flush(); f != "" {
		t.Errorf("Flush = %q, want empty", f)
	}
	// An unfinished character comes out of Flush as its raw bytes.
	d = tk.NewDecoder()
	if s := d.Push(0xE6 + 3); s != "" {
		t.Errorf("lone lead byte printed %q", s)
	}
	if f := d.Flush(); f != "\xe6" {
		t.Errorf("Flush = %q, want \"\\xe6\"", f)
	}
	// A stream that follows BOS drops the dummy-prefix space of its first token, as run.c prints it.
	d = tk.NewDecoder()
	d.Follow(tk.BOS())
	ids = tk.Encode("Lily", false)
	if s := d.Push(ids[0]); strings.HasPrefix(s, " ") || s == "" {
		t.Errorf("first token after BOS printed %q", s)
	}
	d = tk.NewDecoder()
	if s := d.Push(ids[0]); !strings.HasPrefix(s, " ") {
		t.Errorf("first token without BOS printed %q, want its space", s)
	}
	// A byte that can never start a character is not held back.
	d = tk.NewDecoder()
	if s := d.Push(0xFF + 3); s != "\xff" {
		t.Errorf("invalid byte printed %q, want \"\\xff\"", s)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestParseLlama2CErrors(t *testing.T) {
	good, err := os.ReadFile(tok512Path)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		data  []byte
		vocab int
		want  string
	}{
		"short header":  {good[:2], 0, "max_token_length"},
		"truncated":     {good[:len(good)-3], 0, "bytes are left"},
		"bad length":    {append(append([]byte{}, good[:4]...), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f), 0, "length"},
		"vocab too big": {good, 100000, "vocab size"},
		"too few":       {good[:198], 0, "259"},
	}
	for name, c := range cases {
		_, err := ParseLlama2C(c.data, c.vocab)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.want)
		}
	}
	if _, err := ParseLlama2C(good, 0); err != nil {
		t.Errorf("tok512.bin to EOF: %v", err)
	}
}

func FuzzLlama2CTokenizerFile(f *testing.F) {
	good, err := os.ReadFile(tok512Path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:100])
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseLlama2C(data, 0)
		if err != nil {
			return
		}
		if tk.Vocab() > len(data)/8 {
			t.Fatalf("%d tokens from %d bytes", tk.Vocab(), len(data))
		}
		ids := tk.Encode("Hi there 日本 😀", true)
		for _, id := range ids {
			if id < 0 || id >= tk.Vocab() {
				t.Fatalf("id %d outside vocab %d", id, tk.Vocab())
			}
		}
		_ = tk.Decode(ids)
	})
}

func TestCompleteUTF8(t *testing.T) {
	for in, want := range map[string]int{
		"":              0,
		"abc":           3,
		"a\xe6\x97":     1, // 日 missing its last byte: held back
		"a\xe6\x97\xa5": 4,
		"\xf0\x9f":      0, // emoji start
		"\xf0\x9f\x98":  0,
		"\xe0\x80":      2, // overlong: can never complete, not held
		"\xed\xa0":      2, // surrogate
		"\xf4\x90":      2, // above U+10FFFF
		"\xc1":          1, // never a lead byte
		"x\x80":         2, // stray continuation byte
		"\xc3":          0,
	} {
		if got := completeUTF8([]byte(in)); got != want {
			t.Errorf("completeUTF8(%q) = %d, want %d", in, got, want)
		}
	}
}
