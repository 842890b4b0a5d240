package main

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/kvpages"
)

// A bare --kv-budget or --kv-rate selects kvcompress with its default metric; no budget means the full
// cache; an explicit full policy with a budget, or a metric for a policy that ranks by none, is refused.
func TestDefaultPolicy(t *testing.T) {
	base := engineFlags{kvBlock: 16, maxRows: 256, protect: 8}
	for _, c := range []struct {
		f    func(*engineFlags)
		want kvpages.Policy
		err  string
	}{
		{func(f *engineFlags) { f.budget = 64 }, kvpages.PolicyKVCompress, ""},
		{func(f *engineFlags) { f.rate = 4 }, kvpages.PolicyKVCompress, ""},
		{func(f *engineFlags) {}, kvpages.PolicyFull, ""},
		{func(f *engineFlags) { f.budget, f.policy = 64, "full" }, 0, "keeps every KV"},
		{func(f *engineFlags) { f.budget, f.policy, f.metric = 64, "window", "l1-avg" }, 0, "means nothing"},
		{func(f *engineFlags) { f.budget, f.policy, f.metric = 64, "full", "vatp" }, 0, "keeps every KV"},
		{func(f *engineFlags) { f.budget, f.policy, f.metric = 64, "window", "vatp" }, 0, "means nothing"},
		{func(f *engineFlags) { f.budget, f.metric = 64, "l7" }, 0, "unknown kv metric"},
	} {
		f := base
		c.f(&f)
		o, err := f.compressionOptions()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want one containing %q", f, err, c.err)
			}
			continue
		}
		if err != nil || o.Policy != c.want || o.Metric != kvpages.MetricDefault {
			t.Errorf("%+v: policy %v metric %v, %v; want %v with the default metric", f, o.Policy, o.Metric, err, c.want)
		}
	}
}

// An unset --kv-sinks keeps VATPSinks first positions under vatp (whose attention-times-value-norm rates
// the near-zero values of attention sinks near zero) and none under the other metrics; a given value wins.
func TestSinksDefault(t *testing.T) {
	for _, c := range []struct {
		metric string
		sinks  int
		want   int
		err    string
	}{
		{"", -1, 0, ""},
		{"l1-avg", -1, 0, ""},
		{"l2", -1, 0, ""},
		{"vatp", -1, kvpages.VATPSinks, ""},
		{"vatp", 0, 0, ""},
		{"vatp", 2, 2, ""},
		{"", 3, 3, ""},
		{"vatp", -2, 0, "--kv-sinks"},
	} {
		f := engineFlags{kvBlock: 16, maxRows: 256, protect: 8, budget: 64, interval: -1, window: -1, metric: c.metric, sinks: c.sinks}
		o, err := f.compressionOptions()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("metric %q sinks %d: error %v, want one containing %q", c.metric, c.sinks, err, c.err)
			}
			continue
		}
		if err != nil || o.Sinks != c.want {
			t.Errorf("metric %q sinks %d: sinks %d, %v; want %d", c.metric, c.sinks, o.Sinks, err, c.want)
		}
	}
}

// Bad key-token options and bad text lists fail before any model is loaded (the model does not exist).
func TestEvalRejectsBeforeWork(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(text, []byte("Once upon a time"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-model.bin")
	if err := runBenchThroughput([]string{"--model", missing, "--kv-metric", "l9"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "kv metric") {
		t.Errorf("bench throughput --kv-metric l9: %v", err)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"ppl", "--text", text, "--key-alpha", "0"}, "gain alpha"},
		{[]string{"ppl", "--text", text, "--key-beta", "1"}, "beta"},
		{[]string{"ppl", "--text", text, "--key-short", "0"}, "short context"},
		{[]string{"sweep", "--text", text, "--key-short", "-3"}, "short context"},
		{[]string{"sweep", "--text", dir + "/none"}, "--text"},
		{[]string{"sweep", "--text", t.TempDir()}, "no .txt files"},
		{[]string{"sweep", "--text", text, "--policies", "window", "--kv-metric", "l2"}, "ranks by a metric"},
		{[]string{"sweep", "--text", text, "--policies", "window:l2"}, "means nothing"},
		{[]string{"sweep", "--text", text, "--policies", "kvcompress,kvcompress"}, "twice"},
		{[]string{"sweep", "--text", text, "--policies", "uniform:l1-avg:0.5:0.2"}, "head floor"},
		{[]string{"sweep", "--text", text, "--policies", "kvcompress:l1-avg:0.5:x"}, "head floor"},
		{[]string{"ppl", "--text", text, "--kv-budget", "64", "--kv-floor", "1.5"}, "head floor"},
		{[]string{"ppl", "--text", text, "--kv-budget", "64", "--kv-window", "-2"}, "--kv-window"},
		{[]string{"ppl", "--text", text, "--kv-budget", "64", "--kv-policy", "window", "--kv-floor", "0.2"}, "head floor"},
		{[]string{"ppl", "--text", text, "--ctx", "-5"}, "--ctx -5"},
		{[]string{"ppl", "--text", text, "--ctx", "1"}, "at least 2"},
		{[]string{"sweep", "--text", text, "--chunk", "-1"}, "--chunk -1"},
		{[]string{"ppl", "--text", text, "--chunk", "-32"}, "--chunk -32"},
		{[]string{"sweep", "--text", text, "--kv-budget", "64"}, "takes --budgets"},
		{[]string{"sweep", "--text", text, "--kv-rate", "4"}, "takes --budgets"},
		{[]string{"sweep", "--text", text, "--kv-policy", "uniform"}, "takes --policies"},
	} {
		err := cmdEval(append(c.args, "--model", missing))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.err)
		}
	}
}

// A short context no shorter than the text is refused once the text is tokenized, before any pass.
func TestEvalShortContextLongerThanText(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	text := filepath.Join(t.TempDir(), "a.txt")
	if err := os.WriteFile(text, []byte("Once upon a time, there was a little girl."), 0o644); err != nil {
		t.Fatal(err)
	}
	err := cmdEval([]string{"ppl", "--model", "stories260K", "--device", "cpu", "--quiet", "--text", text, "--key-short", "32"})
	if err == nil || !strings.Contains(err.Error(), "too long for a text of") {
		t.Fatalf("error %v", err)
	}
}

// The sweep's paired differences: per key token, a policy's NLL minus the base column's at the same
// budget, their mean and standard error; a uniform column adds a table of differences to it.
func TestSweepPairedDifferences(t *testing.T) {
	texts := []evalText{{name: "a", keys: engine.KeyTokenSet{Index: []int{1, 3}}}, {name: "b", keys: engine.KeyTokenSet{Index: []int{2}}}}
	run := func(name string, pol kvpages.Policy, a, b []float64) sweepRun {
		return sweepRun{pol: sweepPolicy{name: name, policy: pol}, budget: 16,
			texts: []engine.PerplexityResult{{Tokens: 3, TokenNLL: a}, {Tokens: 3, TokenNLL: b}}}
	}
	runs := []sweepRun{
		run("kvcompress", kvpages.PolicyKVCompress, []float64{1, 9, 2}, []float64{9, 4, 9}),
		run("uniform", kvpages.PolicyUniform, []float64{0, 0, 0}, []float64{0, 1, 0}),
		run("window", kvpages.PolicyWindow, []float64{1, 1, 1}, []float64{1, 1, 1}),
	}
	// Differences to uniform on the key tokens (text a: tokens 1 and 3; text b: token 2): 1, 2, 3.
	m, se, ok := diffTo("uniform", runs[0], runs, texts)
	if !ok || math.Abs(m-2) > 1e-12 || math.Abs(se-1/math.Sqrt(3)) > 1e-12 {
		t.Fatalf("diff to uniform %v ± %v (%v), want 2 ± %v", m, se, ok, 1/math.Sqrt(3))
	}
	if _, _, ok := diffTo("uniform", runs[1], runs, texts); ok {
		t.Fatal("uniform differs from itself")
	}
	if m, _, ok := diffTo("window", runs[1], runs, texts); !ok || math.Abs(m+2.0/3) > 1e-12 {
		t.Fatalf("uniform minus window %v (%v), want -2/3", m, ok)
	}
	md := sweepMarkdown(texts, sweepRun{}, runs, []sweepPolicy{runs[0].pol, runs[1].pol, runs[2].pol}, []int{16})
	if !strings.Contains(md, "minus uniform's") || !strings.Contains(md, "| 16 | +2.0000 ± 0.5774 | - | +0.6667 ± 0.3333 |") {
		t.Fatalf("markdown lacks the differences to uniform:\n%s", md)
	}
	if strings.Contains(md, "distance to the full cache") {
		t.Fatalf("distance table without full-cache NLLs:\n%s", md)
	}
	// Distances to the full cache, |NLL - full's| on the key tokens: kvcompress 0, 1, 2 (mean 1), uniform 1, 1, 1
	// (mean 1), window 0, 0, 1 (mean 1/3); paired with uniform: -1, 0, 1 and -1, -1, 0.
	full := run("full", kvpages.PolicyFull, []float64{1, 0, 1}, []float64{0, 2, 0})
	if m, se, ok := distanceTo("uniform", runs[0], full, runs, texts); !ok || math.Abs(m) > 1e-12 || math.Abs(se-1/math.Sqrt(3)) > 1e-12 {
		t.Fatalf("distance minus uniform's %v ± %v (%v), want 0 ± %v", m, se, ok, 1/math.Sqrt(3))
	}
	md = sweepMarkdown(texts, full, runs, []sweepPolicy{runs[0].pol, runs[1].pol, runs[2].pol}, []int{16})
	if !strings.Contains(md, "| 16 | 1.0000 [+0.0000 ± 0.5774] | 1.0000 | 0.3333 [-0.6667 ± 0.3333] |") {
		t.Fatalf("markdown lacks the distances to the full cache:\n%s", md)
	}
	path := filepath.Join(t.TempDir(), "s.csv")
	if err := writeSweepCSV(path, texts, full, runs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// kvcompress: text a (keys 1, 3) 0 and 1, mean 0.5; text b (key 2) 2; pooled 1.
	want := map[string]string{"kvcompress,16,a,": ",0.500000", "kvcompress,16,b,": ",2.000000", "kvcompress,16,all,": ",1.000000"}
	for _, line := range strings.Split(string(b), "\n") {
		for prefix, end := range want {
			if strings.HasPrefix(line, prefix) {
				if !strings.HasSuffix(line, end) {
					t.Fatalf("CSV row %q does not end in %q", line, end)
				}
				delete(want, prefix)
			}
		}
	}
	if len(want) > 0 {
		t.Fatalf("CSV lacks rows %v:\n%s", want, b)
	}
}
