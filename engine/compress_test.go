package engine_test

import (
	"fmt"
	"math"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
)

// generateCompressed decodes n greedy tokens after prompt, compressing with pl after every step, and
// checks the sequence never holds more than its budget allows (plus the one step of growth between rounds).
func generateCompressed(t *testing.T, e *engine.Engine, pl *kvpages.Planner, prompt []int, n int) []int {
	s := e.NewSequence(engine.SamplerConfig{})
	defer e.Release(s)
	logits, err := e.Prefill(s, prompt)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Cfg
	var out []int
	for i := 0; i < n; i++ {
		if pl != nil {
			if _, err := e.Compress(pl, []*engine.Sequence{s}, nil, nil); err != nil {
				t.Fatal(err)
			}
			o := pl.Options()
			if o.Policy != kvpages.PolicyFull {
				budget := o.BudgetBlocks(s.KV, kvpages.Budget{})
				protected := cfg.Layers * cfg.KVHeads * ((o.Protect + o.BlockSize - 1) / o.BlockSize)
				if got := s.KV.Blocks(); got > max(budget, protected+cfg.Layers*cfg.KVHeads) {
					t.Fatalf("step %d: sequence holds %d blocks after compression, budget %d", i, got, budget)
				}
				for hd, c := range s.KV.Ctx {
					if len(s.KV.Tables[hd]) != (c+o.BlockSize-1)/o.BlockSize {
						t.Fatalf("step %d head %d: ctx %d with %d blocks", i, hd, c, len(s.KV.Tables[hd]))
					}
				}
			}
			if e.Pool.InUse() != s.KV.Blocks() {
				t.Fatalf("step %d: pool has %d blocks in use, the sequence holds %d", i, e.Pool.InUse(), s.KV.Blocks())
			}
		}
		tok := engine.Argmax(logits)
		out = append(out, tok)
		res, err := e.Decode([]*engine.Sequence{s}, []int{tok})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		logits = res[0]
	}
	return out
}

func planner(t *testing.T, p kvpages.Policy, bs, budget int) *kvpages.Planner {
	o := kvpages.Options{Policy: p, BlockSize: bs, Protect: 16}
	if p != kvpages.PolicyFull {
		o.Budget.MaxCacheTokens = budget
	}
	pl, err := kvpages.NewPlanner(o)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func engineFor(t *testing.T, p kvpages.Policy, bs int) *engine.Engine {
	opt := engine.Options{BlockSize: bs, MaxRows: 64}
	opt.SetMetric(p.Metric(), 8, true)
	return newEngine(t, &cpu.Backend{}, openStories(t), opt)
}

// The full policy runs the compression machinery and changes nothing.
func TestFullPolicyEqualsPlainGeneration(t *testing.T) {
	prompt := []int{1, 403, 407, 261, 378}
	e := engineFor(t, kvpages.PolicyFull, 16)
	plain := generateCompressed(t, e, nil, prompt, 60)
	full := generateCompressed(t, e, planner(t, kvpages.PolicyFull, 16, 0), prompt, 60)
	if fmt.Sprint(plain) != fmt.Sprint(full) {
		t.Fatalf("full policy changed the output:\n%v\n%v", full, plain)
	}
}

// With a budget, 500 tokens of generation never grow the sequence past its budget, for every policy,
// and the evicted blocks really go back to the pool.
func TestBudgetBoundsTheCache(t *testing.T) {
	for _, p := range []kvpages.Policy{kvpages.PolicyKVCompress, kvpages.PolicyUniform, kvpages.PolicyWindow, kvpages.PolicyH2O} {
		t.Run(p.String(), func(t *testing.T) {
			e := engineFor(t, p, 8)
			out := generateCompressed(t, e, planner(t, p, 8, 48), []int{1}, 500)
			if len(out) != 500 {
				t.Fatalf("generated %d tokens", len(out))
			}
			if e.Pool.InUse() != 0 {
				t.Fatalf("%d blocks in use after release", e.Pool.InUse())
			}
		})
	}
	// KV-Compress's defaults (per-query metric, recency share) and the paper's metric bound it the same way.
	for _, m := range []kvpages.Metric{kvpages.MetricDefault, kvpages.MetricL2Sum} {
		t.Run("kvcompress-defaults-"+m.String(), func(t *testing.T) {
			o := kvpages.DefaultOptions(8, kvpages.Budget{MaxCacheTokens: 48})
			o.Metric = m
			src, err := o.Policy.MetricWith(m)
			if err != nil {
				t.Fatal(err)
			}
			opt := engine.Options{BlockSize: 8, MaxRows: 64}
			opt.SetMetric(src, 8, true)
			e := newEngine(t, &cpu.Backend{}, openStories(t), opt)
			pl, err := kvpages.NewPlanner(o)
			if err != nil {
				t.Fatal(err)
			}
			if out := generateCompressed(t, e, pl, []int{1}, 300); len(out) != 300 {
				t.Fatalf("generated %d tokens", len(out))
			}
		})
	}
}

// A budget that covers the whole text evicts nothing: perplexity equals the full cache's exactly; a small
// budget evicts and its perplexity is finite and no better than the full cache's by more than noise.
func TestPerplexityWithCompression(t *testing.T) {
	e := engineFor(t, kvpages.PolicyKVCompress, 16)
	text := append([]int{1}, generateCompressed(t, e, nil, []int{1}, 300)...)
	full, err := e.Perplexity(text, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	big, err := e.Perplexity(text, planner(t, kvpages.PolicyKVCompress, 16, 512), 1)
	if err != nil {
		t.Fatal(err)
	}
	if big.PPL != full.PPL || big.EvictedKVs != 0 {
		t.Fatalf("budget 512 on %d tokens: ppl %v (evicted %d), full %v", len(text), big.PPL, big.EvictedKVs, full.PPL)
	}
	small, err := e.Perplexity(text, planner(t, kvpages.PolicyKVCompress, 16, 32), 1)
	if err != nil {
		t.Fatal(err)
	}
	if small.EvictedKVs == 0 || small.CompressionRate < 4 || math.IsNaN(small.PPL) || math.IsInf(small.PPL, 0) {
		t.Fatalf("budget 32: %+v", small)
	}
	if small.KVBlocksPeak >= full.KVBlocksPeak {
		t.Fatalf("budget 32 peaked at %d blocks, full cache at %d", small.KVBlocksPeak, full.KVBlocksPeak)
	}
	t.Logf("full ppl %.4f, budget 32: ppl %.4f at rate %.2fx", full.PPL, small.PPL, small.CompressionRate)
}

// Scoring the text in prefill chunks gives the full cache's perplexity of token-by-token scoring, and with
// a budget each chunk's compression keeps the cache within it.
func TestChunkedPerplexity(t *testing.T) {
	e := engineFor(t, kvpages.PolicyKVCompress, 16)
	text := append([]int{1}, generateCompressed(t, e, nil, []int{1}, 200)...)
	ref, err := e.Perplexity(text, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 7, 32} {
		got, err := e.PerplexityChunked(text, nil, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.NLL-ref.NLL) > 1e-6*ref.NLL || got.Tokens != ref.Tokens {
			t.Fatalf("chunk %d: nll %v over %d tokens, token by token %v over %d", chunk, got.NLL, got.Tokens, ref.NLL, ref.Tokens)
		}
	}
	small, err := e.PerplexityChunked(text, planner(t, kvpages.PolicyKVCompress, 16, 48), 16)
	if err != nil {
		t.Fatal(err)
	}
	if small.EvictedKVs == 0 || small.CompressionRate < 2 {
		t.Fatalf("budget 48 in chunks of 16: %+v", small)
	}
	if _, err := e.PerplexityChunked(text, nil, 0); err == nil {
		t.Fatalf("chunk 0 accepted")
	}
}

// SetMetric: an unset window (-1) is the metric's own collection (the paper's window for the sums, every
// prompt query for the per-query means); a window given chooses it for the means too; h2o always takes
// every prompt query. The per-query means keep their metric buffer either way.
func TestSetMetricWindow(t *testing.T) {
	l1avg, _ := kvpages.PolicyKVCompress.MetricWith(kvpages.MetricL1Avg)
	l2, _ := kvpages.PolicyKVCompress.MetricWith(kvpages.MetricL2Sum)
	vatp, _ := kvpages.PolicyKVCompress.MetricWith(kvpages.MetricVATP)
	for _, c := range []struct {
		name   string
		m      kvpages.MetricSource
		window int
		want   string
	}{
		{"l1-avg unset", l1avg, -1, "window 0 pool false prompt true avg true buffer 10 norm false"},
		{"vatp unset", vatp, -1, "window 0 pool false prompt true avg true buffer 10 norm true"},
		{"l1-avg window 8", l1avg, 8, "window 8 pool true prompt false avg true buffer 10 norm false"},
		{"l1-avg window 0", l1avg, 0, "window 0 pool true prompt false avg true buffer 10 norm false"},
		{"l2 unset", l2, -1, "window 8 pool true prompt false avg false buffer 0 norm false"},
		{"l2 window 4", l2, 4, "window 4 pool true prompt false avg false buffer 0 norm false"},
		{"h2o window 8", kvpages.PolicyH2O.Metric(), 8, "window 0 pool false prompt true avg false buffer 0 norm false"},
	} {
		var o engine.Options
		o.SetMetric(c.m, c.window, true)
		got := fmt.Sprintf("window %d pool %v prompt %v avg %v buffer %d norm %v", o.Window, o.Pool7, o.PromptMetric, o.MetricAvg,
			o.MetricBuffer, o.MetricValueNorm)
		if got != c.want || o.Metric != engine.MetricPlain && o.Metric != engine.MetricSquared {
			t.Errorf("%s: %s (metric %v), want %s", c.name, got, o.Metric, c.want)
		}
	}
}
