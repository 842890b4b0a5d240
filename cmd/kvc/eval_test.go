package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
