package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"kvc/engine"
	"kvc/kvpages"
)

func cmdEval(args []string) error {
	return subcommand("eval", args, map[string]func([]string) error{"ppl": cmdEvalPPL, "sweep": cmdEvalSweep},
		map[string]string{"ppl": "perplexity of a text under one policy and budget", "sweep": "perplexity under each policy and budget: table, CSV and PNG plot"})
}

// evalTokens reads FILE and returns its first n tokens (BOS first).
func evalTokens(l *loaded, path string, n int) ([]int, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	ids := l.tok.Encode(string(b), true)
	if n > l.ck.Config.Context {
		return nil, fmt.Errorf("--ctx %d is past the model's context of %d tokens", n, l.ck.Config.Context)
	}
	if n == 0 { // the default: the whole text, up to the context
		n = l.ck.Config.Context
	}
	if n = min(n, len(ids)); n < 2 {
		return nil, fmt.Errorf("%s has %d tokens: perplexity needs at least 2", path, n)
	}
	return ids[:n], nil
}

// sweepOwn maps the engine flags that eval sweep sets per run to the sweep's own flag for them.
var sweepOwn = map[string]string{"kv-policy": "--policies", "kv-budget": "--budgets", "kv-rate": "--budgets (tokens per head)"}

// textCount is "1 text" or "n texts".
func textCount(n int) string {
	if n == 1 {
		return "1 text"
	}
	return fmt.Sprintf("%d texts", n)
}

// checkEvalShape refuses a negative --ctx or --chunk before any work (both mean "the default" only at 0), and
// a --ctx that leaves nothing to predict.
func checkEvalShape(ctx, chunk int) error {
	switch {
	case ctx < 0 || ctx == 1:
		return fmt.Errorf("--ctx %d: want 0 (the whole text, up to the model's context) or at least 2 tokens", ctx)
	case chunk < 0:
		return fmt.Errorf("--chunk %d: want 0 (one decode step per token) or a prefill chunk of at least 1 token", chunk)
	}
	return nil
}

// keyFlags are the key-token flags of eval ppl and sweep (engine.KeyTokenOptions).
type keyFlags struct{ o engine.KeyTokenOptions }

func (k *keyFlags) register(fs *flag.FlagSet) {
	d := engine.DefaultKeyTokenOptions
	fs.IntVar(&k.o.Short, "key-short", d.Short, "key tokens: recent tokens K of the short context they are scored against")
	fs.Float64Var(&k.o.MinGain, "key-alpha", d.MinGain, "key tokens: least log-probability gain (nats) of the full context over the short one")
	fs.Float64Var(&k.o.MinLogProb, "key-beta", d.MinLogProb, "key tokens: least full-context log-probability (nats, <= 0)")
}

// evalText is one text with its key tokens and full-cache result.
type evalText struct {
	name string
	toks []int
	keys engine.KeyTokenSet
	full engine.PerplexityResult
}

// prepareTexts tokenizes every text, checks the key-token options against it, selects its key tokens and
// scores the full cache (protocol chunk/interval) on l, which must have no planner.
func prepareTexts(l *loaded, paths []string, n, chunk int, ko engine.KeyTokenOptions) ([]evalText, error) {
	out := make([]evalText, len(paths))
	for i, p := range paths {
		toks, err := evalTokens(l, p, n)
		if err != nil {
			return nil, err
		}
		if err := ko.Validate(len(toks)); err != nil {
			return nil, fmt.Errorf("%s: --key-short: %w", p, err)
		}
		out[i] = evalText{name: filepath.Base(p), toks: toks}
	}
	for i := range out {
		t := &out[i]
		var err error
		if t.keys, err = l.eng.KeyTokens(t.toks, ko); err != nil {
			return nil, fmt.Errorf("%s: key tokens: %w", t.name, err)
		}
		if t.full, err = perplexity(l, t.toks, chunk, 1); err != nil {
			return nil, err
		}
		if err := t.keys.Score(&t.full); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func cmdEvalPPL(args []string) error {
	fs := flag.NewFlagSet("eval ppl", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	ef.register(fs)
	var kf keyFlags
	kf.register(fs)
	text := fs.String("text", "", "text file to score (- for stdin)")
	ctx := fs.Int("ctx", 0, "score the first N tokens (default: the whole text, up to the context)")
	chunk := fs.Int("chunk", 0, "feed the text in prefill chunks of N tokens, compressing after each (0: one decode step per token)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *text == "" {
		return fmt.Errorf("kvc eval ppl: --text FILE is required")
	}
	if err := kf.o.Validate(0); err != nil {
		return err
	}
	if err := checkEvalShape(*ctx, *chunk); err != nil {
		return err
	}
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	pl := l.planner
	l.planner = nil
	ts, err := prepareTexts(l, []string{*text}, *ctx, *chunk, kf.o)
	l.planner = pl
	if err != nil {
		return err
	}
	t := ts[0]
	r := t.full
	if pl != nil {
		if r, err = perplexity(l, t.toks, *chunk, ef.interval); err != nil {
			return err
		}
		if err := t.keys.Score(&r); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("%s: %d tokens, policy %s, budget %d: nll %.4f, ppl %.4f; %d key tokens: nll %.4f, ppl %.4f; compression %.2fx, peak %d blocks (%s)\n",
		t.name, r.Tokens, r.Policy, r.Budget, r.NLL, r.PPL, r.KeyTokens, r.KeyNLL, r.KeyPPL, r.CompressionRate, r.KVBlocksPeak, fmtBytes(r.KVBytesPeak))
	return nil
}

// textPaths expands a comma-separated list of files and folders (a folder: its *.txt files, sorted).
func textPaths(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p == "-" { // stdin
			out = append(out, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--text: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.txt"))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("--text: folder %s has no .txt files", p)
		}
		out = append(out, m...) // Glob sorts
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--text FILE[,FILE|FOLDER...] is required")
	}
	return out, nil
}

// sweepPolicy is one column of a sweep: a policy, the metric it ranks by and optionally its recency share
// ("policy", "policy:metric" or "policy:metric:recent").
type sweepPolicy struct {
	name      string
	policy    kvpages.Policy
	metric    kvpages.Metric
	recent    float64
	hasRecent bool
	floor     float64
	hasFloor  bool
}

// parseSweepPolicies reads --policies; metric is --kv-metric, applied to the policies that rank by a metric.
func parseSweepPolicies(list, metric string) ([]sweepPolicy, error) {
	def, err := kvpages.ParseMetric(metric)
	if err != nil {
		return nil, err
	}
	var out []sweepPolicy
	seen := map[string]bool{}
	for _, p := range strings.Split(list, ",") {
		name, mname, hasMetric := strings.Cut(strings.TrimSpace(p), ":")
		mname, rname, hasRecent := strings.Cut(mname, ":")
		rname, fname, hasFloor := strings.Cut(rname, ":")
		pol, err := kvpages.ParsePolicy(name)
		if err != nil {
			return nil, fmt.Errorf("--policies: %w", err)
		}
		if pol == kvpages.PolicyFull {
			continue
		}
		sp := sweepPolicy{name: pol.String(), policy: pol}
		if hasMetric {
			if sp.metric, err = kvpages.ParseMetric(mname); err != nil {
				return nil, fmt.Errorf("--policies: %w", err)
			}
			if _, err := pol.MetricWith(sp.metric); err != nil {
				return nil, fmt.Errorf("--policies %s: %w", p, err)
			}
			sp.name += ":" + sp.metric.String()
			if hasRecent {
				sp.recent, err = strconv.ParseFloat(rname, 64)
				if err != nil || !(sp.recent >= 0 && sp.recent <= 1) {
					return nil, fmt.Errorf("--policies %s: recency share %q: want a number in [0, 1]", p, rname)
				}
				sp.hasRecent = true
				sp.name += ":" + rname
			}
			if hasFloor {
				sp.floor, err = strconv.ParseFloat(fname, 64)
				if err != nil || !(sp.floor >= 0 && sp.floor <= 1) || pol != kvpages.PolicyKVCompress {
					return nil, fmt.Errorf("--policies %s: head floor %q: want a number in [0, 1], for kvcompress", p, fname)
				}
				sp.hasFloor = true
				sp.name += ":" + fname
			}
		} else if _, err := pol.MetricWith(def); err == nil {
			sp.metric = def
		}
		if seen[sp.name] {
			return nil, fmt.Errorf("--policies: %s twice", sp.name)
		}
		seen[sp.name] = true
		out = append(out, sp)
	}
	if def != kvpages.MetricDefault {
		ok := false
		for _, sp := range out {
			ok = ok || sp.metric == def
		}
		if !ok {
			return nil, fmt.Errorf("--kv-metric %s: none of the policies %s ranks by a metric", def, list)
		}
	}
	return out, nil
}

// sweepRun is one policy at one budget over every text.
type sweepRun struct {
	pol    sweepPolicy
	budget int
	texts  []engine.PerplexityResult
}

func cmdEvalSweep(args []string) error {
	fs := flag.NewFlagSet("eval sweep", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	ef.register(fs)
	var kf keyFlags
	kf.register(fs)
	text := fs.String("text", "", "text files or folders of .txt files to score, comma-separated (- for stdin); results are pooled over them")
	ctx := fs.Int("ctx", 0, "score the first N tokens of each text (default: the whole text, up to the context)")
	chunk := fs.Int("chunk", 0, "feed the text in prefill chunks of N tokens, compressing after each (0: one decode step per token)")
	policies := fs.String("policies", "kvcompress,uniform,window,h2o", "policies to compare, each optionally with its metric, recency share and head floor as policy:metric[:recent[:floor]] (full is always run)")
	budgets := fs.String("budgets", "16,24,32,48,64,96,128", "max cache tokens per head")
	outFlag := fs.String("out", "sweep", "output prefix: writes PREFIX.md, PREFIX.csv, PREFIX.png (perplexity) and PREFIX-key.png (key-token perplexity); a folder: sweep.md, ... inside it")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	// The sweep sets the policy and the budget of each run itself; a single one given would be dropped.
	var single error
	fs.Visit(func(f *flag.Flag) {
		if sweepOwn[f.Name] != "" && single == nil {
			single = fmt.Errorf("eval sweep: --%s sets one run's %s; the sweep takes %s", f.Name, strings.TrimPrefix(f.Name, "kv-"), sweepOwn[f.Name])
		}
	})
	if single != nil {
		return single
	}
	prefix, err := sweepPrefix(*outFlag)
	if err != nil {
		return err
	}
	out := &prefix
	paths, err := textPaths(*text)
	if err != nil {
		return err
	}
	if err := kf.o.Validate(0); err != nil {
		return err
	}
	if err := checkEvalShape(*ctx, *chunk); err != nil {
		return err
	}
	pols, err := parseSweepPolicies(*policies, ef.metric)
	if err != nil {
		return err
	}
	var bs []int
	for _, b := range strings.Split(*budgets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil || n <= 0 {
			return fmt.Errorf("--budgets: %q is not a positive token count", b)
		}
		bs = append(bs, n)
	}
	// Every policy collects its own metric, so each gets its own engine; the model is loaded once per policy.
	ef.policy, ef.metric, ef.budget, ef.rate = "full", "", 0, 0
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	texts, err := prepareTexts(l, paths, *ctx, *chunk, kf.o)
	l.Close()
	if err != nil {
		return err
	}
	full := sweepRun{pol: sweepPolicy{name: "full", policy: kvpages.PolicyFull}}
	for _, t := range texts {
		full.texts = append(full.texts, t.full)
		fmt.Fprintf(os.Stderr, "%s: %d tokens, %d key tokens; full cache: ppl %.4f, key-token ppl %.4f\n", t.name, t.full.Tokens, t.full.KeyTokens, t.full.PPL, t.full.KeyPPL)
	}
	var runs []sweepRun
	for _, p := range pols {
		f := ef
		f.policy, f.metric = p.policy.String(), ""
		if p.metric != kvpages.MetricDefault {
			f.metric = p.metric.String()
		}
		if p.hasRecent {
			f.recent = p.recent
		}
		if p.hasFloor {
			f.floor = p.floor
		}
		for _, b := range bs {
			f.budget = b
			if _, err := f.compressionOptions(); err != nil {
				fmt.Fprintf(os.Stderr, "kvc: skipping %s at budget %d: %v\n", p.name, b, err)
				continue
			}
			l, err := load(&f, os.Stderr)
			if err != nil {
				return err
			}
			run := sweepRun{pol: p, budget: b}
			for _, t := range texts {
				r, err := perplexity(l, t.toks, *chunk, f.interval)
				if err == nil {
					err = t.keys.Score(&r)
				}
				if err != nil {
					l.Close()
					return fmt.Errorf("%s: %w", t.name, err)
				}
				run.texts = append(run.texts, r)
			}
			l.Close()
			runs = append(runs, run)
			ps := pooled(run)
			fmt.Fprintf(os.Stderr, "%-18s budget %4d: ppl %.4f, key-token ppl %.4f at %.2fx\n", p.name, b, ps.ppl, ps.keyPPL, ps.rate)
		}
	}
	md := sweepMarkdown(texts, full, runs, pols, bs)
	fmt.Print(md)
	if err := os.WriteFile(*out+".md", []byte(md), 0o644); err != nil {
		return err
	}
	if err := writeSweepCSV(*out+".csv", texts, full, runs); err != nil {
		return err
	}
	fullStats := pooled(full)
	for _, pl := range []struct {
		file, title string
		key         bool
	}{{*out + ".png", "perplexity", false}, {*out + "-key.png", "key-token perplexity", true}} {
		spec := plotSpec{Title: fmt.Sprintf("%s vs compression (%s)", pl.title, textCount(len(texts))),
			XLabel: "compression rate (full KVs / kept KVs)", YLabel: pl.title, LogX: true}
		for _, p := range pols {
			s := series{Name: p.name}
			for _, r := range runs {
				if r.pol.name == p.name {
					ps := pooled(r)
					s.X, s.Y = append(s.X, ps.rate), append(s.Y, ps.pick(pl.key))
				}
			}
			spec.Series = append(spec.Series, s)
		}
		spec.Series = append(spec.Series, series{Name: "full", X: []float64{1}, Y: []float64{fullStats.pick(pl.key)}})
		if err := writePlotFile(pl.file, spec); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "kvc: wrote %s.md, %s.csv, %s.png, %s-key.png\n", *out, *out, *out, *out)
	return nil
}

func writePlotFile(path string, spec plotSpec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writePlot(f, spec); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// poolStats are one run's results pooled over the texts.
type poolStats struct {
	tokens, keyTokens  int
	nll, ppl           float64 // over every predicted token of every text
	keyNLL, keyPPL     float64 // over every key token of every text
	rate               float64 // mean compression rate
	diffWindow, diffSE float64 // key-token NLL minus window's at the same budget, and its standard error
	hasDiff            bool
}

func (p poolStats) pick(key bool) float64 {
	if key {
		return p.keyPPL
	}
	return p.ppl
}

func pooled(r sweepRun) poolStats {
	var p poolStats
	var nll, knll float64
	for _, t := range r.texts {
		p.tokens += t.Tokens
		nll += t.NLL * float64(t.Tokens)
		p.keyTokens += t.KeyTokens
		knll += t.KeyNLL * float64(t.KeyTokens)
		p.rate += t.CompressionRate / float64(len(r.texts))
	}
	p.nll, p.ppl = nll/float64(max(p.tokens, 1)), math.Exp(nll/float64(max(p.tokens, 1)))
	if p.keyTokens > 0 {
		p.keyNLL = knll / float64(p.keyTokens)
		p.keyPPL = math.Exp(p.keyNLL)
	}
	return p
}

// diffTo is the mean over every key token of every text of r's NLL minus that of the column named base
// (window, uniform) at the same budget (paired: the same tokens), with its standard error sd/sqrt(n); ok is
// false without such a run, for that run itself, or without key tokens.
func diffTo(base string, r sweepRun, runs []sweepRun, texts []evalText) (mean, se float64, ok bool) {
	w := baseRun(base, r, runs)
	if w == nil {
		return 0, 0, false
	}
	var d []float64
	for ti, t := range texts {
		for _, i := range t.keys.Index {
			d = append(d, r.texts[ti].TokenNLL[i-1]-w.texts[ti].TokenNLL[i-1])
		}
	}
	return meanSE(d)
}

// baseRun is the run of the column named base at r's budget, or nil when there is none or r is that
// column (or the full cache).
func baseRun(base string, r sweepRun, runs []sweepRun) *sweepRun {
	if r.pol.name == base || r.pol.name == "full" {
		return nil
	}
	for i := range runs {
		if runs[i].pol.name == base && runs[i].budget == r.budget {
			return &runs[i]
		}
	}
	return nil
}

// keyDistances is, per key token of every text, |r's NLL - the full cache's NLL|: how far the policy moves
// the model's prediction of a token that needs distant context, in either direction. A policy can score a
// lower key-token NLL than the full cache (dropping distant KVs may sharpen a prediction), so the signed
// difference alone does not say which policy is closer to the model it compresses. nil when full has no
// per-token NLLs for these texts.
func keyDistances(r, full sweepRun, texts []evalText) []float64 {
	if len(full.texts) != len(texts) {
		return nil
	}
	var d []float64
	for ti, t := range texts {
		f := full.texts[ti].TokenNLL
		for _, i := range t.keys.Index {
			if i-1 >= len(f) {
				return nil
			}
			d = append(d, math.Abs(r.texts[ti].TokenNLL[i-1]-f[i-1]))
		}
	}
	return d
}

// meanDistance is the mean of keyDistances; ok is false without key tokens or full-cache NLLs.
func meanDistance(r, full sweepRun, texts []evalText) (float64, bool) {
	d := keyDistances(r, full, texts)
	if len(d) == 0 {
		return 0, false
	}
	m := 0.0
	for _, v := range d {
		m += v
	}
	return m / float64(len(d)), true
}

// distanceTo is the mean key-token distance to the full cache of r minus that of the column named base at
// the same budget (paired per key token), with its standard error.
func distanceTo(base string, r, full sweepRun, runs []sweepRun, texts []evalText) (mean, se float64, ok bool) {
	w := baseRun(base, r, runs)
	if w == nil {
		return 0, 0, false
	}
	a, b := keyDistances(r, full, texts), keyDistances(*w, full, texts)
	if a == nil || b == nil {
		return 0, 0, false
	}
	for i := range a {
		a[i] -= b[i]
	}
	return meanSE(a)
}

// meanSE is the mean of d and its standard error sd/sqrt(n); ok is false for fewer than 2 values.
func meanSE(d []float64) (mean, se float64, ok bool) {
	if len(d) < 2 {
		return 0, 0, false
	}
	for _, v := range d {
		mean += v
	}
	mean /= float64(len(d))
	ss := 0.0
	for _, v := range d {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(d)-1) / float64(len(d))), true
}

// sweepPrefix is where --out puts the sweep's files: an existing folder (or one named with a trailing
// slash, created) holds sweep.md, sweep.csv and sweep.png; anything else is a file prefix whose folder must
// exist, checked before the sweep runs rather than after.
func sweepPrefix(out string) (string, error) {
	if out == "" {
		return "", fmt.Errorf("--out: empty prefix")
	}
	if strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)) {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", fmt.Errorf("--out: %w", err)
		}
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return filepath.Join(out, "sweep"), nil
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return "", fmt.Errorf("--out %s: folder %s does not exist", out, filepath.Dir(out))
	}
	return out, nil
}

// perplexity scores toks token by token (chunk 0) or in prefill chunks.
func perplexity(l *loaded, toks []int, chunk, interval int) (engine.PerplexityResult, error) {
	if chunk > 0 {
		return l.eng.PerplexityChunked(toks, l.planner, chunk)
	}
	return l.eng.Perplexity(toks, l.planner, interval)
}

// sweepMarkdown is the tables, one row per budget: per policy the pooled perplexity with the compression
// rate, the pooled key-token perplexity with its NLL difference to window (± standard error), with a uniform
// column the paired differences to uniform, and the key tokens' mean distance to the full cache.
func sweepMarkdown(texts []evalText, full sweepRun, runs []sweepRun, pols []sweepPolicy, bs []int) string {
	var b strings.Builder
	fs := pooled(full)
	fmt.Fprintf(&b, "%s, %d predicted tokens, %d key tokens. Full cache: perplexity **%.4f**, key-token perplexity **%.4f**.\n\n",
		textCount(len(texts)), fs.tokens, fs.keyTokens, fs.ppl, fs.keyPPL)
	table := func(title string, cell func(r sweepRun) string) {
		b.WriteString(title + "\n\n| budget (tokens/head) |")
		for _, p := range pols {
			fmt.Fprintf(&b, " %s |", p.name)
		}
		b.WriteString("\n|---|")
		for range pols {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, bud := range bs {
			fmt.Fprintf(&b, "| %d |", bud)
			for _, p := range pols {
				c := " - |"
				for _, r := range runs {
					if r.pol.name == p.name && r.budget == bud {
						c = " " + cell(r) + " |"
					}
				}
				b.WriteString(c)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	table("Perplexity (compression rate):", func(r sweepRun) string {
		ps := pooled(r)
		return fmt.Sprintf("%.4f (%.2fx)", ps.ppl, ps.rate)
	})
	table("Key-token perplexity [key-token NLL minus window's, ± standard error]:", func(r sweepRun) string {
		ps := pooled(r)
		if r.pol.policy == kvpages.PolicyWindow {
			return fmt.Sprintf("%.4f", ps.keyPPL)
		}
		if d, se, ok := diffTo("window", r, runs, texts); ok {
			return fmt.Sprintf("%.4f [%+.4f ± %.4f]", ps.keyPPL, d, se)
		}
		return fmt.Sprintf("%.4f", ps.keyPPL)
	})
	// The metric policies differ from uniform only in how they allocate blocks, or in their metric: this
	// pairs them with uniform directly (a smaller standard error than two differences to window).
	for _, p := range pols {
		if p.name != "uniform" {
			continue
		}
		table("Key-token NLL minus uniform's [± standard error]:", func(r sweepRun) string {
			if d, se, ok := diffTo("uniform", r, runs, texts); ok {
				return fmt.Sprintf("%+.4f ± %.4f", d, se)
			}
			return "-"
		})
	}
	// How close each policy stays to the model it compresses, on the key tokens: lower is closer.
	if _, ok := meanDistance(full, full, texts); ok {
		table("Key-token distance to the full cache: mean |NLL - full cache's NLL| [minus uniform's, ± standard error]:", func(r sweepRun) string {
			m, _ := meanDistance(r, full, texts)
			if d, se, ok := distanceTo("uniform", r, full, runs, texts); ok {
				return fmt.Sprintf("%.4f [%+.4f ± %.4f]", m, d, se)
			}
			return fmt.Sprintf("%.4f", m)
		})
	}
	return b.String()
}

// writeSweepCSV writes one row per run and text, and a pooled row (text "all") per run.
func writeSweepCSV(path string, texts []evalText, full sweepRun, runs []sweepRun) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"policy", "budget", "text", "tokens", "nll", "ppl", "key_tokens", "key_nll", "key_ppl", "key_nll_minus_window", "key_nll_minus_window_se",
		"compression_rate", "kv_blocks_peak", "kv_bytes_peak", "rounds", "evicted_kvs", "key_distance_to_full"})
	g := func(v float64) string { return fmt.Sprintf("%.6f", v) }
	dist := func(r, fr sweepRun, ts []evalText) string {
		if m, ok := meanDistance(r, fr, ts); ok {
			return g(m)
		}
		return ""
	}
	for _, r := range append([]sweepRun{full}, runs...) {
		for ti, t := range r.texts {
			d := ""
			if len(full.texts) == len(texts) {
				d = dist(sweepRun{texts: r.texts[ti : ti+1]}, sweepRun{texts: full.texts[ti : ti+1]}, texts[ti:ti+1])
			}
			w.Write([]string{r.pol.name, strconv.Itoa(r.budget), texts[ti].name, strconv.Itoa(t.Tokens), g(t.NLL), g(t.PPL),
				strconv.Itoa(t.KeyTokens), g(t.KeyNLL), g(t.KeyPPL), "", "", fmt.Sprintf("%.4f", t.CompressionRate),
				strconv.Itoa(t.KVBlocksPeak), strconv.FormatInt(t.KVBytesPeak, 10), strconv.Itoa(t.Rounds), strconv.Itoa(t.EvictedKVs), d})
		}
		ps := pooled(r)
		d, se := "", ""
		if m, s, ok := diffTo("window", r, runs, texts); ok {
			d, se = g(m), g(s)
		}
		w.Write([]string{r.pol.name, strconv.Itoa(r.budget), "all", strconv.Itoa(ps.tokens), g(ps.nll), g(ps.ppl),
			strconv.Itoa(ps.keyTokens), g(ps.keyNLL), g(ps.keyPPL), d, se, fmt.Sprintf("%.4f", ps.rate), "", "", "", "", dist(r, full, texts)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
