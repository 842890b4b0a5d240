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
	nll := 0.0
	for i := 1; i < len(tokens); i++ {
		nll += -logSoftmaxAt(logits, tokens[i])
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
	r.Tokens = len(tokens) - 1
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
	return r, nil
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
