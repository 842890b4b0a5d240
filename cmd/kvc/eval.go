package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
	if n <= 0 { // the default: the whole text, up to the context
		n = min(len(ids), l.ck.Config.Context)
	}
	n = min(n, len(ids))
	if n > l.ck.Config.Context {
		return nil, fmt.Errorf("--ctx %d is past the model's context of %d tokens", n, l.ck.Config.Context)
	}
	if n < 2 {
		return nil, fmt.Errorf("%s has %d tokens: perplexity needs at least 2", path, n)
	}
	return ids[:n], nil
}

func cmdEvalPPL(args []string) error {
	fs := flag.NewFlagSet("eval ppl", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	ef.register(fs)
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
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	toks, err := evalTokens(l, *text, *ctx)
	if err != nil {
		return err
	}
	r, err := perplexity(l, toks, *chunk, ef.interval)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("%s: %d tokens, policy %s, budget %d: nll %.4f, ppl %.4f, compression %.2fx, peak %d blocks (%s)\n",
		filepath.Base(*text), r.Tokens, r.Policy, r.Budget, r.NLL, r.PPL, r.CompressionRate, r.KVBlocksPeak, fmtBytes(r.KVBytesPeak))
	return nil
}

func cmdEvalSweep(args []string) error {
	fs := flag.NewFlagSet("eval sweep", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	ef.register(fs)
	text := fs.String("text", "", "text file to score (- for stdin)")
	ctx := fs.Int("ctx", 0, "score the first N tokens (default: the whole text, up to the context)")
	chunk := fs.Int("chunk", 0, "feed the text in prefill chunks of N tokens, compressing after each (0: one decode step per token)")
	policies := fs.String("policies", "kvcompress,uniform,window,h2o", "policies to compare (full is always run)")
	budgets := fs.String("budgets", "16,24,32,48,64,96,128", "max cache tokens per head")
	outFlag := fs.String("out", "sweep", "output prefix: writes PREFIX.md, PREFIX.csv and PREFIX.png (a folder: sweep.md, ... inside it)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	prefix, err := sweepPrefix(*outFlag)
	if err != nil {
		return err
	}
	out := &prefix
	if *text == "" {
		return fmt.Errorf("kvc eval sweep: --text FILE is required")
	}
	var pols []kvpages.Policy
	for _, p := range strings.Split(*policies, ",") {
		pol, err := kvpages.ParsePolicy(p)
		if err != nil {
			return err
		}
		if pol != kvpages.PolicyFull {
			pols = append(pols, pol)
		}
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
	ef.policy = "full"
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	toks, err := evalTokens(l, *text, *ctx)
	if err != nil {
		l.Close()
		return err
	}
	lp := l.planner
	l.planner = nil
	full, err := perplexity(l, toks, *chunk, 1)
	l.planner = lp
	l.Close()
	if err != nil {
		return err
	}
	rows := []engine.PerplexityResult{full}
	for _, p := range pols {
		f := ef
		f.policy = p.String()
		for _, b := range bs {
			f.budget = b
			if _, err := f.compressionOptions(); err != nil {
				fmt.Fprintf(os.Stderr, "kvc: skipping %s at budget %d: %v\n", p, b, err)
				continue
			}
			l, err := load(&f, os.Stderr)
			if err != nil {
				return err
			}
			r, err := perplexity(l, toks, *chunk, f.interval)
			l.Close()
			if err != nil {
				return err
			}
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "%-10s budget %4d: ppl %.4f at %.2fx\n", r.Policy, r.Budget, r.PPL, r.CompressionRate)
		}
	}
	md := sweepMarkdown(rows, bs, pols, full)
	fmt.Print(md)
	if err := os.WriteFile(*out+".md", []byte(md), 0o644); err != nil {
		return err
	}
	if err := writeSweepCSV(*out+".csv", rows); err != nil {
		return err
	}
	f, err := os.Create(*out + ".png")
	if err != nil {
		return err
	}
	spec := plotSpec{Title: fmt.Sprintf("perplexity vs compression (%d tokens)", full.Tokens), XLabel: "compression rate (full KVs / kept KVs)",
		YLabel: "perplexity", LogX: true}
	for _, p := range pols {
		s := series{Name: p.String()}
		for _, r := range rows {
			if r.Policy == p.String() {
				s.X, s.Y = append(s.X, r.CompressionRate), append(s.Y, r.PPL)
			}
		}
		spec.Series = append(spec.Series, s)
	}
	spec.Series = append(spec.Series, series{Name: "full", X: []float64{1}, Y: []float64{full.PPL}})
	if err := writePlot(f, spec); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kvc: wrote %s.md, %s.csv, %s.png\n", *out, *out, *out)
	return nil
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

// sweepMarkdown is a table: one row per budget, per policy the perplexity and the compression rate.
func sweepMarkdown(rows []engine.PerplexityResult, bs []int, pols []kvpages.Policy, full engine.PerplexityResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Perplexity over %d tokens; full cache: **%.4f**. Each cell: perplexity (compression rate).\n\n", full.Tokens, full.PPL)
	b.WriteString("| budget (tokens/head) |")
	for _, p := range pols {
		fmt.Fprintf(&b, " %s |", p)
	}
	b.WriteString("\n|---|")
	for range pols {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, bud := range bs {
		fmt.Fprintf(&b, "| %d |", bud)
		for _, p := range pols {
			cell := " - |"
			for _, r := range rows {
				if r.Policy == p.String() && r.Budget == bud {
					cell = fmt.Sprintf(" %.4f (%.2fx) |", r.PPL, r.CompressionRate)
				}
			}
			b.WriteString(cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func writeSweepCSV(path string, rows []engine.PerplexityResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"policy", "budget", "tokens", "nll", "ppl", "compression_rate", "kv_blocks_peak", "kv_bytes_peak", "rounds", "evicted_kvs"})
	for _, r := range rows {
		w.Write([]string{r.Policy, strconv.Itoa(r.Budget), strconv.Itoa(r.Tokens), fmt.Sprintf("%.6f", r.NLL), fmt.Sprintf("%.6f", r.PPL),
			fmt.Sprintf("%.4f", r.CompressionRate), strconv.Itoa(r.KVBlocksPeak), strconv.FormatInt(r.KVBytesPeak, 10),
			strconv.Itoa(r.Rounds), strconv.Itoa(r.EvictedKVs)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
