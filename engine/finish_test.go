package engine_test

import (
	"testing"

	"kvc/engine"
)

type letters struct{}

func (letters) Push(id int) string { return string(rune('a' + id)) }
func (letters) Flush() string      { return "" }

// Each rule ends a generation at the token where it applies, in the scheduler's order, and the held-back
// tail of a possible stop string is released at the end.
func TestTokenStreamRules(t *testing.T) {
	eos := map[int]bool{25: true}
	run := func(ts *engine.TokenStream, toks []int, prior int) (string, string, int) {
		text := ""
		for i, tok := range toks {
			gen, s, fin := ts.Next(tok, prior+i+1)
			if !gen && fin == "" {
				t.Fatalf("token %d neither generated nor finishing", tok)
			}
			text += s
			if fin != "" {
				return text + ts.Tail(), fin, ts.Generated()
			}
		}
		return text + ts.Tail(), "", ts.Generated()
	}
	cases := []struct {
		name      string
		ts        *engine.TokenStream
		toks      []int
		text, fin string
		gen       int
	}{
		{"eos", engine.NewTokenStream(eos, false, 10, 100, nil, letters{}, nil), []int{0, 1, 25, 2}, "ab", engine.FinishStop, 2},
		{"ignore-eos", engine.NewTokenStream(eos, true, 3, 100, nil, letters{}, nil), []int{0, 25, 1, 2}, "azb", engine.FinishLength, 3},
		{"stop", engine.NewTokenStream(eos, false, 10, 100, []string{"cd"}, letters{}, nil), []int{0, 2, 3, 4}, "a", engine.FinishStop, 3},
		{"held-tail", engine.NewTokenStream(eos, false, 3, 100, []string{"cd"}, letters{}, nil), []int{0, 1, 2}, "abc", engine.FinishLength, 3},
		{"length", engine.NewTokenStream(eos, false, 2, 100, nil, letters{}, nil), []int{0, 1, 2}, "ab", engine.FinishLength, 2},
		{"context", engine.NewTokenStream(eos, false, 10, 5, nil, letters{}, []int{7, 7, 7}), []int{0, 1, 2, 3}, "abc", engine.FinishContext, 3},
		{"length-before-context", engine.NewTokenStream(eos, false, 2, 5, nil, letters{}, []int{7, 7, 7}), []int{0, 1}, "ab", engine.FinishLength, 2},
		{"no-decoder", engine.NewTokenStream(eos, false, 2, 100, []string{"a"}, nil, nil), []int{0, 0}, "", engine.FinishLength, 2},
	}
	for _, c := range cases {
		prior := 0
		if c.name == "context" || c.name == "length-before-context" {
			prior = 3
		}
		text, fin, gen := run(c.ts, c.toks, prior)
		if text != c.text || fin != c.fin || gen != c.gen {
			t.Errorf("%s: %q %q %d, want %q %q %d", c.name, text, fin, gen, c.text, c.fin, c.gen)
		}
	}
}
