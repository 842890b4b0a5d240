package tokenizer

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitLlama3(t *testing.T) {
	cases := map[string][]string{
		"  hello":        {" ", " hello"},
		"a\n\n b":        {"a", "\n\n", " b"},
		"123456":         {"123", "456"},
		"1234567":        {"123", "456", "7"},
		"don't":          {"don", "'t"},
		"I'M":            {"I", "'M"},
		"we'LL they're":  {"we", "'LL", " they", "'re"},
		"'sup":           {"'s", "up"},
		"'hello":         {"'hello"},
		"hello   ":       {"hello", "   "},
		"hello  world":   {"hello", " ", " world"},
		"Hello world!":   {"Hello", " world", "!"},
		"日本語のテキスト":       {"日本語のテキスト"},
		"你好，世界。":         {"你好", "，世界", "。"},
		"hi 😀😀 there":    {"hi", " 😀😀", " there"},
		"x!!!\n\ny":      {"x", "!!!\n\n", "y"},
		"  \n  x":        {"  \n", " ", " x"},
		"$100":           {"$", "100"},
		"a\r\nb":         {"a", "\r\n", "b"},
		"hello\n":        {"hello", "\n"},
		"\t\tx":          {"\t", "\tx"},
		" ":              {" "},
		" 123":           {" ", "123"},
		"ab12cd":         {"ab", "12", "cd"},
		"x ...":          {"x", " ..."},
		"café\u00a0bar":  {"café", "\u00a0bar"},
		"e\u0301":        {"e", "\u0301"}, // a combining mark is not \p{L}
		"end.\n":         {"end", ".\n"},
		"\n":             {"\n"},
		"a \n b":         {"a", " \n", " b"},
		"A\u2003\u2003B": {"A", "\u2003", "\u2003B"},
		"<|eot_id|>":     {"<|", "eot", "_id", "|>"},
		"x\xffy":         {"x", "\xffy"},
	}
	for in, want := range cases {
		if got := splitLlama3(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitLlama3(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitQwen2(t *testing.T) {
	s, err := splitterFor(qwen2Pattern)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s("x 2024!"), []string{"x", " ", "2", "0", "2", "4", "!"}; !reflect.DeepEqual(got, want) {
		t.Errorf("qwen2 split = %q, want %q", got, want)
	}
}

func TestSplitGPT2(t *testing.T) {
	cases := map[string][]string{
		"Hello world": {"Hello", " world"},
		"I'M":         {"I", "'", "M"},
		"don't":       {"don", "'t"},
		"123456":      {"123456"},
		"  hello":     {" ", " hello"},
		"a\n\n b":     {"a", "\n\n", " b"},
		"hello   ":    {"hello", "   "},
		"x ...":       {"x", " ..."},
		" 42":         {" 42"},
		"日本 語":        {"日本", " 語"},
		"a 😀":         {"a", " 😀"},
	}
	for in, want := range cases {
		if got := splitGPT2(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitGPT2(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitterForOtherPatterns(t *testing.T) {
	s, err := splitterFor(`\d+`)
	if err != nil {
		t.Fatal(err)
	}
	if got := s("ab12cd3"); !reflect.DeepEqual(got, []string{"ab", "12", "cd", "3"}) {
		t.Errorf("isolated split = %q", got)
	}
	if _, err := splitterFor(`a(?=b)`); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("lookahead pattern: err = %v", err)
	}
}

func FuzzSplitLlama3(f *testing.F) {
	for _, s := range []string{"  hello", "a\n\n b", "I'M 123456", "日本 😀\r\n\t x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, split := range []splitter{splitLlama3, splitGPT2} {
			parts := split(s)
			if strings.Join(parts, "") != s {
				t.Fatalf("pieces %q do not rebuild %q", parts, s)
			}
			for _, p := range parts {
				if p == "" {
					t.Fatalf("empty piece in %q", parts)
				}
			}
		}
	})
}
