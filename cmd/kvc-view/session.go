package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"kvc/engine"
	"kvc/engine/device"
	"kvc/kvmap"
	"kvc/kvpages"
	"kvc/model"
	"kvc/model/tokenizer"
)

// options are kvc-view's flags: run's model, policy, budget and sampling flags plus the viewer's own.
type options struct {
	model, tokenizer, device, prompt string
	n, steps                         int
	png, saveDir                     string
	scale                            int
	kvBlock, maxRows                 int
	kvType                           string
	eviction                         kvpages.Options
	policyName                       string
	interval, window                 int
	metricName                       string
	sampling                         engine.SamplerConfig
}

// session is one sequence generated step by step under eviction settings that may change between steps.
// It mirrors `kvc run`'s loop (compress after the prompt, then every --kv-interval tokens and whenever the
// pool runs short), so `kvc-view --png F --steps N`, the window paused at N tokens, and
// `kvc run -n N --kv-map F` draw the same cache.
type session struct {
	ck      *model.Checkpoint
	tok     tokenizer.Tokenizer
	backend engine.Backend
	eng     *engine.Engine
	eos     map[int]bool
	name    string

	opts     kvpages.Options
	planner  *kvpages.Planner // nil under the full policy
	interval int
	n        int
	seq      *engine.Sequence
	logits   []float32
	led      kvpages.Ledger
	tokens   int    // new tokens sampled
	pending  int    // the token sampled last, not yet in the cache (-1: none)
	finish   string // "" while generating; "length", "stop" or "context"
}

// resolveModel finds --model: a path, or a name under one of $KVC_MODELS's folders; a folder that is not a
// Hugging Face folder names its checkpoint file after itself (stories260K/stories260K.bin).
func resolveModel(name string) (string, error) {
	if name == "" {
		return "", errors.New("no model given: use --model PATH or a name under $KVC_MODELS (e.g. --model stories260K)")
	}
	p := name
	if _, err := os.Stat(p); err != nil {
		found := false
		for _, d := range filepath.SplitList(os.Getenv("KVC_MODELS")) {
			if _, err := os.Stat(filepath.Join(d, name)); d != "" && err == nil {
				p, found = filepath.Join(d, name), true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("model %q not found as a path nor under $KVC_MODELS (%q); `kvc pull %s` downloads it", name, os.Getenv("KVC_MODELS"), name)
		}
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "config.json")); err != nil {
			for _, ext := range []string{".bin", ".gguf", ".bin.zst", ".gguf.zst"} {
				if f := filepath.Join(p, filepath.Base(p)+ext); fileExists(f) {
					return f, nil
				}
			}
		}
	}
	return p, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// openTokenizer loads --tokenizer, else the tokenizer inside a GGUF or beside the checkpoint.
func openTokenizer(ck *model.Checkpoint, given string) (tokenizer.Tokenizer, error) {
	vocab := ck.Config.Vocab
	if given == "" && ck.Format == "gguf" {
		return tokenizer.FromGGUF(ck.Metadata())
	}
	for _, c := range []string{given, "tokenizer.json", "tokenizer.bin", fmt.Sprintf("tok%d.bin", vocab)} {
		p := c
		if c != given {
			p = filepath.Join(ck.Dir(), c)
		} else if c == "" {
			continue
		}
		switch {
		case strings.HasSuffix(p, ".json") && fileExists(p):
			return tokenizer.LoadHF(filepath.Dir(p))
		case fileExists(p):
			return tokenizer.LoadLlama2C(p, vocab)
		case c == given:
			return nil, fmt.Errorf("--tokenizer %s: no such file", given)
		}
	}
	return nil, fmt.Errorf("no tokenizer found beside %s (tokenizer.json, tokenizer.bin, tok%d.bin); give one with --tokenizer", ck.Path, vocab)
}

func openSession(o *options) (*session, error) {
	path, err := resolveModel(o.model)
	if err != nil {
		return nil, err
	}
	s := &session{opts: o.eviction, interval: o.interval, n: o.n, pending: -1}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.ck, err = model.Open(path); err != nil {
		return nil, err
	}
	s.name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(s.ck.Path), ".zst"), filepath.Ext(strings.TrimSuffix(s.ck.Path, ".zst")))
	if s.tok, err = openTokenizer(s.ck, o.tokenizer); err != nil {
		return nil, err
	}
	if s.backend, err = device.Open(o.device, device.Options{}, os.Stderr); err != nil {
		return nil, err
	}
	w, err := engine.LoadWeights(s.backend, s.ck, nil)
	if err != nil {
		return nil, err
	}
	cfg := s.ck.Config
	kvType, err := engine.ChooseKVType(s.backend, cfg.HeadDim, o.kvType)
	if err != nil {
		return nil, fmt.Errorf("--kv-type: %w", err)
	}
	// Room for one sequence at the model's full context: the viewer draws one sequence (as kvc run sizes it).
	blocks := cfg.Layers * cfg.KVHeads * ((cfg.Context + o.kvBlock - 1) / o.kvBlock)
	msrc, err := o.eviction.Policy.MetricWith(o.eviction.Metric)
	if err != nil {
		return nil, err
	}
	eo := engine.Options{BlockSize: o.kvBlock, KVBlocks: blocks, KVType: kvType, MaxRows: o.maxRows}
	eo.SetMetric(msrc, o.window, true)
	if s.eng, err = engine.NewEngine(s.backend, cfg, w, eo); err != nil {
		return nil, err
	}
	if err := s.setEviction(o.eviction); err != nil {
		return nil, err
	}
	s.eos = map[int]bool{}
	for _, id := range append(append([]int(nil), cfg.EOS...), s.tok.EOS()...) {
		s.eos[id] = true
	}
	if strings.HasPrefix(s.ck.Format, "llama2c") {
		s.eos[cfg.BOS] = true // llama2.c models delimit stories with BOS
	}
	ids := s.tok.Encode(o.prompt, true)
	if len(ids) >= cfg.Context {
		return nil, fmt.Errorf("the prompt is %d tokens, the model's context is %d", len(ids), cfg.Context)
	}
	s.seq = s.eng.NewSequence(o.sampling)
	if s.logits, err = s.eng.Prefill(s.seq, ids); err != nil {
		return nil, err
	}
	if err := s.compress(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *session) Close() {
	if s.eng != nil {
		s.eng.Close()
	}
	if s.backend != nil {
		s.backend.Close()
	}
	if s.ck != nil {
		s.ck.Close()
	}
}

// setEviction switches policy or budget from the next compression on (the metric the engine collects
// stays the one of the policy it was started with).
func (s *session) setEviction(o kvpages.Options) error {
	if o.Policy == kvpages.PolicyFull {
		s.opts, s.planner = o, nil
		return nil
	}
	pl, err := kvpages.NewPlanner(o)
	if err != nil {
		return err
	}
	s.opts, s.planner = o, pl
	return nil
}

func (s *session) compress() error {
	if s.planner == nil {
		return nil
	}
	st, err := s.eng.Compress(s.planner, []*engine.Sequence{s.seq}, nil, nil)
	if err != nil || st.Seqs == 0 {
		return err
	}
	s.led.Rounds++
	s.led.EvictedKVs += st.EvictedKVs
	s.led.FreedBlocks += st.FreedBlocks
	s.led.Moves += st.Moves
	return nil
}

// step decodes the token sampled last (compressing first, as `kvc run` does before each decode) and samples
// the next one. After k steps the cache holds the prompt and k-1 new tokens, and the k-th waits to be
// decoded: exactly the cache `kvc run -n k` ends with.
func (s *session) step() error {
	if s.finish != "" {
		return nil
	}
	if s.pending >= 0 {
		if s.interval > 0 && s.tokens%s.interval == 0 {
			if err := s.compress(); err != nil {
				return err
			}
		}
		if s.seq.KV.BlocksNeeded(s.eng.Pool, 1) > s.eng.Pool.Free() {
			if err := s.compress(); err != nil {
				return err
			}
		}
		out, err := s.eng.Decode([]*engine.Sequence{s.seq}, []int{s.pending})
		if errors.Is(err, kvpages.ErrNoBlocks) {
			return fmt.Errorf("the KV cache is full after %d tokens: set a smaller budget", s.seq.KV.NextPos)
		}
		if err != nil {
			return err
		}
		s.logits, s.pending = out[0], -1
	}
	next := s.seq.Sampler.Sample(s.logits, s.seq.Tokens)
	if s.eos[next] {
		s.finish = "stop"
		return nil
	}
	s.tokens++
	s.pending = next
	switch {
	case s.seq.KV.NextPos >= s.ck.Config.Context:
		s.finish = "context"
	case s.tokens >= s.n:
		s.finish = "length"
	}
	return nil
}

// frame is the picture of the cache now.
func (s *session) frame(status string) (kvmap.Frame, error) {
	v, err := s.eng.CacheView(s.seq, s.opts, s.led)
	if err != nil {
		return kvmap.Frame{}, err
	}
	return kvmap.Frame{View: v, Model: s.name, Text: s.tok.Decode(s.seq.Tokens), Status: status}, nil
}
