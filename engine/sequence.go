package engine

import (
	"fmt"

	"kvc/kvpages"
)

// Sequence is one generation: its paged cache, its tokens so far and its sampler.
type Sequence struct {
	KV      *kvpages.Seq
	Tokens  []int // prompt and generated tokens, in order
	Sampler *Sampler
}

// NewSequence starts an empty sequence.
func (e *Engine) NewSequence(sc SamplerConfig) *Sequence {
	return &Sequence{KV: kvpages.NewSeq(e.Cfg.Layers, e.Cfg.KVHeads), Sampler: NewSampler(sc)}
}

// Release returns the sequence's blocks to the pool.
func (e *Engine) Release(s *Sequence) {
	e.tables.forget(s.KV)
	s.KV.ReleaseAll(e.Pool)
}

// Prefill runs prompt tokens through the model in chunks of at most MaxRows rows, the last chunk holding
// the whole observation window, and returns the last token's logits.
func (e *Engine) Prefill(s *Sequence, prompt []int) ([]float32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("engine: empty prompt (it needs at least a BOS token)")
	}
	if s.KV.NextPos+len(prompt) > e.Cfg.Context {
		return nil, fmt.Errorf("engine: prompt of %d tokens does not fit the model's context of %d", s.KV.NextPos+len(prompt), e.Cfg.Context)
	}
	w := min(e.Opt.Window, len(prompt), e.Opt.MaxRows)
	for _, c := range prefillChunks(len(prompt), e.Opt.MaxRows, w) {
		last := c[1] == len(prompt)
		it := Item{Seq: s.KV, Tokens: prompt[c[0]:c[1]], Logits: last}
		if e.Opt.PromptMetric {
			it.WindowRows = c[1] - c[0]
		} else if last {
			it.WindowRows = w
		}
		out, err := e.Forward([]Item{it})
		if err != nil {
			return nil, err
		}
		s.Tokens = append(s.Tokens, prompt[c[0]:c[1]]...)
		if last {
			return out[0], nil
		}
	}
	panic("unreachable")
}

// prefillChunks splits n tokens into [start, end) chunks of at most maxRows, the last one at least w long.
func prefillChunks(n, maxRows, w int) [][2]int {
	var out [][2]int
	start := 0
	for n-start > maxRows {
		end := start + maxRows
		if n-end < w { // leave the whole window to the last chunk
			end = n - w
		}
		out = append(out, [2]int{start, end})
		start = end
	}
	return append(out, [2]int{start, n})
}

// Decode appends one token to each sequence in one pass and returns each sequence's next-token logits.
func (e *Engine) Decode(seqs []*Sequence, tokens []int) ([][]float32, error) {
	items := make([]Item, len(seqs))
	for i, s := range seqs {
		items[i] = Item{Seq: s.KV, Tokens: tokens[i : i+1], Logits: true}
	}
	out, err := e.Forward(items)
	if err != nil {
		return nil, err
	}
	for i, s := range seqs {
		s.Tokens = append(s.Tokens, tokens[i])
	}
	return out, nil
}

// Step appends one token to each sequence in one pass and returns each sequence's next token, drawn by its
// sampler from only what the sampler needs read back (Sampler.DevicePick: the argmax id when greedy, the
// top k with top-k sampling, else the logits): the same tokens as Decode and Sample.
func (e *Engine) Step(seqs []*Sequence, tokens []int) ([]int, error) {
	items := make([]Item, len(seqs))
	for i, s := range seqs {
		items[i] = Item{Seq: s.KV, Tokens: tokens[i : i+1], Logits: true, Pick: s.Sampler.DevicePick()}
	}
	out, err := e.Pass(items)
	if err != nil {
		return nil, err
	}
	next := make([]int, len(seqs))
	for i, s := range seqs {
		s.Tokens = append(s.Tokens, tokens[i])
		next[i] = s.Sampler.Next(out[i], s.Tokens)
	}
	return next, nil
}
