package engine

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// SamplerConfig are the usual llama.cpp/vLLM sampling knobs. Temp 0 is greedy.
type SamplerConfig struct {
	Temp          float64 `json:"temperature"`
	TopK          int     `json:"top_k"`          // 0: off
	TopP          float64 `json:"top_p"`          // 1 or 0: off
	MinP          float64 `json:"min_p"`          // 0: off
	RepeatPenalty float64 `json:"repeat_penalty"` // 1 or 0: off
	RepeatLastN   int     `json:"repeat_last_n"`  // tokens the penalty looks back over (default 64)
	Seed          uint64  `json:"seed"`
}

// RegisterFlags defines the sampling flags and their defaults on fs, for every command that samples
// (kvc's and the viewer's), so names and defaults are set in one place.
func (c *SamplerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Temp, "temp", 0.8, "temperature (0: greedy)")
	fs.IntVar(&c.TopK, "top-k", 40, "top-k (0: off)")
	fs.Float64Var(&c.TopP, "top-p", 0.95, "top-p (1: off)")
	fs.Float64Var(&c.MinP, "min-p", 0.05, "min-p (0: off)")
	fs.Float64Var(&c.RepeatPenalty, "repeat-penalty", 1.0, "repetition penalty (1: off)")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (0: from the clock)")
}

// Validate reports an out-of-range setting.
func (c SamplerConfig) Validate() error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"temperature", c.Temp}, {"top-p", c.TopP}, {"min-p", c.MinP}, {"repeat penalty", c.RepeatPenalty}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("%s %v must be a finite number", v.name, v.x)
		}
	}
	switch {
	case c.Temp < 0:
		return fmt.Errorf("temperature %v must be >= 0", c.Temp)
	case c.TopK < 0:
		return fmt.Errorf("top-k %d must be >= 0", c.TopK)
	case c.TopP < 0 || c.TopP > 1:
		return fmt.Errorf("top-p %v must be in [0, 1]", c.TopP)
	case c.MinP < 0 || c.MinP > 1:
		return fmt.Errorf("min-p %v must be in [0, 1]", c.MinP)
	case c.RepeatPenalty < 0:
		return fmt.Errorf("repeat penalty %v must be >= 0", c.RepeatPenalty)
	}
	return nil
}

// Sampler draws tokens for one sequence; the same seed gives the same tokens.
type Sampler struct {
	cfg SamplerConfig
	pcg *rand.PCG // rng's state, saved in session files
	rng *rand.Rand
	idx []int
}

// NewSampler makes a sampler with its own random stream.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.RepeatLastN == 0 {
		cfg.RepeatLastN = 64
	}
	pcg := rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	return &Sampler{cfg: cfg, pcg: pcg, rng: rand.New(pcg)}
}

// Config is the sampler's configuration.
func (s *Sampler) Config() SamplerConfig { return s.cfg }

// State is the random stream's position: NewSampler(Config()) then SetState(State()) draws what s would.
func (s *Sampler) State() []byte {
	b, _ := s.pcg.MarshalBinary() // cannot fail
	return b
}

// SetState moves the random stream to a position State returned.
func (s *Sampler) SetState(b []byte) error {
	if err := s.pcg.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("sampler state: %w", err)
	}
	return nil
}

// Sample picks the next token from logits (modified in place) given the sequence's recent tokens.
func (s *Sampler) Sample(logits []float32, recent []int) int {
	c := s.cfg
	if c.RepeatPenalty != 0 && c.RepeatPenalty != 1 {
		// llama.cpp's rule: divide positive logits, multiply negative ones, once per distinct token.
		seen := map[int]bool{}
		for _, t := range recent[max(0, len(recent)-c.RepeatLastN):] {
			if seen[t] || t < 0 || t >= len(logits) {
				continue
			}
			seen[t] = true
			if logits[t] > 0 {
				logits[t] /= float32(c.RepeatPenalty)
			} else {
				logits[t] *= float32(c.RepeatPenalty)
			}
		}
	}
	if c.Temp == 0 {
		return Argmax(logits)
	}
	// Candidates sorted by logit, descending (lower id first on ties).
	idx := s.idx[:0]
	for i := range logits {
		idx = append(idx, i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if c.TopK > 0 && c.TopK < len(idx) {
		idx = idx[:c.TopK]
	}
	s.idx = idx
	return s.sampleSorted(len(idx), func(i int) (int, float32) { return idx[i], logits[idx[i]] })
}

// Next draws from a pass's output row: Sample from its logits, or SampleCandidates from what was picked.
func (s *Sampler) Next(o Output, recent []int) int {
	if o.Logits != nil {
		return s.Sample(o.Logits, recent)
	}
	return s.SampleCandidates(o.IDs, o.Vals)
}

// DevicePick is how many best candidates a pass may return instead of the logits for Sample's choice to
// stay the same: 1 (the argmax) when greedy, TopK with top-k sampling and no repetition penalty, 0 when
// Sample needs every logit.
func (s *Sampler) DevicePick() int {
	c := s.cfg
	switch {
	case c.RepeatPenalty != 0 && c.RepeatPenalty != 1:
		return 0
	case c.Temp == 0:
		return 1
	}
	return c.TopK
}

// SampleCandidates is Sample given only the DevicePick() best candidates: ids by descending logit (lower
// id first on ties) and their logits. It draws the same token, with the same random stream, as Sample
// from the full logits.
func (s *Sampler) SampleCandidates(ids []int32, logits []float32) int {
	if s.cfg.Temp == 0 {
		return int(ids[0])
	}
	return s.sampleSorted(len(ids), func(i int) (int, float32) { return int(ids[i]), logits[i] })
}

// sampleSorted draws from n candidates sorted by descending logit (cand(i) = token, logit): softmax at the
// temperature, then min-p and top-p cuts.
func (s *Sampler) sampleSorted(n int, cand func(i int) (int, float32)) int {
	c := s.cfg
	probs := make([]float64, n)
	_, l0 := cand(0)
	maxL := float64(l0)
	sum := 0.0
	for i := range probs {
		_, l := cand(i)
		probs[i] = math.Exp((float64(l) - maxL) / c.Temp)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	if c.MinP > 0 {
		floor := probs[0] * c.MinP
		for n > 1 && probs[n-1] < floor {
			n--
		}
	}
	if c.TopP > 0 && c.TopP < 1 {
		cum := 0.0
		for i := 0; i < n; i++ {
			cum += probs[i]
			if cum >= c.TopP {
				n = i + 1
				break
			}
		}
	}
	total := 0.0
	for i := 0; i < n; i++ {
		total += probs[i]
	}
	u := s.rng.Float64() * total
	for i := 0; i < n; i++ {
		u -= probs[i]
		if u <= 0 {
			t, _ := cand(i)
			return t
		}
	}
	t, _ := cand(n - 1)
	return t
}

// Argmax is the index of the largest value (lowest index on ties).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
