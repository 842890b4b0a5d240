// Command kvc-view shows a sequence's KV cache while it is generated: one row per (layer, KV head), one
// column per token position, kept KVs coloured by their eviction metric. It draws through GLFW and a Vulkan
// swapchain (engine/vk's Presenter); with --png it runs headless and writes the picture instead.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"kvc/kvmap"
	"kvc/kvpages"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		if o.png != "" {
			err = writePNG(o)
		} else {
			err = runWindow(o)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvc-view:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kvc-view", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "kvc-view: watch the KV cache while a model generates\n\n  kvc-view --model M --prompt TEXT [--kv-policy P --kv-budget C | --kv-rate R] [sampling flags]\n  kvc-view ... --png FILE [--steps N]   (headless: write the picture after N tokens)\n\nkeys: space pause/resume, right arrow one step, +/- budget, p next policy, s save a PNG, q quit\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.model, "model", "", "model: a file or folder, or a name under $KVC_MODELS (e.g. stories260K)")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer file (default: found beside the model)")
	fs.StringVar(&o.device, "device", "", "vulkan:N or cpu (default: the best Vulkan device, else cpu)")
	fs.StringVar(&o.prompt, "prompt", "", "prompt text")
	fs.IntVar(&o.n, "n", 256, "new tokens to generate")
	fs.IntVar(&o.steps, "steps", 0, "pause after N new tokens (with --png: write the picture then and exit; 0: at the end)")
	fs.StringVar(&o.png, "png", "", "headless: write the cache picture to this PNG file and exit")
	fs.StringVar(&o.saveDir, "save-dir", ".", "folder for the pictures the s key saves")
	fs.IntVar(&o.scale, "scale", 0, "pixels per picture pixel (0: the monitor's content scale, 2 on HiDPI)")
	fs.IntVar(&o.kvBlock, "kv-block", 16, "KV cache block size in slots")
	fs.IntVar(&o.maxRows, "max-rows", 256, "most tokens in one forward pass (prefill chunk size)")
	fs.StringVar(&o.kvType, "kv-type", "", "KV storage: f16 or f32 (default: f16; f32 on a Vulkan device where the head dim is odd)")
	fs.StringVar(&o.policyName, "kv-policy", "kvcompress", "KV eviction: kvcompress, uniform, window, h2o or full")
	fs.IntVar(&o.eviction.Budget.MaxCacheTokens, "kv-budget", 0, "max cache tokens per head C")
	fs.Float64Var(&o.eviction.Budget.Rate, "kv-rate", 0, "target compression rate R >= 1 (default: 4 when no budget is given)")
	fs.IntVar(&o.eviction.Protect, "kv-protect", kvpages.InteractiveProtect, "most recent positions of every head never evicted")
	fs.Float64Var(&o.eviction.Recent, "kv-recent", kvpages.DefaultRecent, "share of the per-head budget kept for the most recent positions")
	fs.IntVar(&o.eviction.Sinks, "kv-sinks", -1, "first positions never evicted (attention sinks) (default: "+fmt.Sprint(kvpages.VATPSinks)+" with --kv-metric vatp, else 0)")
	fs.IntVar(&o.interval, "kv-interval", 1, "compress every N decode steps when over budget (0: only after the prompt and when memory runs short)")
	fs.IntVar(&o.window, "kv-window", -1, "prefill observation window w: the last w prompt rows add to the eviction metric (default: every prompt row for l1-avg, l2-avg and vatp, 8 for l2 and l1)")
	fs.StringVar(&o.metricName, "kv-metric", "", "what KVs rank by: l2 (the paper), l1, l2-avg, l1-avg or vatp (l1-avg times the value vector's L1 norm) (default: "+kvpages.DefaultMetric.String()+"; h2o: l1)")
	o.sampling.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (the prompt goes after --prompt)", fs.Arg(0))
	}
	p, err := kvpages.ParsePolicy(o.policyName)
	if err != nil {
		return nil, fmt.Errorf("--kv-policy: %w", err)
	}
	o.eviction.Policy, o.eviction.BlockSize = p, o.kvBlock
	if o.eviction.Metric, err = kvpages.ParseMetric(o.metricName); err != nil {
		return nil, fmt.Errorf("--kv-metric: %w", err)
	}
	if o.eviction.Sinks == -1 { // unset
		o.eviction.Sinks = kvpages.DefaultSinks(o.eviction.Metric)
	}
	switch {
	case o.n < 1:
		return nil, fmt.Errorf("-n %d: want at least 1 token", o.n)
	case o.steps < 0:
		return nil, fmt.Errorf("--steps %d: want a count >= 0", o.steps)
	case o.kvBlock < 1 || o.kvBlock > 1024:
		return nil, fmt.Errorf("--kv-block %d: want 1..1024 slots per block", o.kvBlock)
	case o.maxRows < 1:
		return nil, fmt.Errorf("--max-rows %d: want at least 1", o.maxRows)
	case o.interval < 0:
		return nil, fmt.Errorf("--kv-interval %d: want >= 0", o.interval)
	case o.window < -1: // -1 is the unset default
		return nil, fmt.Errorf("--kv-window %d: want >= 0", o.window)
	case o.scale < 0 || o.scale > 8:
		return nil, fmt.Errorf("--scale %d: want 0 (automatic) to 8", o.scale)
	case math.IsNaN(o.eviction.Budget.Rate):
		return nil, errors.New("--kv-rate NaN: want a number >= 1")
	}
	if p != kvpages.PolicyFull && o.eviction.Budget == (kvpages.Budget{}) {
		o.eviction.Budget.Rate = 4
	}
	if p == kvpages.PolicyFull {
		o.eviction.Budget = kvpages.Budget{}
	}
	if err := o.eviction.Validate(); err != nil {
		return nil, err
	}
	if o.steps == 0 || o.steps > o.n {
		o.steps = o.n
	}
	if o.sampling.Seed == 0 {
		o.sampling.Seed = uint64(time.Now().UnixNano())
	}
	return o, o.sampling.Validate()
}

// writePNG generates --steps tokens with no window and writes the picture.
func writePNG(o *options) error {
	s, err := openSession(o)
	if err != nil {
		return err
	}
	defer s.Close()
	for s.finish == "" && s.tokens < o.steps {
		if err := s.step(); err != nil {
			return err
		}
	}
	f, err := s.frame("")
	if err != nil {
		return err
	}
	if err := kvmap.WritePNG(o.png, f); err != nil {
		return fmt.Errorf("--png: %w", err)
	}
	fmt.Fprintf(os.Stderr, "kvc-view: wrote %s (%d new tokens, %d positions, %.2fx)\n", o.png, s.tokens, f.View.NextPos, f.View.Rate())
	return nil
}
