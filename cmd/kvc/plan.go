package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"kvc/engine"
	"kvc/model"
)

// planReport answers, from checkpoint headers alone, how a model and its KV cache fit a memory size.
//
// Accounting: weights are every tensor's stored bytes plus their f32 scales. A KV block holds b slots of
// one (layer, KV head): K and V (head_dim values each, f16 or f32), an f32 metric and an i32 position per
// slot (engine.KVBlockBytes). The pool gets mem - weights - margin, where the margin is the larger of 5% of
// mem (driver, staging, fragmentation) and an activation estimate for one prefill chunk of 256 rows
// (f32 x, q, k, v, attention output, gate, up and logits per row). An uncompressed sequence of ctx tokens
// takes layers * kv_heads * ceil(ctx/b) blocks; at compression rate R each head keeps about ctx/R tokens,
// so ceil(ctx/(R*b)) blocks per head.
type planReport struct {
	Model                  string           `json:"model"`
	Format                 string           `json:"format"`
	WeightsBytes           int64            `json:"weights_bytes"`
	WeightsByDType         map[string]int64 `json:"weights_by_dtype"` // element bytes; "scales" holds the f32 scales
	KVType                 string           `json:"kv_type"`
	KVBytesPerToken        int64            `json:"kv_bytes_per_token"` // K and V only: 2*layers*kv_heads*head_dim*elem
	KVBlock                int              `json:"kv_block"`
	BlockBytes             int64            `json:"block_bytes"` // one (layer, head) block incl. metric and position
	MemBytes               int64            `json:"mem_bytes"`
	MarginBytes            int64            `json:"margin_bytes"`
	ActivationBytes        int64            `json:"activation_bytes"`
	KVPoolBytes            int64            `json:"kv_pool_bytes"`
	KVBlocks               int64            `json:"kv_blocks"`
	Ctx                    int              `json:"ctx"`
	KVRate                 float64          `json:"kv_rate"`
	BlocksPerSequence      int64            `json:"blocks_per_sequence"`
	BlocksPerSeqCompressed int64            `json:"blocks_per_sequence_compressed"`
	MaxSequences           int64            `json:"max_sequences"`
	MaxSequencesCompressed int64            `json:"max_sequences_compressed"`
	Fits                   bool             `json:"fits"` // weights, margin and one uncompressed ctx-token sequence fit
	FitsCompressed         bool             `json:"fits_compressed"`
	Notes                  []string         `json:"notes,omitempty"`
}

const planChunkRows = 256

func cmdPlan(args []string) error { return plan(args, os.Stdout) }

func plan(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	modelPath := fs.String("model", "", "model: a file or folder, or a name under $KVC_MODELS or the cache (or the first argument)")
	mem := fs.String("mem", "", "memory for weights and KV cache, e.g. 24GiB, 80GB, 512MiB (default 24GiB)")
	ctx := fs.Int("ctx", 0, "tokens per sequence (default: the model's context length)")
	rate := fs.Float64("kv-rate", 8, "KV-Compress compression rate for the compressed estimate")
	block := fs.Int("kv-block", 16, "slots per KV block")
	kvType := fs.String("kv-type", "f16", "KV element type: f16 or f32")
	dev := fs.String("device", "", "take --mem from this device's memory (vulkan:N); without --mem or --device: 24GiB")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *modelPath == "" && fs.NArg() == 1 {
		*modelPath = fs.Arg(0)
	} else if *modelPath == "" || fs.NArg() != 0 {
		return usageError{fmt.Errorf("usage: kvc plan [--model] MODEL [--mem SIZE] [--ctx N] [--kv-rate R] [--kv-block b] [--kv-type f16|f32] [--json]")}
	}
	var notes []string
	if *mem == "" && *dev != "" {
		b, err := openBackend(*dev, 0, io.Discard)
		if err != nil {
			return err
		}
		m, ok := b.(engine.DeviceMemory)
		if !ok {
			b.Close()
			return fmt.Errorf("--device %s does not report its memory: give --mem", *dev)
		}
		*mem = strconv.FormatInt(m.MemoryAvailable(), 10)
		notes = append(notes, fmt.Sprintf("--mem from %s: %s free", b.Name(), fmtBytes(m.MemoryAvailable())))
		b.Close()
	}
	if *mem == "" {
		*mem = "24GiB"
		notes = append(notes, "--mem not given: 24GiB assumed")
	}
	memBytes, err := parseByteSize(*mem)
	if err != nil {
		return fmt.Errorf("--mem: %w", err)
	}
	var kt engine.KVType
	switch *kvType {
	case "f16":
		kt = engine.KVF16
	case "f32":
		kt = engine.KVF32
	default:
		return fmt.Errorf("--kv-type %q: want f16 or f32", *kvType)
	}
	if *block <= 0 || *block > 1<<16 {
		return fmt.Errorf("--kv-block %d: want 1..65536", *block)
	}
	if !(*rate >= 1) {
		return fmt.Errorf("--kv-rate %v: want >= 1", *rate)
	}
	path, err := resolveModel(*modelPath, false, io.Discard)
	if err != nil {
		return err
	}
	ck, err := model.Open(path)
	if err != nil {
		return err
	}
	defer ck.Close()
	if *ctx <= 0 {
		*ctx = ck.Config.Context
	}
	r := planCheckpoint(ck, memBytes, *ctx, *rate, *block, *kvType, kt)
	r.Notes = append(notes, r.Notes...)
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printPlan(out, r)
	return nil
}

func planCheckpoint(ck *model.Checkpoint, mem int64, ctx int, rate float64, block int, kvName string, kt engine.KVType) planReport {
	cfg := ck.Config
	r := planReport{Model: ck.Path, Format: ck.Format, WeightsByDType: map[string]int64{}, KVType: kvName, KVBlock: block,
		MemBytes: mem, Ctx: ctx, KVRate: rate}
	for _, t := range ck.Tensors {
		r.WeightsByDType[t.DType.String()] += t.DataBytes()
		if s := model.TensorStoredBytes(t) - t.DataBytes(); s > 0 {
			r.WeightsByDType["scales"] += s
		}
	}
	r.WeightsBytes = ck.WeightBytes()
	elem := int64(4)
	if kt == engine.KVF16 {
		elem = 2
	}
	r.KVBytesPerToken = 2 * int64(cfg.Layers) * int64(cfg.KVHeads) * int64(cfg.HeadDim) * elem
	r.BlockBytes = engine.KVBlockBytes(cfg.HeadDim, block, kt)
	q, kv := int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim)
	r.ActivationBytes = planChunkRows * 4 * (3*int64(cfg.Dim) + q + 2*kv + 2*int64(cfg.FFN) + int64(cfg.Vocab))
	r.MarginBytes = max(mem/20, r.ActivationBytes)
	r.KVPoolBytes = max(mem-r.WeightsBytes-r.MarginBytes, 0)
	r.KVBlocks = r.KVPoolBytes / r.BlockBytes
	heads := int64(cfg.Layers) * int64(cfg.KVHeads)
	r.BlocksPerSequence = heads * int64((ctx+block-1)/block)
	kept := int64(float64(ctx)/rate + 0.999999)
	r.BlocksPerSeqCompressed = heads * ((kept + int64(block) - 1) / int64(block))
	r.MaxSequences = r.KVBlocks / r.BlocksPerSequence
	r.MaxSequencesCompressed = r.KVBlocks / max(r.BlocksPerSeqCompressed, 1)
	r.Fits = r.MaxSequences >= 1
	r.FitsCompressed = r.MaxSequencesCompressed >= 1
	if ctx > cfg.Context {
		r.Notes = append(r.Notes, fmt.Sprintf("--ctx %d exceeds the model's context %d", ctx, cfg.Context))
	}
	if r.WeightsBytes+r.MarginBytes > mem {
		r.Notes = append(r.Notes, fmt.Sprintf("the weights (%s) and margin (%s) alone exceed %s", fmtBytes(r.WeightsBytes), fmtBytes(r.MarginBytes), fmtBytes(mem)))
	}
	return r
}

func printPlan(w io.Writer, r planReport) {
	fmt.Fprintf(w, "%s (%s)\n", r.Model, r.Format)
	fmt.Fprintf(w, "  weights          %s (%d bytes)\n", fmtBytes(r.WeightsBytes), r.WeightsBytes)
	names := make([]string, 0, len(r.WeightsByDType))
	for n := range r.WeightsByDType {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "    %-8s       %s\n", n, fmtBytes(r.WeightsByDType[n]))
	}
	fmt.Fprintf(w, "  KV per token     %d bytes (%s K+V)\n", r.KVBytesPerToken, r.KVType)
	fmt.Fprintf(w, "  memory           %s - weights - margin %s = KV pool %s (%d blocks of %d bytes, %d slots)\n",
		fmtBytes(r.MemBytes), fmtBytes(r.MarginBytes), fmtBytes(r.KVPoolBytes), r.KVBlocks, r.BlockBytes, r.KVBlock)
	fmt.Fprintf(w, "  sequences of %d tokens: %d uncompressed (%d blocks each), %d at %gx compression (%d blocks each)\n",
		r.Ctx, r.MaxSequences, r.BlocksPerSequence, r.MaxSequencesCompressed, r.KVRate, r.BlocksPerSeqCompressed)
	fmt.Fprintf(w, "  fits             %v (compressed: %v)\n", r.Fits, r.FitsCompressed)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note             %s\n", n)
	}
}
