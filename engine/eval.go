package engine

import (
	"fmt"
	"math"

	"kvc/kvpages"
)

// PerplexityResult is a teacher-forced evaluation of one text.
type PerplexityResult struct {
	Tokens          int     `json:"tokens"` // predicted tokens (all but the first)
	NLL             float64 `json:"nll"`    // mean negative log-likelihood, nats
	PPL             float64 `json:"ppl"`
	Policy          string  `json:"policy"`
	Budget          int     `json:"budget"`
	Rate            float64 `json:"rate,omitempty"`
	KVBlocksPeak    int     `json:"kv_blocks_peak"`
	KVBytesPeak     int64   `json:"kv_bytes_peak"`
	CompressionRate float64 `json:"compression_rate"` // full-cache KVs / kept KVs at the end
	Rounds          int     `json:"compression_rounds"`
	EvictedKVs      int     `json:"evicted_kvs"`
	// Key tokens (see KeyTokenSet.Score): how many, their mean NLL and perplexity; 0 when not scored or none.
	KeyTokens int     `json:"key_tokens"`
	KeyNLL    float64 `json:"key_nll"`
	KeyPPL    float64 `json:"key_ppl"`
	// TokenNLL[i-1] is the negative log-likelihood of token i.
	TokenNLL []float64 `json:"-"`
}

// Perplexity feeds tokens one at a time (each a decode step, so every query adds to the metric) and
// scores each next token. With a planner the cache is compressed after every interval steps (1 when 0)
// whenever a sequence is over its budget. The sequence's blocks are released at the end.
func (e *Engine) Perplexity(tokens []int, pl *kvpages.Planner, interval int) (PerplexityResult, error) {
	var r PerplexityResult
	if len(tokens) < 2 {
		return r, fmt.Errorf("engine: perplexity needs at least 2 tokens, got %d", len(tokens))
	}
	if len(tokens) > e.Cfg.Context {
		return r, fmt.Errorf("engine: %d tokens exceed the model's context of %d", len(tokens), e.Cfg.Context)
	}
	if interval <= 0 {
		interval = 1
	}
	s := e.NewSequence(SamplerConfig{})
	defer e.Release(s)
	logits, err := e.Prefill(s, tokens[:1])
	if err != nil {
		return r, err
	}
	r.TokenNLL = make([]float64, 0, len(tokens)-1)
	for i := 1; i < len(tokens); i++ {
		r.TokenNLL = append(r.TokenNLL, -logSoftmaxAt(logits, tokens[i]))
		r.KVBlocksPeak = max(r.KVBlocksPeak, s.KV.Blocks())
		if i == len(tokens)-1 {
			break
		}
		if pl != nil && i%interval == 0 {
			st, err := e.Compress(pl, []*Sequence{s}, nil, nil)
			if err != nil {
				return r, err
			}
			if st.Seqs > 0 {
				r.Rounds++
				r.EvictedKVs += st.EvictedKVs
			}
		}
		out, err := e.Decode([]*Sequence{s}, tokens[i:i+1])
		if err != nil {
			return r, err
		}
		logits = out[0]
	}
	e.finishResult(&r, s, pl, len(tokens))
	return r, nil
}

// PerplexityChunked scores tokens in prefill chunks of chunk tokens, as a prompt arrives: each chunk adds the
// observation-window metric of its last w rows (every row with PromptMetric), and with a planner the cache is
// compressed after every chunk whenever it is over budget (the paper's compress-after-prefill, repeated).
func (e *Engine) PerplexityChunked(tokens []int, pl *kvpages.Planner, chunk int) (PerplexityResult, error) {
	var r PerplexityResult
	if len(tokens) < 2 {
		return r, fmt.Errorf("engine: perplexity needs at least 2 tokens, got %d", len(tokens))
	}
	if len(tokens) > e.Cfg.Context {
		return r, fmt.Errorf("engine: %d tokens exceed the model's context of %d", len(tokens), e.Cfg.Context)
	}
	if chunk <= 0 || chunk > e.Opt.MaxRows {
		return r, fmt.Errorf("engine: chunk of %d tokens: want 1..%d (the engine's rows per pass)", chunk, e.Opt.MaxRows)
	}
	s := e.NewSequence(SamplerConfig{})
	defer e.Release(s)
	var prev []float32
	r.TokenNLL = make([]float64, 0, len(tokens)-1)
	for start := 0; start < len(tokens); start += chunk {
		end := min(start+chunk, len(tokens))
		it := Item{Seq: s.KV, Tokens: tokens[start:end], AllLogits: true, WindowRows: min(e.Opt.Window, end-start)}
		if e.Opt.PromptMetric {
			it.WindowRows = end - start
		}
		out, err := e.Forward([]Item{it})
		if err != nil {
			return r, err
		}
		for j := start; j < end; j++ {
			if j > 0 {
				p := prev
				if j > start {
					p = out[j-start-1]
				}
				r.TokenNLL = append(r.TokenNLL, -logSoftmaxAt(p, tokens[j]))
			}
		}
		prev = out[len(out)-1]
		r.KVBlocksPeak = max(r.KVBlocksPeak, s.KV.Blocks())
		if pl != nil && end < len(tokens) {
			st, err := e.Compress(pl, []*Sequence{s}, nil, nil)
			if err != nil {
				return r, err
			}
			if st.Seqs > 0 {
				r.Rounds++
				r.EvictedKVs += st.EvictedKVs
			}
		}
	}
	e.finishResult(&r, s, pl, len(tokens))
	return r, nil
}

// finishResult fills the summary fields of a perplexity result.
func (e *Engine) finishResult(r *PerplexityResult, s *Sequence, pl *kvpages.Planner, n int) {
	r.Tokens = n - 1
	nll := 0.0
	for _, v := range r.TokenNLL {
		nll += v
	}
	r.NLL = nll / float64(r.Tokens)
	r.PPL = math.Exp(r.NLL)
	r.KVBytesPeak = int64(r.KVBlocksPeak) * e.KV.BlockBytes()
	kept := 0
	for _, c := range s.KV.Ctx {
		kept += c
	}
	full := s.KV.NextPos * e.Cfg.Layers * e.Cfg.KVHeads
	r.CompressionRate = float64(full) / float64(max(kept, 1))
	r.Policy = kvpages.PolicyFull.String()
	if pl != nil {
		o := pl.Options()
		r.Policy, r.Budget, r.Rate = o.Policy.String(), o.Budget.MaxCacheTokens, o.Budget.Rate
	}
}

// logSoftmaxAt is log p(tok) under softmax(logits), in float64.
func logSoftmaxAt(logits []float32, tok int) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	sum := 0.0
	for _, v := range logits {
		sum += math.Exp(float64(v) - m)
	}
	return float64(logits[tok]) - m - math.Log(sum)
}
