package tokenizer

import (
	"sort"
	"strings"
	"unicode"
)

// specialToken is a string matched whole in the input before BPE (HF added_tokens, GGUF control and
// user-defined tokens). lstrip/rstrip swallow the whitespace beside a match, as HF does.
type specialToken struct {
	text           string
	id             int
	lstrip, rstrip bool
}

// specialSet finds special tokens in text, longest match first at each position.
type specialSet struct {
	byFirst map[byte][]specialToken // candidates by first byte, longest first
}

func newSpecialSet(toks []specialToken) *specialSet {
	s := &specialSet{byFirst: map[byte][]specialToken{}}
	for _, t := range toks {
		if t.text == "" {
			continue
		}
		s.byFirst[t.text[0]] = append(s.byFirst[t.text[0]], t)
	}
	if len(s.byFirst) == 0 {
		return nil
	}
	for _, l := range s.byFirst {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].text) > len(l[j].text) })
	}
	return s
}

// split calls f for each ordinary run (special = -1) and each special token (seg = its text) in order.
func (s *specialSet) split(text string, f func(seg string, special int)) {
	start := 0 // start of the current ordinary run
	pendingRstrip := false
	for i := 0; i < len(text); {
		var hit *specialToken
		for k, t := range s.byFirst[text[i]] {
			if strings.HasPrefix(text[i:], t.text) {
				hit = &s.byFirst[text[i]][k]
				break
			}
		}
		if hit == nil {
			i++
			continue
		}
		run := text[start:i]
		if pendingRstrip {
			run = strings.TrimLeftFunc(run, unicode.IsSpace)
		}
		if hit.lstrip {
			run = strings.TrimRightFunc(run, unicode.IsSpace)
		}
		if run != "" {
			f(run, -1)
		}
		f(hit.text, hit.id)
		i += len(hit.text)
		start = i
		pendingRstrip = hit.rstrip
	}
	run := text[start:]
	if pendingRstrip {
		run = strings.TrimLeftFunc(run, unicode.IsSpace)
	}
	if run != "" {
		f(run, -1)
	}
}
