package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Hugging Face tokenizer.json with a BPE model, in the two shapes llama-family models use:
//   - byte-level BPE (GPT-2, Llama-3): pre_tokenizer ByteLevel, or Sequence[Split(regex), ByteLevel];
//     decoder ByteLevel.
//   - SentencePiece-style BPE (Llama-2, Mistral): normalizer Sequence[Prepend("▁"), Replace(" ", "▁")]
//     or pre_tokenizer Metaspace; byte_fallback; decoder Sequence[Replace("▁", " "), ByteFallback,
//     Fuse, Strip(" ", 1, 0)] or Metaspace.
// added_tokens are matched whole in the text before normalization (their "normalized" flag and
// "single_word" are not honored; lstrip and rstrip are). Unsupported components are errors naming them.

type hfFile struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Lstrip  bool   `json:"lstrip"`
		Rstrip  bool   `json:"rstrip"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    *hfComponent `json:"normalizer"`
	PreTokenizer  *hfComponent `json:"pre_tokenizer"`
	PostProcessor *hfComponent `json:"post_processor"`
	Decoder       *hfComponent `json:"decoder"`
	Model         struct {
		Type                    string          `json:"type"`
		VocabRaw                json.RawMessage `json:"vocab"`
		Vocab                   map[string]int  `json:"-"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ByteFallback            bool            `json:"byte_fallback"`
		FuseUnk                 bool            `json:"fuse_unk"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	} `json:"model"`
}

// hfComponent is any normalizer, pre-tokenizer, post-processor or decoder; Type says which fields apply.
type hfComponent struct {
	Type          string         `json:"type"`
	Normalizers   []*hfComponent `json:"normalizers"`
	Pretokenizers []*hfComponent `json:"pretokenizers"`
	Decoders      []*hfComponent `json:"decoders"`
	Processors    []*hfComponent `json:"processors"`
	Prepend       string         `json:"prepend"`
	Pattern       struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content        string `json:"content"`
	Replacement    string `json:"replacement"`
	PrependScheme  string `json:"prepend_scheme"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	Split          *bool  `json:"split"`
	UseRegex       *bool  `json:"use_regex"`
	Behavior       string `json:"behavior"`
	Invert         bool   `json:"invert"`
	Start          int    `json:"start"`
	Stop           int    `json:"stop"`
	Single         []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	} `json:"single"`
}

// hfConfig is the part of tokenizer_config.json the tokenizer needs.
type hfConfig struct {
	BOS tokenName `json:"bos_token"`
	EOS tokenName `json:"eos_token"`
}

// tokenName is a special token given as a string, as {"content": "..."} or as null.
type tokenName string

func (t *tokenName) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = tokenName(s)
		return nil
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("want a string, {\"content\": ...} or null, got %.40s", b)
	}
	*t = tokenName(o.Content)
	return nil
}

// wellKnownEnds are end markers added to EOS when the vocab has them as special tokens, so that a chat
// stops at the turn end even when the config names the base model's end of text.
var wellKnownEnds = []string{"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "</s>"}

// LoadHF reads dir/tokenizer.json and, when present, dir/tokenizer_config.json (for BOS and EOS).
func LoadHF(dir string) (Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseHF(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseHF builds a tokenizer from the bytes of tokenizer.json and of tokenizer_config.json (nil when
// there is none). BOS is the config's bos_token, else the first special token of the post-processor's
// single-sequence template, else none (BOS() = -1). EOS is the config's eos_token followed by the
// well-known end markers the vocab holds as special tokens.
func ParseHF(tokenizerJSON, tokenizerConfig []byte) (Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	var cfg hfConfig
	if len(tokenizerConfig) > 0 {
		if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	if f.Model.Type != "BPE" && !(f.Model.Type == "" && f.Model.Merges != nil) {
		return nil, fmt.Errorf("tokenizer.json: model.type %q is not supported (want BPE)", f.Model.Type)
	}
	if err := json.Unmarshal(f.Model.VocabRaw, &f.Model.Vocab); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model.vocab: want an object of token: id, %v", err)
	}
	if s := f.Model.ContinuingSubwordPrefix; s != nil && *s != "" {
		return nil, fmt.Errorf("tokenizer.json: model.continuing_subword_prefix %q is not supported", *s)
	}
	if s := f.Model.EndOfWordSuffix; s != nil && *s != "" {
		return nil, fmt.Errorf("tokenizer.json: model.end_of_word_suffix %q is not supported", *s)
	}
	if len(f.Model.Vocab) == 0 {
		return nil, errors.New("tokenizer.json: model.vocab is empty")
	}

	// Ids are dense in real files; allow some holes but never allocate beyond what the file describes.
	entries := len(f.Model.Vocab) + len(f.AddedTokens)
	size := 0
	check := func(what string, id int) error {
		if id < 0 || id >= entries+1024 {
			return fmt.Errorf("tokenizer.json: %s has id %d, outside [0, %d)", what, id, entries+1024)
		}
		if id >= size {
			size = id + 1
		}
		return nil
	}
	byID := make(map[int]string, len(f.Model.Vocab))
	for s, id := range f.Model.Vocab {
		if err := check(fmt.Sprintf("model.vocab token %q", s), id); err != nil {
			return nil, err
		}
		if o, dup := byID[id]; dup {
			a, b := min(o, s), max(o, s) // map order varies: name them in a fixed order
			return nil, fmt.Errorf("tokenizer.json: model.vocab tokens %q and %q both have id %d", a, b, id)
		}
		byID[id] = s
	}
	added := map[int]string{}
	for _, a := range f.AddedTokens {
		if err := check(fmt.Sprintf("added token %q", a.Content), a.ID); err != nil {
			return nil, err
		}
		if o, dup := added[a.ID]; dup && o != a.Content {
			return nil, fmt.Errorf("tokenizer.json: added tokens %q and %q both have id %d", o, a.Content, a.ID)
		}
		added[a.ID] = a.Content
	}
	pieces := make([]string, size)
	present := make([]bool, size)
	for s, id := range f.Model.Vocab {
		pieces[id], present[id] = s, true
	}
	for _, a := range f.AddedTokens {
		pieces[a.ID], present[a.ID] = a.Content, true
	}
	v := newVocab(pieces)
	if id, ok := v.ids[""]; ok && !present[id] {
		delete(v.ids, "") // a hole in the ids, not a token
	}
	// Vocab ids win over added tokens with the same text for the BPE lookups.
	for s, id := range f.Model.Vocab {
		v.ids[s] = id
	}

	e := &rankEncoder{v: v, ids: f.Model.Vocab, unk: -1, byteFallback: f.Model.ByteFallback, fuseUnk: f.Model.FuseUnk,
		ignoreMerges: f.Model.IgnoreMerges}
	if f.Model.UnkToken != nil {
		id, ok := f.Model.Vocab[*f.Model.UnkToken]
		if !ok {
			return nil, fmt.Errorf("tokenizer.json: model.unk_token %q is not in model.vocab", *f.Model.UnkToken)
		}
		e.unk = id
	}
	for b := 0; b < 256; b++ {
		e.byteIDs[b] = -1
		if id, ok := f.Model.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			e.byteIDs[b] = id
		}
	}
	var err error
	if e.merges, err = parseMerges(f.Model.Merges, f.Model.Vocab); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if e.normal, err = hfNormalizers(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	if e.pretok, err = hfPreTokenizers(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	v.segment = e

	dec, strip, err := hfDecoder(f.Decoder)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	v.stripAfterBOS = strip
	for i, p := range pieces {
		v.decoded[i] = dec(p)
	}
	var specials []specialToken
	for _, a := range f.AddedTokens {
		specials = append(specials, specialToken{text: a.Content, id: a.ID, lstrip: a.Lstrip, rstrip: a.Rstrip})
		v.decoded[a.ID] = []byte(a.Content)
		v.skip[a.ID] = a.Special
		v.aliases = setAlias(v.aliases, a.Content, a.ID)
	}
	v.specials = newSpecialSet(specials)

	// BOS and EOS.
	special := func(name string) (int, bool) {
		if id, ok := v.aliases[name]; ok {
			return id, true
		}
		id, ok := f.Model.Vocab[name]
		return id, ok
	}
	if cfg.BOS != "" {
		id, ok := special(string(cfg.BOS))
		if !ok {
			return nil, fmt.Errorf("tokenizer_config.json: bos_token %q is not a token", cfg.BOS)
		}
		v.bos = id
	} else if pp := f.PostProcessor; pp != nil {
		v.bos = templateBOS(pp, special)
	}
	if cfg.EOS != "" {
		id, ok := special(string(cfg.EOS))
		if !ok {
			return nil, fmt.Errorf("tokenizer_config.json: eos_token %q is not a token", cfg.EOS)
		}
		v.eos = append(v.eos, id)
	}
	for _, name := range wellKnownEnds {
		if id, ok := v.aliases[name]; ok && v.skip[id] && !containsInt(v.eos, id) {
			v.eos = append(v.eos, id)
		}
	}
	v.markSkipped()
	return v, nil
}

func setAlias(m map[string]int, s string, id int) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[s] = id
	return m
}

func containsInt(l []int, x int) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

// templateBOS finds the special token a TemplateProcessing post-processor puts first, -1 if none.
func templateBOS(pp *hfComponent, lookup func(string) (int, bool)) int {
	if pp.Type == "Sequence" {
		for _, c := range pp.Processors {
			if id := templateBOS(c, lookup); id >= 0 {
				return id
			}
		}
		return -1
	}
	if pp.Type != "TemplateProcessing" || len(pp.Single) == 0 || pp.Single[0].SpecialToken == nil {
		return -1
	}
	if id, ok := lookup(pp.Single[0].SpecialToken.ID); ok {
		return id
	}
	return -1
}

// parseMerges reads merges given as "a b" strings or as [a, b] pairs, in rank order.
func parseMerges(raw json.RawMessage, vocab map[string]int) (map[[2]int]rankedMerge, error) {
	var pairs [][2]string
	if len(raw) > 0 && string(raw) != "null" {
		var strs []string
		if err := json.Unmarshal(raw, &strs); err == nil {
			for i, s := range strs {
				parts := strings.Split(s, " ")
				if len(parts) != 2 {
					return nil, fmt.Errorf("model.merges[%d] %q: want two tokens separated by one space", i, s)
				}
				pairs = append(pairs, [2]string{parts[0], parts[1]})
			}
		} else {
			var lists [][]string
			if err := json.Unmarshal(raw, &lists); err != nil {
				return nil, errors.New("model.merges: want a list of \"a b\" strings or of [a, b] pairs")
			}
			for i, l := range lists {
				if len(l) != 2 {
					return nil, fmt.Errorf("model.merges[%d]: want a pair, got %d tokens", i, len(l))
				}
				pairs = append(pairs, [2]string{l[0], l[1]})
			}
		}
	}
	merges := make(map[[2]int]rankedMerge, len(pairs))
	for rank, p := range pairs {
		a, okA := vocab[p[0]]
		b, okB := vocab[p[1]]
		m, okM := vocab[p[0]+p[1]]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("model.merges[%d] %q + %q: a token or their merge is not in model.vocab", rank, p[0], p[1])
		}
		if _, dup := merges[[2]int{a, b}]; !dup { // the first (lowest) rank wins
			merges[[2]int{a, b}] = rankedMerge{rank: rank, id: m}
		}
	}
	return merges, nil
}

func flatten(c *hfComponent, children func(*hfComponent) []*hfComponent) []*hfComponent {
	if c == nil {
		return nil
	}
	if c.Type == "Sequence" {
		var out []*hfComponent
		for _, k := range children(c) {
			out = append(out, flatten(k, children)...)
		}
		return out
	}
	return []*hfComponent{c}
}

func patternOf(c *hfComponent) (lit string, re *regexp.Regexp, raw string, err error) {
	switch {
	case c.Pattern.String != nil:
		return *c.Pattern.String, nil, "", nil
	case c.Pattern.Regex != nil:
		raw = *c.Pattern.Regex
		re, err = regexp.Compile(raw)
		return "", re, raw, err
	}
	return "", nil, "", fmt.Errorf("%s has no pattern", c.Type)
}

func hfNormalizers(c *hfComponent) ([]func(string, bool) string, error) {
	var out []func(string, bool) string
	for _, n := range flatten(c, func(c *hfComponent) []*hfComponent { return c.Normalizers }) {
		switch n.Type {
		case "Prepend":
			pre := n.Prepend
			out = append(out, func(s string, _ bool) string {
				if s == "" {
					return s
				}
				return pre + s
			})
		case "Replace":
			lit, re, raw, err := patternOf(n)
			if err != nil {
				return nil, fmt.Errorf("Replace pattern %q: %v", raw, err)
			}
			content := n.Content
			if re != nil {
				out = append(out, func(s string, _ bool) string { return re.ReplaceAllLiteralString(s, content) })
			} else if lit != "" {
				out = append(out, func(s string, _ bool) string { return strings.ReplaceAll(s, lit, content) })
			}
		default:
			return nil, fmt.Errorf("normalizer %q is not supported (supported: Prepend, Replace, Sequence)", n.Type)
		}
	}
	return out, nil
}

func hfPreTokenizers(c *hfComponent) ([]func([]string, bool) []string, error) {
	var out []func([]string, bool) []string
	each := func(f func(w string, first bool) []string) func([]string, bool) []string {
		return func(words []string, first bool) []string {
			var res []string
			for i, w := range words {
				res = append(res, f(w, first && i == 0)...)
			}
			return res
		}
	}
	for _, p := range flatten(c, func(c *hfComponent) []*hfComponent { return c.Pretokenizers }) {
		switch p.Type {
		case "Split":
			if p.Invert || (p.Behavior != "" && p.Behavior != "Isolated") {
				return nil, fmt.Errorf("Split behavior %q (invert %v) is not supported (want Isolated)", p.Behavior, p.Invert)
			}
			var split splitter
			switch {
			case p.Pattern.Regex != nil:
				var err error
				if split, err = splitterFor(*p.Pattern.Regex); err != nil {
					return nil, err
				}
			case p.Pattern.String != nil && *p.Pattern.String != "":
				split, _ = splitterFor(regexp.QuoteMeta(*p.Pattern.String))
			default:
				return nil, errors.New("Split has no pattern")
			}
			out = append(out, each(func(w string, _ bool) []string { return split(w) }))
		case "ByteLevel":
			prefix := p.AddPrefixSpace != nil && *p.AddPrefixSpace
			useRegex := p.UseRegex == nil || *p.UseRegex
			out = append(out, each(func(w string, _ bool) []string {
				if prefix && !strings.HasPrefix(w, " ") {
					w = " " + w
				}
				parts := []string{w}
				if useRegex {
					parts = splitGPT2(w)
				}
				for i := range parts {
					parts[i] = byteLevelEncode(parts[i])
				}
				return parts
			}))
		case "Metaspace":
			rep := p.Replacement
			if rep == "" {
				rep = "▁"
			}
			scheme := p.PrependScheme
			if scheme == "" {
				scheme = "always"
				if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
					scheme = "never"
				}
			}
			if scheme != "always" && scheme != "first" && scheme != "never" {
				return nil, fmt.Errorf("Metaspace prepend_scheme %q is not supported", scheme)
			}
			split := p.Split == nil || *p.Split
			out = append(out, each(func(w string, first bool) []string {
				w = strings.ReplaceAll(w, " ", rep)
				if !strings.HasPrefix(w, rep) && (scheme == "always" || (scheme == "first" && first)) {
					w = rep + w
				}
				if split {
					return metaspaceWords(w, rep)
				}
				return []string{w}
			}))
		default:
			return nil, fmt.Errorf("pre-tokenizer %q is not supported (supported: Split, ByteLevel, Metaspace, Sequence)", p.Type)
		}
	}
	return out, nil
}

// hfDecoder returns the per-token decoding and whether one leading space is dropped after BOS (a Strip
// after Fuse, or a Metaspace decoder that prepends).
func hfDecoder(c *hfComponent) (func(string) []byte, bool, error) {
	var steps []func(string) string
	fused, stripStart := false, false
	for _, d := range flatten(c, func(c *hfComponent) []*hfComponent { return c.Decoders }) {
		switch d.Type {
		case "ByteLevel":
			steps = append(steps, func(s string) string { return string(byteLevelDecode(s)) })
		case "Replace":
			lit, re, raw, err := patternOf(d)
			if err != nil {
				return nil, false, fmt.Errorf("Replace pattern %q: %v", raw, err)
			}
			content := d.Content
			if re != nil {
				steps = append(steps, func(s string) string { return re.ReplaceAllLiteralString(s, content) })
			} else if lit != "" {
				steps = append(steps, func(s string) string { return strings.ReplaceAll(s, lit, content) })
			}
		case "ByteFallback":
			steps = append(steps, func(s string) string {
				if b, ok := byteToken(s); ok {
					return string([]byte{b})
				}
				return s
			})
		case "Fuse":
			fused = true
		case "Strip":
			if d.Stop != 0 {
				return nil, false, fmt.Errorf("Strip with stop %d is not supported", d.Stop)
			}
			if d.Start == 0 {
				continue
			}
			if fused {
				if d.Content != " " || d.Start != 1 {
					return nil, false, fmt.Errorf("Strip %q start %d after Fuse is not supported (want \" \", 1)", d.Content, d.Start)
				}
				stripStart = true
				continue
			}
			content, n := d.Content, d.Start
			steps = append(steps, func(s string) string {
				for i := 0; i < n && strings.HasPrefix(s, content); i++ {
					s = s[len(content):]
				}
				return s
			})
		case "Metaspace":
			rep := d.Replacement
			if rep == "" {
				rep = "▁"
			}
			steps = append(steps, func(s string) string { return strings.ReplaceAll(s, rep, " ") })
			if d.PrependScheme != "never" && (d.AddPrefixSpace == nil || *d.AddPrefixSpace) {
				stripStart = true
			}
		default:
			return nil, false, fmt.Errorf("decoder %q is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", d.Type)
		}
	}
	return func(s string) []byte {
		for _, f := range steps {
			s = f(s)
		}
		return []byte(s)
	}, stripStart, nil
}
