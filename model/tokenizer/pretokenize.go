package tokenizer

import (
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizer splitting by the regexes of GPT-2 and Llama-3. Both use a lookahead (\s+(?!\S)) that
// Go's regexp lacks, so they are matched by hand here, alternative by alternative in the regex's order,
// with the regex's greedy-then-backtrack result worked out for each one.

// The patterns as they appear in tokenizer.json files (recognized by exact text).
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Qwen2's is Llama-3's with single digits.
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitter cuts text into pre-tokens; the pieces concatenate back to the text.
type splitter func(text string) []string

// splitterFor returns the splitter of a Split pre-tokenizer pattern: the two lookahead patterns by
// hand, anything else through Go's regexp (an error if it does not compile, e.g. other lookarounds).
func splitterFor(pattern string) (splitter, error) {
	switch pattern {
	case llama3Pattern:
		return splitLlama3, nil
	case gpt2Pattern:
		return splitGPT2, nil
	case qwen2Pattern:
		return splitQwen2, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("split pattern %q is not supported (Go regexp: %v)", pattern, err)
	}
	return func(text string) []string { return splitIsolated(re, text) }, nil
}

// splitIsolated keeps both the matches and the text between them as pieces (HF behavior "Isolated").
func splitIsolated(re *regexp.Regexp, text string) []string {
	var out []string
	last := 0
	for _, m := range re.FindAllStringIndex(text, -1) {
		if m[0] > last {
			out = append(out, text[last:m[0]])
		}
		if m[1] > m[0] {
			out = append(out, text[m[0]:m[1]])
		}
		last = m[1]
	}
	if last < len(text) {
		out = append(out, text[last:])
	}
	return out
}

// runes is text decoded once, with the byte offset of every rune (and len(text) at the end).
type runes struct {
	r   []rune
	off []int
}

func decodeRunes(text string) runes {
	var rs runes
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		rs.r = append(rs.r, r)
		rs.off = append(rs.off, i)
		i += n
	}
	rs.off = append(rs.off, len(text))
	return rs
}

func isL(r rune) bool     { return unicode.IsLetter(r) }
func isN(r rune) bool     { return unicode.IsNumber(r) }
func isS(r rune) bool     { return unicode.IsSpace(r) }
func isNL(r rune) bool    { return r == '\r' || r == '\n' }
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) } // [^\s\p{L}\p{N}]
func lowerASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// contraction matches 's 't 're 've 'm 'll 'd at p; fold makes it case-insensitive (ASCII letters only).
func contraction(r []rune, p int, fold bool) int {
	if r[p] != '\'' || p+1 >= len(r) {
		return 0
	}
	at := func(i int) rune {
		if i >= len(r) {
			return 0
		}
		if fold {
			return lowerASCII(r[i])
		}
		return r[i]
	}
	switch at(p + 1) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if at(p+2) == 'e' {
			return 3
		}
	case 'l':
		if at(p+2) == 'l' {
			return 3
		}
	}
	return 0
}

func spanWhile(r []rune, p int, f func(rune) bool) int {
	for p < len(r) && f(r[p]) {
		p++
	}
	return p
}

// whitespaceTail handles \s+(?!\S)|\s+ at a whitespace rune p: a run of whitespace that is followed
// by a non-space gives its last space to the next piece (so " world" keeps its space), unless the run
// is that single space.
func whitespaceTail(r []rune, p int) int {
	q := spanWhile(r, p, isS)
	if q == len(r) || q-1 == p {
		return q
	}
	return q - 1
}

func splitLlama3(text string) []string { return splitBy(text, matchLlama3) }
func splitQwen2(text string) []string {
	return splitBy(text, func(r []rune, p int) int { return matchLlama3Digits(r, p, 1) })
}
func splitGPT2(text string) []string { return splitBy(text, matchGPT2) }

func splitBy(text string, match func(r []rune, p int) int) []string {
	rs := decodeRunes(text)
	var out []string
	for p := 0; p < len(rs.r); {
		q := match(rs.r, p)
		if q <= p { // cannot happen: every rune is matched by some alternative
			q = p + 1
		}
		out = append(out, text[rs.off[p]:rs.off[q]])
		p = q
	}
	return out
}

// matchLlama3 returns the end of the match at p of
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchLlama3(r []rune, p int) int { return matchLlama3Digits(r, p, 3) }

// matchLlama3Digits is matchLlama3 with \p{N}{1,maxDigits}.
func matchLlama3Digits(r []rune, p, maxDigits int) int {
	n := len(r)
	if k := contraction(r, p, true); k > 0 {
		return p + k
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r[p]) {
		return spanWhile(r, p, isL)
	}
	if !isNL(r[p]) && !isN(r[p]) && p+1 < n && isL(r[p+1]) {
		return spanWhile(r, p+1, isL)
	}
	// \p{N}{1,3}
	if isN(r[p]) {
		q := p
		for q < n && q-p < maxDigits && isN(r[q]) {
			q++
		}
		return q
	}
	// ?[^\s\p{L}\p{N}]+[\r\n]*
	q := p
	if r[q] == ' ' && q+1 < n && isOther(r[q+1]) {
		q++
	}
	if isOther(r[q]) {
		q = spanWhile(r, q, isOther)
		return spanWhile(r, q, isNL)
	}
	if !isS(r[p]) {
		return p + 1 // unreachable: a rune is a letter, a number, whitespace or other
	}
	// \s*[\r\n]+ : the whitespace run up to and including its last newline
	end := spanWhile(r, p, isS)
	for k := end - 1; k >= p; k-- {
		if isNL(r[k]) {
			return k + 1
		}
	}
	return whitespaceTail(r, p)
}

// matchGPT2 returns the end of the match at p of
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func matchGPT2(r []rune, p int) int {
	n := len(r)
	if k := contraction(r, p, false); k > 0 {
		return p + k
	}
	q := p
	if r[q] == ' ' && q+1 < n && !isS(r[q+1]) {
		q++
	}
	switch {
	case isL(r[q]):
		return spanWhile(r, q, isL)
	case isN(r[q]):
		return spanWhile(r, q, isN)
	case isOther(r[q]):
		return spanWhile(r, q, isOther)
	}
	return whitespaceTail(r, p)
}
