package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
	"kvc/model"
	"kvc/model/tokenizer"
)

// engineFlags are the flags every command that runs a model shares.
type engineFlags struct {
	model     string
	tokenizer string
	device    string
	threads   int // --threads: the CPU backend's workers (0: its default)
	quiet     bool
	kvBlock   int
	kvMem     string
	kvType    string
	maxRows   int
	maxSeqs   int
	ctxSize   int // --ctx-size: context to run at (0: the model's)
	seqs      int // sequences the default KV memory is sized for (0: all the device has)
	// noText: the command feeds token ids only (benchmarks), so a model without a tokenizer is fine.
	noText bool
	// autoInterval is --kv-interval's default for the command: interactive commands keep the budget at
	// every step, batch commands compress after prefill and under memory pressure (as the paper's runs).
	autoInterval int

	policy   string
	budget   int
	rate     float64
	protect  int
	recent   float64
	floor    float64
	sinks    int
	interval int
	window   int
	noPool   bool
	metric   string
	maxKV    int
}

// registerThreads defines --threads (-t), the CPU backend's worker count.
func (f *engineFlags) registerThreads(fs *flag.FlagSet) {
	fs.IntVar(&f.threads, "threads", 0, "CPU backend threads (default: one per physical core this process may use, at most GOMAXPROCS)")
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", "", "model: a file or folder, or a name under $KVC_MODELS or the cache (e.g. stories260K)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file (default: found beside the model)")
	fs.StringVar(&f.device, "device", "", "vulkan:N or cpu (default: the best Vulkan device, else cpu)")
	f.registerThreads(fs)
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bars")
	fs.IntVar(&f.kvBlock, "kv-block", 16, "KV cache block size in slots")
	fs.StringVar(&f.kvMem, "kv-mem", "", "KV cache memory, e.g. 512MiB (default: what the device has left after the weights, minus a margin)")
	fs.StringVar(&f.kvType, "kv-type", "", "KV storage: f16 or f32 (default: f16; f32 on a Vulkan device where the head dim is odd)")
	fs.IntVar(&f.maxRows, "max-rows", 256, "most tokens in one forward pass (prefill chunk size)")
	fs.IntVar(&f.ctxSize, "ctx-size", 0, "context length in tokens (default: the model's; a larger value is capped to it)")
	fs.StringVar(&f.policy, "kv-policy", "", "KV eviction: kvcompress, uniform, window, h2o or full (default: kvcompress with --kv-budget or --kv-rate, else full)")
	fs.IntVar(&f.budget, "kv-budget", 0, "max cache tokens per head C (the sequence keeps C x layers x KV heads KVs)")
	fs.Float64Var(&f.rate, "kv-rate", 0, "target compression rate R >= 1 (full-cache KVs / kept KVs)")
	fs.IntVar(&f.protect, "kv-protect", kvpages.InteractiveProtect, "most recent positions of every head never evicted")
	fs.Float64Var(&f.recent, "kv-recent", kvpages.DefaultRecent, "share of the per-head budget kept for the most recent positions (kvcompress, uniform, h2o; 0: only --kv-protect)")
	fs.Float64Var(&f.floor, "kv-floor", kvpages.DefaultFloor, "kvcompress: share of each head's budget beyond the protected positions that the global ranking may not take (Ada-KV's safeguard; 0: the paper, 1: uniform)")
	fs.IntVar(&f.sinks, "kv-sinks", -1, "first positions never evicted (attention sinks) (default: "+fmt.Sprint(kvpages.VATPSinks)+" with --kv-metric vatp, else 0)")
	fs.IntVar(&f.interval, "kv-interval", -1, "compress every N decode steps when over budget (0: only after prefill and when memory runs short; default: 1 for run, chat and eval, 0 for batch commands)")
	fs.IntVar(&f.window, "kv-window", -1, windowHelp)
	fs.BoolVar(&f.noPool, "kv-no-pool", false, "do not max-pool the observation-window metric")
	fs.StringVar(&f.metric, "kv-metric", "", "what KVs rank by: l2 (squared attention summed, the paper), l1, l2-avg or l1-avg (per query at least "+fmt.Sprint(kvpages.DefaultBuffer)+" positions after the KV), vatp (l1-avg times the L1 norm of the KV's value vector) (default: "+kvpages.DefaultMetric.String()+"; h2o: l1)")
	fs.IntVar(&f.maxKV, "kv-max-per-round", 0, "cap on KVs planned per compression round (0: no cap)")
}

// windowHelp describes --kv-window, whose unset value (-1) is the metric's own collection.
const windowHelp = "prefill observation window w: the last w prompt rows add to the eviction metric (default: every prompt row for l1-avg, l2-avg and vatp, 8 for l2 and l1; a window is faster on long prompts)"

// loaded is a model ready to run.
type loaded struct {
	ck       *model.Checkpoint
	tok      tokenizer.Tokenizer
	backend  engine.Backend
	eng      *engine.Engine
	planner  *kvpages.Planner // nil for the full policy
	budget   kvpages.Budget
	eos      map[int]bool
	loadTime time.Duration
	// modelContext is the checkpoint's own context (ck.Config.Context is --ctx-size's).
	modelContext int
}

func (l *loaded) Close() {
	if l.eng != nil {
		l.eng.Close()
	}
	if l.backend != nil {
		// KVC_PROFILE=1: the per-op GPU time table, at exit.
		if p, ok := l.backend.(engine.Profiler); ok && os.Getenv("KVC_PROFILE") == "1" {
			fmt.Fprint(os.Stderr, p.ProfileReport())
		}
		l.backend.Close()
	}
	if l.ck != nil {
		l.ck.Close()
	}
}

// compressionOptions validates the eviction flags before any work.
func (f *engineFlags) compressionOptions() (kvpages.Options, error) {
	p := kvpages.PolicyFull
	if f.budget != 0 || f.rate != 0 {
		p = kvpages.PolicyKVCompress // a bare budget means the default policy
	}
	if f.policy != "" {
		var err error
		if p, err = kvpages.ParsePolicy(f.policy); err != nil {
			return kvpages.Options{}, err
		}
	}
	m, err := kvpages.ParseMetric(f.metric)
	if err != nil {
		return kvpages.Options{}, err
	}
	if f.kvBlock < 1 || f.kvBlock > 1024 {
		return kvpages.Options{}, fmt.Errorf("--kv-block %d: want 1..1024 slots per block", f.kvBlock)
	}
	if f.maxRows < 1 {
		return kvpages.Options{}, fmt.Errorf("--max-rows %d: want at least 1", f.maxRows)
	}
	if f.window < -1 { // -1 is the unset default
		return kvpages.Options{}, fmt.Errorf("--kv-window %d: want an observation window >= 0", f.window)
	}
	if f.sinks < -1 { // -1 is the unset default
		return kvpages.Options{}, fmt.Errorf("--kv-sinks %d: want a number of first positions >= 0", f.sinks)
	}
	sinks := f.sinks
	if sinks == -1 {
		sinks = kvpages.DefaultSinks(m)
	}
	if f.interval < -1 { // -1 is the unset default
		return kvpages.Options{}, fmt.Errorf("--kv-interval %d: want a number of decode steps >= 0", f.interval)
	}
	if f.budget < 0 {
		return kvpages.Options{}, fmt.Errorf("--kv-budget %d: want a number of cache tokens per head >= 0", f.budget)
	}
	if math.IsNaN(f.rate) || math.IsInf(f.rate, 0) || f.rate != 0 && f.rate < 1 {
		return kvpages.Options{}, fmt.Errorf("--kv-rate %v: want a finite compression rate >= 1", f.rate)
	}
	if f.kvMem != "" {
		if _, err := parseByteSize(f.kvMem); err != nil {
			return kvpages.Options{}, fmt.Errorf("--kv-mem: %w", err)
		}
	}
	o := kvpages.Options{Policy: p, Metric: m, BlockSize: f.kvBlock, Budget: kvpages.Budget{MaxCacheTokens: f.budget, Rate: f.rate},
		Protect: f.protect, Recent: f.recent, Floor: f.floor, Sinks: sinks, MaxKVPerRound: f.maxKV}
	if p == kvpages.PolicyFull && (f.budget != 0 || f.rate != 0) {
		return o, fmt.Errorf("--kv-policy full keeps every KV: drop --kv-budget/--kv-rate, or choose an eviction policy (kvcompress, uniform, window, h2o)")
	}
	return o, o.Validate()
}

func load(f *engineFlags, stderr io.Writer) (*loaded, error) {
	if f.interval == -1 { // unset
		f.interval = f.autoInterval
	}
	copts, err := f.compressionOptions()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	path, err := resolveModel(f.model, true, stderr)
	if err != nil {
		return nil, err
	}
	l := &loaded{}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	if l.ck, err = model.Open(path); err != nil {
		return nil, err
	}
	l.modelContext = l.ck.Config.Context
	if f.ctxSize < 0 {
		return nil, fmt.Errorf("--ctx-size %d: want a token count >= 1 (0: the model's context)", f.ctxSize)
	}
	if f.threads < 0 {
		return nil, fmt.Errorf("--threads %d: want a thread count >= 1 (0: one per physical core)", f.threads)
	}
	if f.ctxSize > l.ck.Config.Context {
		fmt.Fprintf(stderr, "kvc: --ctx-size %d capped to the model's context of %d tokens\n", f.ctxSize, l.ck.Config.Context)
	} else if f.ctxSize > 0 {
		l.ck.Config.Context = f.ctxSize // one place: the engine, the pool size and every command read it from here
	}
	if l.tok, err = findTokenizer(l.ck, f.tokenizer); err != nil && !f.noText {
		return nil, err
	}
	if l.tok != nil && l.tok.Vocab() > l.ck.Config.Vocab {
		return nil, fmt.Errorf("tokenizer has %d tokens but the model's vocabulary is %d", l.tok.Vocab(), l.ck.Config.Vocab)
	}
	if l.backend, err = openBackend(f.device, f.threads, stderr); err != nil {
		return nil, err
	}
	kvType, err := engine.ChooseKVType(l.backend, l.ck.Config.HeadDim, f.kvType)
	if err != nil {
		return nil, fmt.Errorf("--kv-type: %w", err)
	}
	if err := checkFits(l, f, kvType); err != nil {
		return nil, err
	}
	var bar *progressbar.ProgressBar
	progress := func(done, total int64) {
		if bar == nil && !f.quiet && isTerminal(stderr) {
			bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
				progressbar.OptionSetDescription("loading "+filepath.Base(path)), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		}
		if bar != nil {
			_ = bar.Set64(done)
		}
	}
	w, err := engine.LoadWeightsWith(l.backend, l.ck, loadOptions(l), progress)
	if err != nil {
		return nil, err
	}
	if err := l.ck.VerifyStreams(); err != nil {
		return nil, err
	}
	if bar != nil {
		_ = bar.Finish()
	}
	cfg := l.ck.Config
	blockBytes := engine.KVBlockBytes(cfg.HeadDim, f.kvBlock, kvType)
	kvBytes, err := kvMemory(f.kvMem, l.backend, cfg, f.kvBlock, f.maxRows, blockBytes, f.seqs)
	if err != nil {
		return nil, err
	}
	blocks := int(kvBytes / blockBytes)
	minBlocks := cfg.Layers * cfg.KVHeads * ((min(cfg.Context, f.maxRows) + f.kvBlock - 1) / f.kvBlock)
	if blocks < minBlocks {
		return nil, fmt.Errorf("KV memory %s holds %d blocks of %d bytes; at least %d (%s) are needed for one %d-token chunk of one sequence",
			fmtBytes(kvBytes), blocks, blockBytes, minBlocks, fmtBytes(int64(minBlocks)*blockBytes), min(cfg.Context, f.maxRows))
	}
	msrc, err := copts.Policy.MetricWith(copts.Metric)
	if err != nil {
		return nil, err
	}
	opt := engine.Options{BlockSize: f.kvBlock, KVBlocks: blocks, KVType: kvType, MaxRows: f.maxRows,
		MinKVBlocks: minBlocks, MinRows: min(f.maxRows, 16)}
	opt.SetMetric(msrc, f.window, !f.noPool)
	if l.eng, err = engine.NewEngine(l.backend, cfg, w, opt); err != nil {
		return nil, err
	}
	for _, n := range l.eng.Notes {
		fmt.Fprintln(stderr, "kvc:", n)
	}
	if copts.Policy != kvpages.PolicyFull {
		if l.planner, err = kvpages.NewPlanner(copts); err != nil {
			return nil, err
		}
	}
	l.eos = map[int]bool{}
	for _, id := range cfg.EOS {
		l.eos[id] = true
	}
	if l.tok != nil {
		for _, id := range l.tok.EOS() {
			l.eos[id] = true
		}
	}
	if strings.HasPrefix(l.ck.Format, "llama2c") {
		l.eos[cfg.BOS] = true // llama2.c models delimit stories with BOS; run.c stops there
	}
	l.loadTime = time.Since(start)
	ok = true
	return l, nil
}

// kvMemory is the KV pool size: --kv-mem, or what the device has left minus a margin.
// With seqs > 0 (commands that run a few sequences) the default is capped at room for seqs full-context
// sequences; batch commands (seqs 0) take all the memory there is, as vLLM does.
func kvMemory(flagVal string, b engine.Backend, cfg model.Config, blockSize, maxRows int, blockBytes int64, seqs int) (int64, error) {
	if flagVal != "" {
		n, err := parseByteSize(flagVal)
		if err != nil {
			return 0, fmt.Errorf("--kv-mem: %w", err)
		}
		return n, nil
	}
	perSeq := int64(cfg.Layers*cfg.KVHeads*((cfg.Context+blockSize-1)/blockSize)) * blockBytes
	limit := int64(1) << 62
	if seqs > 0 {
		limit = int64(seqs) * perSeq
	}
	if m, ok := b.(engine.DeviceMemory); ok {
		if avail := m.MemoryAvailable(); avail > 0 {
			// Leave the scratch buffers and a margin (5%, at least 32 MiB) for the driver and fragmentation.
			left := avail - engine.ScratchBytes(cfg, maxRows) - max(avail/20, 32<<20)
			return min(max(left, 0), limit), nil
		}
	}
	// A host backend: room for 16 full-context sequences (or seqs), at most 2 GiB.
	return min(16*perSeq, limit, 2<<30), nil
}

// loadOptions keeps an untied token embedding in host memory on a device backend, as llama.cpp does: each
// pass needs only its rows, and the vocab x dim table (2.1 GB for Llama-3-70B) stays off the device.
func loadOptions(l *loaded) engine.LoadOptions {
	if _, host := l.backend.(*cpu.Backend); host || l.ck.Config.Tied {
		return engine.LoadOptions{}
	}
	return engine.LoadOptions{HostEmbedding: func(t *model.Tensor) (engine.RowDecoder, error) {
		w, err := (&cpu.Backend{}).UploadWeight(t)
		if err != nil {
			return nil, err
		}
		return w.(*cpu.Weight), nil
	}}
}

// deviceWeightBytes is what the weights take on the device under loadOptions.
func deviceWeightBytes(l *loaded) int64 {
	n := l.ck.WeightBytes()
	if loadOptions(l).HostEmbedding != nil {
		if t, err := l.ck.Tensor("token_embd"); err == nil {
			n -= model.TensorStoredBytes(t)
		}
	}
	return n
}

// checkFits refuses, before uploading anything, a model whose weights plus scratch plus a minimal cache
// (one chunk of one sequence) do not fit the device memory, or the host's for the CPU backend.
func checkFits(l *loaded, f *engineFlags, kvType engine.KVType) error {
	var avail int64
	if m, ok := l.backend.(engine.DeviceMemory); ok {
		avail = m.MemoryAvailable()
	} else if a, ok := hostMemoryAvailable(); ok {
		avail = a // a host backend copies the weights into its own memory
	} else {
		return nil
	}
	cfg := l.ck.Config
	weights := deviceWeightBytes(l)
	minKV := int64(cfg.Layers*cfg.KVHeads*((min(cfg.Context, f.maxRows)+f.kvBlock-1)/f.kvBlock)) * engine.KVBlockBytes(cfg.HeadDim, f.kvBlock, kvType)
	need := weights + engine.ScratchBytes(cfg, f.maxRows) + minKV
	if need > avail {
		return fmt.Errorf("%s does not fit %s: it needs %s (weights %s, scratch %s, a minimal KV cache %s) and the device has %s free",
			l.ck.Path, l.backend.Name(), fmtBytes(need), fmtBytes(weights), fmtBytes(engine.ScratchBytes(cfg, f.maxRows)), fmtBytes(minKV), fmtBytes(avail))
	}
	return nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
