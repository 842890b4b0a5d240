package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"kvc/engine"
	"kvc/kvpages"
)

func init() {
	// kvc bench throughput (bench.go owns the mode table; this file adds its mode to it).
	benchModes["throughput"] = cmdBenchThroughput
}

// throughputRate is one compression rate's measurement.
type throughputRate struct {
	Rate          float64 `json:"rate"`              // the label R (1: policy full)
	Policy        string  `json:"policy"`            //
	BudgetTokens  int     `json:"budget_tokens"`     // max cache tokens per head C (0: no budget)
	EffectiveRate float64 `json:"effective_rate"`    // input-len / C: the compression the budget gives a prompt
	Completed     int     `json:"completed"`         // requests that produced all their tokens
	Errors        int     `json:"errors"`            //
	WallS         float64 `json:"wall_s"`            //
	TotalTokS     float64 `json:"total_tok_s"`       // (input+output)*prompts / wall
	OutputTokS    float64 `json:"output_tok_s"`      // output*prompts / wall
	Ratio         float64 `json:"ratio_to_rate1"`    // total tok/s over rate 1's
	PeakBatch     int     `json:"peak_decode_batch"` //
	MeanBatch     float64 `json:"mean_decode_batch"` //
	Preemptions   int     `json:"preemptions"`
	CompressS     float64 `json:"compress_s"`
	CompressShare float64 `json:"compress_share"` // compression time / wall
	Rounds        int     `json:"compress_rounds"`
	EvictedKVs    int     `json:"evicted_kvs"`
	PrefillS      float64 `json:"prefill_s"` // passes of prefill chunks only
	DecodeS       float64 `json:"decode_s"`  // passes of decode rows only
	MixedS        float64 `json:"mixed_s"`   // passes with both (policy full mixes them)
	PeakBlocks    int     `json:"peak_blocks"`
}

// throughputBench is what kvc bench throughput prints.
type throughputBench struct {
	Model      string           `json:"model"`
	Backend    string           `json:"backend"`
	Prompts    int              `json:"prompts"`
	InputLen   int              `json:"input_len"`
	OutputLen  int              `json:"output_len"`
	KVBlocks   int              `json:"kv_blocks"`
	KVBytes    int64            `json:"kv_bytes"`
	BlockSize  int              `json:"block_size"`
	Protect    int              `json:"protect"`
	CacheFloor int              `json:"cache_floor"`
	MaxRows    int              `json:"max_rows"`
	Rates      []throughputRate `json:"rates"`
}

func cmdBenchThroughput(args []string) error { return runBenchThroughput(args, os.Stdout, os.Stderr) }

// budgetForRate is the per-head cache budget the reference benchmark gives rate R for prompts of
// inputLen tokens (benchmark_throughput.py): max(floor, ((inputLen/R) - 1) // b * b), and never below
// the protected window (in whole blocks).
func budgetForRate(rate float64, inputLen, blockSize, floor, protect int) int {
	c := int(math.Floor((float64(inputLen)/rate-1)/float64(blockSize))) * blockSize
	c = max(c, floor)
	return max(c, (protect+blockSize-1)/blockSize*blockSize, blockSize)
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	seen := map[float64]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r < 1 || math.IsInf(r, 0) || math.IsNaN(r) {
			return nil, fmt.Errorf("--kv-rate %q: want numbers >= 1 separated by commas (1 = no compression)", f)
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if !seen[1] {
		out = append([]float64{1}, out...) // every ratio is to rate 1
	}
	return out, nil
}

func runBenchThroughput(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench throughput", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := engineFlags{noText: true}
	// engineFlags minus the single --kv-rate/--kv-policy/--kv-budget: the rates are this command's list.
	fs.StringVar(&ef.model, "model", "", "model: a file or folder, or a name under $KVC_MODELS or the cache")
	fs.StringVar(&ef.tokenizer, "tokenizer", "", "tokenizer file (default: found beside the model)")
	fs.StringVar(&ef.device, "device", "", "vulkan:N or cpu (default: the best Vulkan device, else cpu)")
	ef.registerThreads(fs)
	fs.BoolVar(&ef.quiet, "quiet", false, "no progress output")
	fs.IntVar(&ef.kvBlock, "kv-block", 16, "KV cache block size in slots")
	fs.StringVar(&ef.kvMem, "kv-mem", "", "KV cache memory, the same for every rate, e.g. 64MiB (default: what the device has left)")
	fs.StringVar(&ef.kvType, "kv-type", "", "KV storage: f16 or f32 (default: f16; f32 on a Vulkan device where the head dim is odd)")
	fs.IntVar(&ef.maxRows, "max-rows", 256, "most tokens in one forward pass")
	fs.IntVar(&ef.protect, "kv-protect", kvpages.DefaultProtect, "most recent positions never evicted (the paper's throughput runs: 32)")
	fs.Float64Var(&ef.recent, "kv-recent", kvpages.DefaultRecent, "share of the per-head budget kept for the most recent positions")
	fs.StringVar(&ef.metric, "kv-metric", "", "what KVs rank by: l2 (the paper), l1, l2-avg, l1-avg or vatp (l1-avg times the value vector's L1 norm) (default: "+kvpages.DefaultMetric.String()+")")
	fs.IntVar(&ef.window, "kv-window", -1, windowHelp)
	fs.BoolVar(&ef.noPool, "kv-no-pool", false, "do not max-pool the observation-window metric")
	fs.IntVar(&ef.maxKV, "kv-max-per-round", 0, "cap on KVs planned per compression round (0: no cap)")
	fs.IntVar(&ef.interval, "kv-interval", 0, "also compress every N steps (0: after prefill and on shortage, as the paper's benchmark)")
	prompts := fs.Int("prompts", 64, "number of prompts")
	inputLen := fs.Int("input-len", 256, "prompt tokens (random ids)")
	outputLen := fs.Int("output-len", 64, "output tokens per prompt (EOS ignored)")
	rateList := fs.String("kv-rate", "1,2,4,8", "compression rates to compare, comma-separated (1: policy full)")
	floor := fs.Int("cache-floor", 128, "least cache tokens per head a rate maps to (the reference benchmark's floor)")
	maxSeqs := fs.Int("max-seqs", 0, "most sequences at once (0: --max-rows)")
	seed := fs.Uint64("seed", 1, "seed of the random prompts")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	rates, err := parseRates(*rateList)
	if err != nil {
		return err
	}
	switch {
	case *prompts < 1:
		return fmt.Errorf("--prompts %d: want >= 1", *prompts)
	case *inputLen < 1 || *outputLen < 1:
		return fmt.Errorf("--input-len %d --output-len %d: want >= 1 each", *inputLen, *outputLen)
	case *floor < 0:
		return fmt.Errorf("--cache-floor %d: want >= 0", *floor)
	}
	if _, err := kvpages.ParseMetric(ef.metric); err != nil {
		return fmt.Errorf("--kv-metric: %w", err)
	}
	// The weights load under the full policy (which ranks by no metric); each rate's engine gets the metric.
	metric := ef.metric
	ef.policy, ef.metric = "full", ""
	l, err := load(&ef, stderr)
	ef.metric = metric
	if err != nil {
		return err
	}
	defer l.Close()
	cfg := l.ck.Config
	if *inputLen+*outputLen > cfg.Context {
		return fmt.Errorf("--input-len %d + --output-len %d is past the model's context of %d", *inputLen, *outputLen, cfg.Context)
	}
	base := l.eng.Opt
	weights := l.eng.W
	l.eng.Close() // each rate gets its own engine (and KV pool of the same size) on these weights
	l.eng = nil
	perSeq := cfg.Layers * cfg.KVHeads * ((*inputLen + *outputLen + base.BlockSize - 1) / base.BlockSize)
	if perSeq > base.KVBlocks {
		return fmt.Errorf("one sequence of %d tokens needs %d KV blocks, --kv-mem gives %d: raise --kv-mem", *inputLen+*outputLen, perSeq, base.KVBlocks)
	}

	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	reqs := make([]engine.Request, *prompts)
	for i := range reqs {
		p := make([]int, *inputLen)
		p[0] = cfg.BOS
		for j := 1; j < len(p); j++ {
			p[j] = rng.IntN(cfg.Vocab)
		}
		reqs[i] = engine.Request{ID: strconv.Itoa(i), Prompt: p, MaxTokens: *outputLen, IgnoreEOS: true}
	}
	res := throughputBench{Model: l.ck.Path, Backend: l.backend.Name(), Prompts: *prompts, InputLen: *inputLen, OutputLen: *outputLen,
		KVBlocks: base.KVBlocks, KVBytes: int64(base.KVBlocks) * engine.KVBlockBytes(cfg.HeadDim, base.BlockSize, base.KVType),
		BlockSize: base.BlockSize, Protect: ef.protect, CacheFloor: *floor, MaxRows: base.MaxRows}
	for _, rate := range rates {
		if !ef.quiet {
			fmt.Fprintf(stderr, "kvc: rate %g: %d prompts...\n", rate, *prompts)
		}
		r, err := benchOneRate(l, weights, base, &ef, rate, *floor, *maxSeqs, reqs)
		if err != nil {
			return fmt.Errorf("rate %g: %w", rate, err)
		}
		res.Rates = append(res.Rates, r)
	}
	for i := range res.Rates {
		res.Rates[i].Ratio = res.Rates[i].TotalTokS / res.Rates[0].TotalTokS
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printThroughput(stdout, res)
	return nil
}

// benchOneRate runs every request at one rate on a fresh engine, after a short warm-up on it.
func benchOneRate(l *loaded, w *engine.Weights, base engine.Options, ef *engineFlags, rate float64, floor, maxSeqs int,
	reqs []engine.Request) (throughputRate, error) {
	out := throughputRate{Rate: rate, Policy: "full", EffectiveRate: 1}
	opt := base
	opt.SetMetric(kvpages.MetricSource{}, 0, false)
	var pl *kvpages.Planner
	inputLen := len(reqs[0].Prompt)
	if rate > 1 {
		out.Policy = "kvcompress"
		out.BudgetTokens = budgetForRate(rate, inputLen, base.BlockSize, floor, ef.protect)
		out.EffectiveRate = float64(inputLen) / float64(out.BudgetTokens)
		m, err := kvpages.ParseMetric(ef.metric)
		if err != nil {
			return out, err
		}
		po := kvpages.Options{Policy: kvpages.PolicyKVCompress, Metric: m, BlockSize: base.BlockSize,
			Budget: kvpages.Budget{MaxCacheTokens: out.BudgetTokens}, Protect: ef.protect, Recent: ef.recent, MaxKVPerRound: ef.maxKV}
		if pl, err = kvpages.NewPlanner(po); err != nil {
			return out, err
		}
		src, err := po.Policy.MetricWith(m)
		if err != nil {
			return out, err
		}
		opt.SetMetric(src, ef.window, !ef.noPool)
	}
	e, err := engine.NewEngine(l.backend, l.ck.Config, w, opt)
	if err != nil {
		return out, err
	}
	defer e.Close()
	run := func(rs []engine.Request) (engine.SchedulerStats, time.Duration, int, int, error) {
		done, failed := 0, 0
		var firstErr error
		sch, err := engine.NewScheduler(e.BatchModel(), engine.SchedulerConfig{Planner: pl, Interval: ef.interval, MaxSeqs: maxSeqs,
			OnResult: func(r engine.Result) {
				if r.Err != nil || len(r.Tokens) != rs[0].MaxTokens {
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("request %s: %v (%d tokens)", r.ID, r.Err, len(r.Tokens))
					}
					return
				}
				done++
			}})
		if err != nil {
			return engine.SchedulerStats{}, 0, 0, 0, err
		}
		for _, r := range rs {
			sch.Submit(r)
		}
		t := time.Now()
		err = sch.Run()
		wall := time.Since(t)
		if err == nil && failed > 0 {
			err = firstErr
		}
		return sch.Stats(), wall, done, failed, err
	}
	warm := make([]engine.Request, min(2, len(reqs)))
	for i := range warm {
		warm[i] = reqs[i]
		warm[i].MaxTokens = 2
	}
	if _, _, _, _, err := run(warm); err != nil {
		return out, fmt.Errorf("warm-up: %w", err)
	}
	st, wall, done, failed, err := run(reqs)
	if err != nil && !(failed > 0 && done+failed == len(reqs)) {
		return out, err
	}
	n := len(reqs)
	out.Completed, out.Errors = done, failed
	out.WallS = wall.Seconds()
	out.TotalTokS = float64((inputLen+reqs[0].MaxTokens)*n) / out.WallS
	out.OutputTokS = float64(reqs[0].MaxTokens*n) / out.WallS
	out.PeakBatch, out.MeanBatch, out.Preemptions = st.PeakDecodeBatch, st.MeanDecodeBatch(), st.Preemptions
	out.CompressS = st.Compress.Time.Seconds()
	out.CompressShare = out.CompressS / out.WallS
	out.Rounds, out.EvictedKVs = st.CompressRounds, st.Compress.EvictedKVs
	out.PrefillS, out.DecodeS, out.MixedS = st.PrefillTime.Seconds(), st.DecodeTime.Seconds(), st.MixedTime.Seconds()
	out.PeakBlocks = st.PeakBlocks
	if failed > 0 {
		return out, errors.Join(fmt.Errorf("%d of %d requests failed", failed, n), err)
	}
	return out, nil
}

func printThroughput(w io.Writer, r throughputBench) {
	fmt.Fprintf(w, "model %s on %s: %d prompts of %d tokens, %d output tokens each (EOS ignored)\n", r.Model, r.Backend, r.Prompts, r.InputLen, r.OutputLen)
	fmt.Fprintf(w, "KV pool %d blocks of %d slots (%s), the same for every rate; protect %d, cache floor %d, max rows %d\n",
		r.KVBlocks, r.BlockSize, fmtBytes(r.KVBytes), r.Protect, r.CacheFloor, r.MaxRows)
	fmt.Fprintln(w, "rate R maps to a budget of C = max(floor, ((input-len/R) - 1) // block * block) tokens per head (the reference benchmark's rule)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate\tbudget C\teff. rate\ttotal tok/s\toutput tok/s\tratio\tpeak batch\tmean batch\tpreempt\tcompress\twall s\t")
	for _, x := range r.Rates {
		budget := "full"
		if x.BudgetTokens > 0 {
			budget = strconv.Itoa(x.BudgetTokens)
		}
		fmt.Fprintf(tw, "%g\t%s\t%.2f\t%.1f\t%.1f\t%.2fx\t%d\t%.1f\t%d\t%.1f%%\t%.2f\t\n", x.Rate, budget, x.EffectiveRate, x.TotalTokS,
			x.OutputTokS, x.Ratio, x.PeakBatch, x.MeanBatch, x.Preemptions, 100*x.CompressShare, x.WallS)
	}
	tw.Flush()
}
