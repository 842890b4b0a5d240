package engine

import (
	"fmt"
	"math"

	"kvc/kvpages"
)

// Key tokens (LongPPL, Fang et al. 2024): the tokens of a text whose prediction depends on distant context.
// Average perplexity over narrative text is dominated by tokens that need only the last few words, so it
// favours recency; scoring a compressed cache on the key tokens alone measures what eviction loses where long
// context matters. The key tokens are chosen once per text, from the full-cache model alone, so every policy
// is scored on the same tokens.

// KeyTokenOptions select the key tokens. A predicted token i (1 <= i < len(text)) is a key token when
//
//	log p(t_i | t_0..t_{i-1}) - log p(t_i | t_0, t_{i-Short}..t_{i-1}) >= MinGain   (it needs far context)
//	log p(t_i | t_0..t_{i-1}) >= MinLogProb                                       (the full model predicts it)
//
// The short context keeps the text's first token t_0 (the BOS a model always sees at the start) and the
// last Short tokens, so the gain measures the distant content, not the loss of the start-of-text token.
type KeyTokenOptions struct {
	Short      int     // K: tokens of recent context the short context keeps (besides t_0)
	MinGain    float64 // alpha: least log-probability gain of the full context over the short one, nats
	MinLogProb float64 // beta: least full-context log-probability, nats (<= 0)
}

// DefaultKeyTokenOptions: see README (KV-Compress quality) for why these values.
var DefaultKeyTokenOptions = KeyTokenOptions{Short: 32, MinGain: 1, MinLogProb: -2}

// Validate checks the options against a text of n tokens before any work.
func (o KeyTokenOptions) Validate(n int) error {
	if o.Short < 1 {
		return fmt.Errorf("key-token short context %d: want at least 1 token", o.Short)
	}
	if n > 0 && o.Short+2 > n-1 {
		return fmt.Errorf("key-token short context of %d tokens is too long for a text of %d tokens: no token would see more than it (want at most %d)", o.Short, n, max(n-3, 0))
	}
	if math.IsNaN(o.MinGain) || math.IsInf(o.MinGain, 0) || o.MinGain <= 0 {
		return fmt.Errorf("key-token gain alpha %g: want a finite number of nats > 0 (the full context must help)", o.MinGain)
	}
	if math.IsNaN(o.MinLogProb) || math.IsInf(o.MinLogProb, 0) || o.MinLogProb > 0 {
		return fmt.Errorf("key-token log-probability beta %g: want a finite number of nats <= 0", o.MinLogProb)
	}
	return nil
}

// KeyTokenSet is the key tokens of one text.
type KeyTokenSet struct {
	Options KeyTokenOptions
	Index   []int     // predicted-token indices i (the token t_i), ascending
	Full    []float64 // [i-1]: log p(t_i) under the full context, every predicted token
	Short   []float64 // [i-1]: log p(t_i) under the short context
}

// nextTokenScorer is what key-token selection needs from a model: log-probabilities of every token of a
// text under its full prefix, and of one next token after each of several contexts.
type nextTokenScorer interface {
	prefixLogProbs(tokens []int) ([]float64, error)           // [i-1] = log p(t_i | t_0..t_{i-1})
	nextLogProbs(ctxs [][]int, next []int) ([]float64, error) // [j] = log p(next[j] | ctxs[j])
}

// KeyTokens selects the key tokens of tokens under the full cache (the engine's policy and metric do not
// matter: nothing is evicted).
func (e *Engine) KeyTokens(tokens []int, o KeyTokenOptions) (KeyTokenSet, error) {
	if len(tokens) > e.Cfg.Context {
		return KeyTokenSet{}, fmt.Errorf("engine: %d tokens exceed the model's context of %d", len(tokens), e.Cfg.Context)
	}
	if o.Short+1 > e.Opt.MaxRows {
		return KeyTokenSet{}, fmt.Errorf("engine: key-token short context of %d tokens needs %d rows in one pass, the engine has %d (--max-rows)", o.Short, o.Short+1, e.Opt.MaxRows)
	}
	return selectKeyTokens(engineScorer{e}, tokens, o)
}

func selectKeyTokens(m nextTokenScorer, tokens []int, o KeyTokenOptions) (KeyTokenSet, error) {
	ks := KeyTokenSet{Options: o}
	if err := o.Validate(len(tokens)); err != nil {
		return ks, err
	}
	full, err := m.prefixLogProbs(tokens)
	if err != nil {
		return ks, err
	}
	ks.Full = full
	ks.Short = make([]float64, len(full))
	// Tokens with at most Short tokens before them besides t_0 see the same context either way.
	copy(ks.Short, full[:o.Short+1])
	var ctxs [][]int
	var next []int
	for i := o.Short + 2; i < len(tokens); i++ {
		ctx := append([]int{tokens[0]}, tokens[i-o.Short:i]...)
		ctxs, next = append(ctxs, ctx), append(next, tokens[i])
	}
	short, err := m.nextLogProbs(ctxs, next)
	if err != nil {
		return ks, err
	}
	copy(ks.Short[o.Short+1:], short)
	for i := 1; i < len(tokens); i++ {
		f := full[i-1]
		if f >= o.MinLogProb && f-ks.Short[i-1] >= o.MinGain {
			ks.Index = append(ks.Index, i)
		}
	}
	return ks, nil
}

// Score sets r's key-token fields from its per-token NLL.
func (ks KeyTokenSet) Score(r *PerplexityResult) error {
	if len(r.TokenNLL) != len(ks.Full) {
		return fmt.Errorf("engine: key tokens chosen over %d predicted tokens, result scores %d", len(ks.Full), len(r.TokenNLL))
	}
	r.KeyTokens = len(ks.Index)
	r.KeyNLL, r.KeyPPL = 0, 0
	if len(ks.Index) == 0 {
		return nil
	}
	sum := 0.0
	for _, i := range ks.Index {
		sum += r.TokenNLL[i-1]
	}
	r.KeyNLL = sum / float64(len(ks.Index))
	r.KeyPPL = math.Exp(r.KeyNLL)
	return nil
}

// engineScorer scores with the engine's full cache.
type engineScorer struct{ e *Engine }

func (s engineScorer) prefixLogProbs(tokens []int) ([]float64, error) {
	r, err := s.e.PerplexityChunked(tokens, nil, s.e.Opt.MaxRows)
	if err != nil {
		return nil, err
	}
	lp := make([]float64, len(r.TokenNLL))
	for i, v := range r.TokenNLL {
		lp[i] = -v
	}
	return lp, nil
}

// nextLogProbs prefills as many contexts at once as the rows per pass and the free blocks allow.
func (s engineScorer) nextLogProbs(ctxs [][]int, next []int) ([]float64, error) {
	e := s.e
	out := make([]float64, len(ctxs))
	for start := 0; start < len(ctxs); {
		rows, blocks, end := 0, 0, start
		for end < len(ctxs) {
			n := len(ctxs[end])
			need := e.Cfg.Layers * e.Cfg.KVHeads * ((n + e.Opt.BlockSize - 1) / e.Opt.BlockSize)
			if end > start && (rows+n > e.Opt.MaxRows || blocks+need > e.Pool.Free()) {
				break
			}
			rows, blocks, end = rows+n, blocks+need, end+1
		}
		items := make([]Item, end-start)
		for j := range items {
			items[j] = Item{Seq: kvpages.NewSeq(e.Cfg.Layers, e.Cfg.KVHeads), Tokens: ctxs[start+j], Logits: true}
		}
		logits, err := e.Forward(items)
		for _, it := range items {
			it.Seq.ReleaseAll(e.Pool)
		}
		if err != nil {
			return nil, err
		}
		for j, l := range logits {
			out[start+j] = logSoftmaxAt(l, next[start+j])
		}
		start = end
	}
	return out, nil
}
