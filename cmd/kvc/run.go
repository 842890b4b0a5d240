package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"kvc/engine"
	"kvc/kvpages"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type samplingFlags struct {
	n     int
	sc    engine.SamplerConfig
	stops stringList
}

func (f *samplingFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.n, "n", 256, "new tokens to generate")
	f.sc.RegisterFlags(fs)
	fs.Var(&f.stops, "stop", "stop string (repeatable)")
}

func (f *samplingFlags) config() (engine.SamplerConfig, error) {
	sc := f.sc
	if sc.Seed == 0 {
		sc.Seed = uint64(time.Now().UnixNano())
	}
	if f.n < 0 {
		return sc, fmt.Errorf("-n %d: want a count >= 0", f.n)
	}
	return sc, sc.Validate()
}

// runPrompt applies kvc run's positional form, kvc run [MODEL] [PROMPT...]: the first argument is the model
// unless --model is given, the rest is the prompt. With no prompt from the flags or arguments, a stdin that is
// not a terminal is read as the prompt (echo text | kvc run M), as with ollama and llama.cpp.
func runPrompt(model, prompt *string, promptFile string, args []string, stdin *os.File) error {
	if *model == "" && len(args) > 0 {
		*model, args = args[0], args[1:]
	}
	if len(args) > 0 {
		if *prompt != "" || promptFile != "" {
			return usageError{fmt.Errorf("unexpected argument %q: the prompt is already given by --prompt or --file", args[0])}
		}
		*prompt = strings.Join(args, " ")
	}
	if promptFile != "" && *prompt != "" {
		return usageError{fmt.Errorf("--prompt and --file both give the prompt: pass one")}
	}
	var r io.Reader
	switch {
	case promptFile == "-":
		r = stdin
	case promptFile != "":
		b, err := os.ReadFile(promptFile)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		*prompt = string(b)
	case *prompt == "" && stdin != nil && !isTerminal(stdin):
		r = stdin
	}
	if r != nil {
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("reading the prompt from stdin: %w", err)
		}
		*prompt = strings.TrimRight(string(b), "\n")
	}
	return nil
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	var sf samplingFlags
	ef.register(fs)
	sf.register(fs)
	prompt := fs.String("prompt", "", "prompt text (default: the arguments after MODEL, else stdin when it is not a terminal)")
	promptFile := fs.String("file", "", "read the prompt from a file (- for stdin)")
	echo := fs.Bool("echo", false, "print the prompt before the completion")
	stats := fs.Bool("stats", false, "print statistics to stderr at the end")
	truncate := fs.Bool("truncate", false, "drop the start of a prompt longer than the context instead of failing")
	kvMap := fs.String("kv-map", "", "write a PNG of the cache (one row per layer and KV head, one column per position) at the end")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if err := runPrompt(&ef.model, prompt, *promptFile, fs.Args(), os.Stdin); err != nil {
		return err
	}
	sc, err := sf.config()
	if err != nil {
		return err
	}
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	ids := l.tok.Encode(*prompt, true)
	ctx := l.ck.Config.Context
	if len(ids) >= ctx {
		if !*truncate {
			return fmt.Errorf("the prompt is %d tokens, the model's context is %d: shorten it or pass --truncate", len(ids), ctx)
		}
		keep := ctx / 2
		fmt.Fprintf(os.Stderr, "kvc: prompt of %d tokens truncated to its last %d (context %d)\n", len(ids), keep, ctx)
		ids = append([]int{ids[0]}, ids[len(ids)-keep+1:]...)
	}
	g := &generation{l: l, out: os.Stdout, stderr: os.Stderr}
	if *echo {
		fmt.Fprint(os.Stdout, l.tok.Decode(ids))
	}
	res, err := g.run(ids, sc, sf.n, sf.stops, ef.interval)
	fmt.Fprintln(os.Stdout)
	if err != nil {
		return err
	}
	if res.contextFull {
		fmt.Fprintf(os.Stderr, "kvc: stopped after %d new tokens: the model's context of %d tokens is full\n", res.newTokens, ctx)
	}
	if *stats {
		g.printStats(res)
	}
	if *kvMap != "" {
		opts, _ := ef.compressionOptions() // validated by load
		if err := writeKVMap(*kvMap, g, res.seq, opts); err != nil {
			return fmt.Errorf("--kv-map: %w", err)
		}
	}
	return nil
}

// generation runs one sequence from prompt to completion, compressing its cache as configured.
type generation struct {
	l      *loaded
	out    io.Writer
	stderr io.Writer
	comp   engine.CompressStats // totals
	rounds int
	// interrupt, when set (Ctrl-C in kvc chat), ends the reply after the token being printed.
	interrupt *atomic.Bool
}

// afterToken, when set (tests), runs after each generated token is printed.
var afterToken func()

type genResult struct {
	seq          *engine.Sequence
	tokens       []int // generated, in order (the last one may not be in the cache yet)
	newTokens    int
	finish       string // "stop", "length", "context", "interrupted"
	contextFull  bool
	prefill      time.Duration
	decode       time.Duration
	promptTokens int
	peakBlocks   int
	kept         string
	fullKVs      int
}

func (g *generation) compress(seq *engine.Sequence) error {
	if g.l.planner == nil {
		return nil
	}
	st, err := g.l.eng.Compress(g.l.planner, []*engine.Sequence{seq}, nil, nil)
	if err != nil {
		return err
	}
	if st.Seqs == 0 {
		return nil // under budget: nothing planned
	}
	g.rounds++
	g.comp.EvictedKVs += st.EvictedKVs
	g.comp.FreedBlocks += st.FreedBlocks
	g.comp.Moves += st.Moves
	g.comp.Time += st.Time
	return nil
}

func (g *generation) run(ids []int, sc engine.SamplerConfig, n int, stops []string, interval int) (genResult, error) {
	return g.continueSeq(g.l.eng.NewSequence(sc), ids, n, stops, interval)
}

// continueSeq prefills ids after what seq already holds, then generates up to n tokens.
func (g *generation) continueSeq(seq *engine.Sequence, ids []int, n int, stops []string, interval int) (genResult, error) {
	e := g.l.eng
	res := genResult{promptTokens: len(ids), finish: "length"}
	res.seq = seq
	t0 := time.Now()
	logits, err := e.Prefill(seq, ids)
	if err != nil {
		return res, err
	}
	res.peakBlocks = e.Pool.InUse()
	if err := g.compress(seq); err != nil {
		return res, err
	}
	res.prefill = time.Since(t0)
	t1 := time.Now()
	// The end-of-generation rules (EOS, stop strings, length, context) are the scheduler's.
	ts := engine.NewTokenStream(g.l.eos, false, n, g.l.ck.Config.Context, stops, g.l.tok.NewDecoder(), seq.Tokens)
	for n > 0 {
		next := seq.Sampler.Sample(logits, seq.Tokens)
		generated, text, finish := ts.Next(next, len(seq.Tokens)+1)
		if generated {
			res.newTokens++
			res.tokens = append(res.tokens, next)
			fmt.Fprint(g.out, text)
		}
		if finish != "" {
			res.finish, res.contextFull = finish, finish == engine.FinishContext
			break
		}
		if afterToken != nil {
			afterToken()
		}
		if g.interrupt != nil && g.interrupt.Load() {
			res.finish = "interrupted"
			break
		}
		if interval > 0 && res.newTokens%interval == 0 {
			if err := g.compress(seq); err != nil {
				return res, err
			}
		}
		// When the pool would run short, compression frees blocks before anything fails.
		if seq.KV.BlocksNeeded(e.Pool, 1) > e.Pool.Free() {
			if err := g.compress(seq); err != nil {
				return res, err
			}
		}
		out, err := e.Decode([]*engine.Sequence{seq}, []int{next})
		if errors.Is(err, kvpages.ErrNoBlocks) {
			return res, fmt.Errorf("the KV cache is full after %d tokens (%d blocks): raise --kv-mem or set a --kv-budget with --kv-policy kvcompress", seq.KV.NextPos, e.Pool.Blocks())
		}
		if err != nil {
			return res, err
		}
		logits = out[0]
		res.peakBlocks = max(res.peakBlocks, e.Pool.InUse())
	}
	fmt.Fprint(g.out, ts.Tail())
	res.decode = time.Since(t1)
	return res, nil
}

func (g *generation) printStats(r genResult) {
	e := g.l.eng
	w := g.stderr
	bb := e.KV.BlockBytes()
	fmt.Fprintf(w, "model      %s (%s, %s weights), backend %s\n", g.l.ck.Path, g.l.ck.Format, fmtBytes(e.W.Bytes), e.B.Name())
	fmt.Fprintf(w, "load       %.2f s\n", g.l.loadTime.Seconds())
	fmt.Fprintf(w, "prompt     %d tokens in %.3f s: %.1f tok/s\n", r.promptTokens, r.prefill.Seconds(), float64(r.promptTokens)/r.prefill.Seconds())
	if r.newTokens > 1 {
		fmt.Fprintf(w, "decode     %d tokens in %.3f s: %.1f tok/s\n", r.newTokens, r.decode.Seconds(), float64(r.newTokens-1)/r.decode.Seconds())
	}
	fmt.Fprintf(w, "finish     %s\n", r.finish)
	inUse := e.Pool.InUse()
	fmt.Fprintf(w, "kv cache   %d of %d blocks in use (%s of %s; block %d slots, %d bytes), peak %d blocks (%s)\n",
		inUse, e.Pool.Blocks(), fmtBytes(int64(inUse)*bb), fmtBytes(int64(e.Pool.Blocks())*bb), e.Opt.BlockSize, bb,
		r.peakBlocks, fmtBytes(int64(r.peakBlocks)*bb))
	if g.l.planner != nil {
		fmt.Fprintf(w, "kv-compress policy %s: %.1f ms in %d rounds\n", g.l.planner.Options().Policy,
			float64(g.comp.Time.Microseconds())/1000, g.rounds)
		led := kvpages.Ledger{Rounds: g.rounds, EvictedKVs: g.comp.EvictedKVs, FreedBlocks: g.comp.FreedBlocks, Moves: g.comp.Moves}
		if st, err := kvpages.CollectStats(e.Pool, []*kvpages.Seq{r.seq.KV}, bb, led); err == nil {
			fmt.Fprint(w, st.Table())
		}
	}
}
