package engine

// TokenStream applies the rules that end a generation to one sampled token at a time: EOS, a stop string,
// the length limit and the context. The scheduler and kvc's run and chat all use it, so these rules and
// the streamed text are defined once.
type TokenStream struct {
	eos       map[int]bool
	ignoreEOS bool
	maxTokens int
	context   int
	dec       TextDecoder // nil: ids only, no text and no stop strings
	stop      *StopText
	gen       int
}

// NewTokenStream starts the rules for one generation of at most maxTokens in a context of context
// tokens. dec (may be nil) is primed with prior, the tokens before the generation (the decoder needs
// them, e.g. for the space dropped after BOS).
func NewTokenStream(eos map[int]bool, ignoreEOS bool, maxTokens, context int, stops []string, dec TextDecoder, prior []int) *TokenStream {
	t := &TokenStream{eos: eos, ignoreEOS: ignoreEOS, maxTokens: maxTokens, context: context, dec: dec, stop: NewStopText(stops)}
	if dec != nil {
		for _, id := range prior {
			dec.Push(id)
		}
		dec.Flush()
	}
	return t
}

// Next takes a sampled token; total is the sequence's token count with it. It reports whether the token
// is generated (EOS is not), the text it releases (empty while a possible stop string or an incomplete
// character is held back), and why the generation ends with it ("": it goes on).
func (t *TokenStream) Next(tok, total int) (generated bool, text, finish string) {
	if !t.ignoreEOS && t.eos[tok] {
		return false, "", FinishStop
	}
	t.gen++
	if t.dec != nil {
		text = t.stop.Push(t.dec.Push(tok))
	}
	switch {
	case t.stop.Stopped:
		finish = FinishStop
	case t.gen >= t.maxTokens:
		finish = FinishLength
	case total > t.context: // feeding the token would pass the context
		finish = FinishContext
	}
	return true, text, finish
}

// Tail is the text held back at the end of the generation (none after a stop string).
func (t *TokenStream) Tail() string {
	if t.dec == nil || t.stop.Stopped {
		return ""
	}
	out := t.stop.Push(t.dec.Flush())
	if !t.stop.Stopped {
		out += t.stop.Flush()
	}
	return out
}

// Generated is the number of tokens generated so far.
func (t *TokenStream) Generated() int { return t.gen }
