package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
	"kvc/model"
)

// benchModes are the kvc bench sub-commands.
var benchModes = map[string]func([]string) error{
	"decode": cmdBenchDecode,
}

func cmdBench(args []string) error {
	return subcommand("bench", args, benchModes, map[string]string{"decode": "prompt and decode speed, weight GB/s",
		"throughput": "throughput against KV compression rate (continuous batching)"})
}

// decodeBench is what kvc bench decode measures.
type decodeBench struct {
	Model        string  `json:"model"`
	Backend      string  `json:"backend"`
	Threads      int     `json:"cpu_threads,omitempty"` // the CPU backend's workers
	WeightsBytes int64   `json:"weights_bytes"`
	ReadPerStep  int64   `json:"weight_bytes_read_per_step"`
	Batch        int     `json:"batch"`
	PromptTokens int     `json:"prompt_tokens"`
	PromptTokS   float64 `json:"prompt_tok_s"`
	DecodeSteps  int     `json:"decode_steps"`
	StepMedianMS float64 `json:"decode_step_median_ms"`
	DecodeTokS   float64 `json:"decode_tok_s"` // batch / median step time
	GBs          float64 `json:"weight_gb_s"`  // weight bytes read per step / median step time
	// On the CPU backend: the host's probed read bandwidth (the best pass, and the median pass) and GBs as a
	// fraction of each. The best pass is STREAM's convention; the median pass matches the median step.
	ReadGBs            float64 `json:"probed_read_gb_s,omitempty"`
	ReadFraction       float64 `json:"weight_gb_s_of_probed,omitempty"`
	ReadMedianGBs      float64 `json:"probed_read_gb_s_median,omitempty"`
	ReadMedianFraction float64 `json:"weight_gb_s_of_probed_median,omitempty"`
	ReadPasses         int     `json:"probe_passes,omitempty"`
	*stepCounters
}

// stepCounters are the backend's traffic per decode step (mean over the decode phase), where it counts.
type stepCounters struct {
	Submits    float64 `json:"submits_per_step"`
	Upload     float64 `json:"upload_bytes_per_step"`
	Readback   float64 `json:"readback_bytes_per_step"`
	Dispatches float64 `json:"dispatches_per_step"`
}

func perStep(b engine.Backend, before engine.Counters, steps int) *stepCounters {
	c, ok := b.(engine.Counting)
	if !ok {
		return nil
	}
	now, n := c.Counters(), float64(steps)
	return &stepCounters{Submits: float64(now.Submits-before.Submits) / n, Upload: float64(now.UploadBytes-before.UploadBytes) / n,
		Readback: float64(now.ReadbackBytes-before.ReadbackBytes) / n, Dispatches: float64(now.Dispatches-before.Dispatches) / n}
}

func counters(b engine.Backend) engine.Counters {
	if c, ok := b.(engine.Counting); ok {
		return c.Counters()
	}
	return engine.Counters{}
}

func cmdBenchDecode(args []string) error {
	fs := flag.NewFlagSet("bench decode", flag.ContinueOnError)
	ef := engineFlags{noText: true}
	ef.register(fs)
	batch := fs.Int("batch", 1, "sequences decoded together")
	promptLen := fs.Int("prompt-len", 128, "prompt tokens (random ids) per sequence")
	steps := fs.Int("n", 32, "decode steps")
	asJSON := fs.Bool("json", false, "print JSON")
	stats := fs.Bool("stats", false, "also print the device traffic per decode step (submissions, dispatches, bytes up and back)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *steps < 1 || *promptLen < 1 {
		return fmt.Errorf("--batch, -n and --prompt-len must be positive")
	}
	// A budget given is a budget kept: this benchmark never compresses, so it refuses one.
	if opts, err := ef.compressionOptions(); err != nil {
		return err
	} else if opts.Policy != kvpages.PolicyFull {
		return usageError{fmt.Errorf("kvc bench decode measures the full cache and does not compress: drop --kv-policy/--kv-budget/--kv-rate\nhint: kvc bench throughput --kv-rate 1,4,8 measures speed under compression")}
	}
	ef.maxRows = max(ef.maxRows, *batch)
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	e := l.eng
	cfg := l.ck.Config
	if *promptLen+*steps > cfg.Context {
		return fmt.Errorf("--prompt-len %d + -n %d exceed the context of %d", *promptLen, *steps, cfg.Context)
	}
	// The full cache of every sequence must fit the pool: say so now rather than after a long prefill.
	bs := e.Opt.BlockSize
	perSeq := (*promptLen + *steps + bs - 1) / bs * cfg.Layers * cfg.KVHeads
	if need := *batch * perSeq; need > e.Pool.Free() {
		return fmt.Errorf("the KV pool has %d blocks of %d tokens free, and %d sequence(s) of %d + %d tokens need %d (%d layers x %d KV heads each): raise --kv-mem or lower --batch, --prompt-len or -n",
			e.Pool.Free(), bs, *batch, *promptLen, *steps, need, cfg.Layers, cfg.KVHeads)
	}
	r := rand.New(rand.NewPCG(1, 2))
	// Warm up: the first passes create pipelines (and fill caches); they are not what is measured.
	warm := e.NewSequence(engine.SamplerConfig{})
	if _, err := e.Prefill(warm, []int{cfg.BOS, 3, 4, 5}); err != nil {
		return err
	}
	if _, err := e.Decode([]*engine.Sequence{warm}, []int{6}); err != nil {
		return err
	}
	e.Release(warm)
	seqs := make([]*engine.Sequence, *batch)
	next := make([]int, *batch)
	var prefill time.Duration
	for i := range seqs {
		p := make([]int, *promptLen)
		p[0] = cfg.BOS
		for j := 1; j < len(p); j++ {
			p[j] = 3 + r.IntN(cfg.Vocab-3)
		}
		seqs[i] = e.NewSequence(engine.SamplerConfig{})
		t0 := time.Now()
		logits, err := e.Prefill(seqs[i], p)
		if err != nil {
			return err
		}
		prefill += time.Since(t0)
		next[i] = engine.Argmax(logits)
	}
	// The CPU backend's yardstick: read-bandwidth passes between the steps (not inside their times), since
	// on a shared host the bandwidth drifts from second to second.
	var prober *cpu.ReadProber
	host, onHost := e.B.(*cpu.Backend)
	if onHost && host.Fast() {
		prober = cpu.NewReadProber(host.Threads)
		defer prober.Close()
	}
	const probePasses = 10
	times := make([]time.Duration, 0, *steps)
	c0 := counters(e.B)
	for s := 0; s < *steps; s++ {
		if prober != nil && s%max(*steps/probePasses, 1) == 0 {
			prober.Pass()
		}
		t0 := time.Now()
		// Greedy sequences: the argmax is taken on the device and only the ids come back.
		next, err = e.Step(seqs, next)
		if err != nil {
			return err
		}
		times = append(times, time.Since(t0))
	}
	traffic := perStep(e.B, c0, *steps)
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	med := times[len(times)/2].Seconds()
	res := decodeBench{Model: l.ck.Path, Backend: e.B.Name(), WeightsBytes: e.W.Bytes, ReadPerStep: weightBytesPerStep(l.ck),
		Batch: *batch, PromptTokens: *promptLen * *batch, PromptTokS: float64(*promptLen**batch) / prefill.Seconds(),
		DecodeSteps: *steps, StepMedianMS: med * 1000, DecodeTokS: float64(*batch) / med, stepCounters: traffic}
	res.GBs = float64(res.ReadPerStep) / med / 1e9
	if onHost {
		res.Threads = host.Threads
	}
	if prober != nil {
		for prober.Result().Passes < probePasses {
			prober.Pass()
		}
		p := prober.Result()
		res.ReadGBs, res.ReadMedianGBs, res.ReadPasses = p.GBps, p.MedianGBps, p.Passes
		res.ReadFraction, res.ReadMedianFraction = res.GBs/p.GBps, res.GBs/p.MedianGBps
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	on := res.Backend
	if res.Threads > 0 {
		on = fmt.Sprintf("%s (threads: %d)", on, res.Threads)
	}
	fmt.Printf("%s on %s: weights %s (%s read per decode step)\n", res.Model, on, fmtBytes(res.WeightsBytes), fmtBytes(res.ReadPerStep))
	fmt.Printf("prompt  %d tokens: %.1f tok/s\n", res.PromptTokens, res.PromptTokS)
	fmt.Printf("decode  batch %d, %d steps: median step %.2f ms, %.1f tok/s, %.2f GB/s of weights\n",
		res.Batch, res.DecodeSteps, res.StepMedianMS, res.DecodeTokS, res.GBs)
	if res.ReadGBs > 0 {
		fmt.Printf("        %.2f of the host's probed read bandwidth (%.2f GB/s, the best of %d passes between the steps);\n"+
			"        %.2f of the median pass (%.2f GB/s)\n", res.ReadFraction, res.ReadGBs, res.ReadPasses, res.ReadMedianFraction, res.ReadMedianGBs)
	}
	switch {
	case !*stats || traffic == nil:
	case res.Backend == "cpu": // the host backend has no queue: only the bytes copied in and out
		fmt.Printf("per decode step: %s written into the backend's buffers, %s read back (no queue submissions on the host)\n",
			fmtBytes(int64(traffic.Upload)), fmtBytes(int64(traffic.Readback)))
	default:
		fmt.Printf("per decode step: %.2f submissions, %.1f dispatches, %s uploaded, %s read back\n",
			traffic.Submits, traffic.Dispatches, fmtBytes(int64(traffic.Upload)), fmtBytes(int64(traffic.Readback)))
	}
	return nil
}

// weightBytesPerStep is what one decode step reads of the weights: every matrix and norm once, but of the
// token embedding only the looked-up rows (counted as none); a tied output projection reads it whole.
func weightBytesPerStep(ck *model.Checkpoint) int64 {
	var n int64
	for _, t := range ck.Tensors {
		if t.Name == "token_embd" && !ck.Config.Tied {
			continue
		}
		n += model.TensorStoredBytes(t)
	}
	return n
}
