package kvpages

import (
	"fmt"
	"math"
	"strings"
)

// Policy is the eviction policy (--kv-policy). All policies share the same machinery: per-head sorted
// block scores, the hanging-block rule, per-head prefixes, compaction by filling holes from the tail and
// freeing tail blocks. They differ in how many blocks each head gives back and by what key slots rank.
type Policy int

const (
	// PolicyKVCompress ranks the block scores of all (layer, KV head) of a sequence in one global sort and
	// evicts the cheapest E_s blocks (kv-compress.md §1.2-1.3): heads keep variable amounts.
	PolicyKVCompress Policy = iota
	// PolicyFull never evicts.
	PolicyFull
	// PolicyUniform (SnapKV/PyramidKV-like) evicts by the same metric as KV-Compress but every head keeps
	// the same block count: ceil(C/b) blocks, C the per-head budget in tokens.
	PolicyUniform
	// PolicyWindow (StreamingLLM-like) keeps the most recent positions plus the sinks, the same block count
	// per head; the metric is ignored (slots rank by position, oldest first).
	PolicyWindow
	// PolicyH2O plans exactly like PolicyUniform; it differs in the metric the engine accumulates (see
	// Policy.Metric): plain (L1) attention summed over every query, prompt and decode, with no observation
	// window and no max-pool.
	PolicyH2O
)

var policyNames = [...]string{
	PolicyKVCompress: "kvcompress",
	PolicyFull:       "full",
	PolicyUniform:    "uniform",
	PolicyWindow:     "window",
	PolicyH2O:        "h2o",
}

func (p Policy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads a --kv-policy value: kvcompress (also kvc), full, uniform, window, h2o.
func ParsePolicy(s string) (Policy, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "kvc" {
		return PolicyKVCompress, nil
	}
	for i, n := range policyNames {
		if v == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("kvpages: unknown kv policy %q (want one of %s)", s, strings.Join(policyNames[:], ", "))
}

// MetricSource says which per-slot metric the engine must accumulate for a policy.
type MetricSource struct {
	Needed bool // false: the metric is never read (full, window)
	// Squared: add p^2 (L2, KV-Compress); otherwise p (L1, H2O).
	Squared bool
	// ObservationWindow: after prefill add the metric of the last w prompt queries, max-pooled (kernel 7)
	// per query head before the group sum (SnapKV / KVC-w): the summed metrics of kvcompress and uniform.
	// When false, every prompt query contributes, no pooling: H2O's accumulated attention, and the
	// per-query means (PerQuery), which divide by the number of queries that have seen the KV.
	ObservationWindow bool
	// Decode: every decode query adds into the metric too (continual accumulation, eq. 20 / H2O).
	Decode bool
	// PerQuery: rank by the metric divided by the queries that added to it (its age less Buffer), the
	// reference code's -avg aggregation. Without it old slots win just for having been attended longer.
	PerQuery bool
	// Buffer v: a query adds to a slot's metric only when the slot is at least v positions before it
	// (the reference code's metric-collection buffer; KVC-full uses v = 10). The attention a token gets
	// from the next few queries is local (the previous words), large for every token, and says nothing
	// about whether a later query will need it. A slot younger than v has no evidence yet and is
	// protected (Options.protectFor).
	Buffer int
	// ValueNorm: rank by the metric times the L1 norm of the slot's value vector (VATP, Guo et al. 2024,
	// "Attention Score is not All You Need for Token Importance"). A KV adds p*v to its head's output, so
	// one whose value vector is small changes little however much it is attended. The norm is a constant
	// of the slot, so the engine applies it when it reads the metrics back, not at every query.
	ValueNorm bool
}

// Metric is how attention becomes a slot's ranking score (--kv-metric): squared (l2) or plain (l1)
// attention, summed over the queries (the paper) or averaged per query that has seen the slot (-avg),
// and vatp: l1-avg times the L1 norm of the slot's value vector.
type Metric int

const (
	MetricDefault Metric = iota // the policy's default (Policy.Metric)
	MetricL2Sum                 // the paper's KV-Compress: squared attention, summed
	MetricL1Sum                 // plain attention, summed (H2O)
	MetricL2Avg
	MetricL1Avg
	MetricVATP // l1-avg times the L1 norm of the value vector (MetricSource.ValueNorm)
)

var metricNames = [...]string{MetricDefault: "default", MetricL2Sum: "l2", MetricL1Sum: "l1", MetricL2Avg: "l2-avg",
	MetricL1Avg: "l1-avg", MetricVATP: "vatp"}

func (m Metric) String() string {
	if m >= 0 && int(m) < len(metricNames) {
		return metricNames[m]
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// ParseMetric reads a --kv-metric value: l2 (also l2-sum), l1 (l1-sum), l2-avg, l1-avg, vatp; "" is the
// default.
func ParseMetric(s string) (Metric, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "l1-sum" || v == "l2-sum" {
		v = strings.TrimSuffix(v, "-sum")
	}
	if v == "" {
		return MetricDefault, nil
	}
	for i, n := range metricNames[1:] {
		if v == n {
			return Metric(i + 1), nil
		}
	}
	return 0, fmt.Errorf("kvpages: unknown kv metric %q (want one of %s)", s, strings.Join(metricNames[1:], ", "))
}

// VATPSinks is the attention sinks vatp keeps when none are asked for (DefaultSinks): the first 4
// positions, StreamingLLM's count; the VATP paper keeps the sinks too. A sink draws a large share of
// every query's attention while its value vector is near zero (it is how a head attends to nothing), so
// attention times value norm rates it near zero; evicted, its share of the softmax would go to the
// other KVs and change every output of the head. The plain attention metrics rank sinks high anyway.
const VATPSinks = 4

// DefaultSinks is the number of first positions a policy ranking by m keeps when --kv-sinks is not
// given: VATPSinks for vatp, none otherwise.
func DefaultSinks(m Metric) int {
	if m == MetricVATP {
		return VATPSinks
	}
	return 0
}

// DefaultBuffer is the metric buffer of the per-query means (MetricSource.Buffer): KVC-full's v = 10.
const DefaultBuffer = 10

// DefaultMetric is the metric of the metric-ranked policies (kvcompress, uniform) when none is chosen: plain
// attention per query that has seen the KV from DefaultBuffer positions after it on, every prompt query
// included. Summed attention (the paper's l2) favours old KVs for having been attended longer, and squaring
// favours the few KVs a query attends most over those that many queries attend moderately; see README,
// KV-Compress quality.
const DefaultMetric = MetricL1Avg

// Metric describes the metric the engine must collect for this policy with its default metric.
func (p Policy) Metric() MetricSource {
	m, _ := p.MetricWith(MetricDefault)
	return m
}

// MetricWith describes the metric the engine must collect for this policy ranking by m. A metric given
// to a policy that ranks by none (full, window) is an error.
func (p Policy) MetricWith(m Metric) (MetricSource, error) {
	if m < 0 || int(m) >= len(metricNames) {
		return MetricSource{}, fmt.Errorf("kvpages: unknown kv metric %d", int(m))
	}
	var src MetricSource
	switch p {
	case PolicyKVCompress, PolicyUniform:
		if m == MetricDefault {
			m = DefaultMetric
		}
		src = MetricSource{Needed: true, ObservationWindow: true, Decode: true}
	case PolicyH2O:
		if m == MetricDefault {
			m = MetricL1Sum
		}
		src = MetricSource{Needed: true, Decode: true}
	default:
		if m != MetricDefault {
			return MetricSource{}, fmt.Errorf("kvpages: policy %s ranks by no metric, so kv metric %s means nothing", p, m)
		}
		return MetricSource{}, nil
	}
	src.Squared = m == MetricL2Sum || m == MetricL2Avg
	src.PerQuery = m == MetricL2Avg || m == MetricL1Avg || m == MetricVATP
	src.ValueNorm = m == MetricVATP
	if src.PerQuery {
		// The mean over the queries that have seen a KV needs every one of them in the sum: a window
		// of the last w prompt rows would divide w rows' attention by the whole age.
		src.ObservationWindow = false
		src.Buffer = DefaultBuffer
	}
	return src, nil
}

// Budget is a per-sequence KV budget: exactly one of MaxCacheTokens and Rate is set.
type Budget struct {
	// MaxCacheTokens C: the sequence keeps C*layers*kvHeads KVs in total, spread freely over its heads by
	// KV-Compress (per head for the baselines). C is rounded up to a multiple of the block size, so the
	// budget is ceil(C/b)*layers*kvHeads blocks.
	MaxCacheTokens int
	// Rate R >= 1: full-cache KVs / kept KVs = R on the evictable part. With len the sequence length
	// (Seq.NextPos) and P = min(len, Protect+Sinks) the positions of a head that may never go, the
	// sequence should keep ceil((len-P)*L*H/R) + P*L*H KVs. It is budgeted as MaxCacheTokens
	// C_R = P + ceil((len-P)/R), i.e. ceil(C_R/b)*L*H blocks: the target rounded up to whole blocks.
	// R = 1 keeps everything; the budget grows with the sequence.
	Rate float64
}

func (b Budget) set() bool { return b.MaxCacheTokens != 0 || b.Rate != 0 }

// Options configure eviction planning.
type Options struct {
	Policy    Policy
	Metric    Metric // what the slots rank by (MetricDefault: the policy's default); see Policy.MetricWith
	BlockSize int    // b, slots per block; must equal the pool's
	Budget    Budget
	// Protect: the last Protect positions of every head are never evicted (pos > lastPos-Protect, lastPos
	// = Seq.NextPos-1). They count toward the budget.
	Protect int
	// Recent: a share of the budget kept for recency. The last floor(Recent*C) positions of every head (C the
	// per-head budget in tokens) are protected like Protect's (the larger of the two applies), so each head
	// keeps its recent tokens and the metric chooses among the older ones (H2O keeps half recent, half
	// heavy hitters). 0 <= Recent <= 1; 0: only Protect. Ignored by window and full.
	Recent float64
	// Floor: Ada-KV's safeguard (Feng et al. 2024) for KV-Compress's global ranking. Every head keeps at
	// least its protected positions (Protect, Recent, Sinks) plus Floor of the rest of its uniform share C,
	// in whole blocks; the global ranking distributes only what lies above the floors. 0 <= Floor <= 1; 0:
	// the paper (no floor); 1: every head keeps ceil(C/b) blocks, as uniform. Only kvcompress uses it.
	Floor float64
	// Sinks: positions < Sinks are never evicted (attention sinks). They count toward the budget.
	Sinks int
	// MaxKVPerRound caps the slots planned in one round (max_kv_per_compression), counted as blocks*b
	// per sequence; 0 means no cap. See Select.
	MaxKVPerRound int
}

// DefaultProtect is the protected window of the throughput runs (kv-compress.md §2, §6.13).
const DefaultProtect = 32

// InteractiveProtect is the protected window of the commands people run (run, chat, generate, eval, serve,
// the viewer): the observation window w, as the paper's LongBench runs protect (kv-compress.md §6.13), so
// budgets down to one block per head work; the recency share (Options.Recent) protects more at larger budgets.
const InteractiveProtect = 8

// DefaultRecent is the recency share of the metric policies' defaults (see Options.Recent): half the budget,
// as H2O splits its cache between recent tokens and heavy hitters.
const DefaultRecent = 0.5

// DefaultFloor is kvcompress's default head floor (see Options.Floor).
const DefaultFloor = 0.0

// DefaultOptions are KV-Compress with the given block size and budget, its default metric, Protect 32, the
// default recency share, no sinks, no cap.
func DefaultOptions(blockSize int, budget Budget) Options {
	return Options{Policy: PolicyKVCompress, BlockSize: blockSize, Budget: budget, Protect: DefaultProtect, Recent: DefaultRecent}
}

// Validate checks the options before any work is done.
func (o Options) Validate() error {
	if o.Policy < 0 || int(o.Policy) >= len(policyNames) {
		return fmt.Errorf("kvpages: unknown kv policy %d", int(o.Policy))
	}
	if o.BlockSize <= 0 {
		return fmt.Errorf("kvpages: block size must be positive, got %d", o.BlockSize)
	}
	if o.Protect < 0 {
		return fmt.Errorf("kvpages: protected window must be >= 0, got %d", o.Protect)
	}
	if o.Sinks < 0 {
		return fmt.Errorf("kvpages: attention sinks must be >= 0, got %d", o.Sinks)
	}
	if !(o.Recent >= 0 && o.Recent <= 1) {
		return fmt.Errorf("kvpages: recency share must be in [0, 1] (of the per-head budget), got %g", o.Recent)
	}
	if !(o.Floor >= 0 && o.Floor <= 1) {
		return fmt.Errorf("kvpages: head floor must be in [0, 1] (of the per-head budget beyond the protected positions), got %g", o.Floor)
	}
	if o.Floor > 0 && o.Policy != PolicyKVCompress {
		return fmt.Errorf("kvpages: a head floor (%g) bounds kvcompress's global ranking; policy %s allocates no blocks across heads", o.Floor, o.Policy)
	}
	if o.MaxKVPerRound < 0 {
		return fmt.Errorf("kvpages: max KVs per round must be >= 0 (0 = no cap), got %d", o.MaxKVPerRound)
	}
	if _, err := o.Policy.MetricWith(o.Metric); err != nil {
		return err
	}
	if o.Policy == PolicyFull {
		return nil // no budget needed
	}
	return o.checkBudget(o.Budget)
}

// checkBudget validates one budget against the options' block size, protected window and sinks.
func (o Options) checkBudget(b Budget) error {
	if !b.set() {
		return fmt.Errorf("kvpages: policy %s needs a budget: max cache tokens or a compression rate", o.Policy)
	}
	if b.MaxCacheTokens != 0 && b.Rate != 0 {
		return fmt.Errorf("kvpages: set max cache tokens (%d) or compression rate (%g), not both", b.MaxCacheTokens, b.Rate)
	}
	if b.Rate != 0 {
		if math.IsNaN(b.Rate) || math.IsInf(b.Rate, 0) || b.Rate < 1 {
			return fmt.Errorf("kvpages: compression rate must be a finite number >= 1 (full-cache KVs / kept KVs), got %g", b.Rate)
		}
		return nil
	}
	if b.MaxCacheTokens < 0 {
		return fmt.Errorf("kvpages: max cache tokens must be positive, got %d", b.MaxCacheTokens)
	}
	bs := o.BlockSize
	if need := ceilDiv(o.Protect+o.Sinks, bs); ceilDiv(b.MaxCacheTokens, bs) < need {
		return fmt.Errorf("kvpages: max cache tokens %d (%d blocks of %d per head) is smaller than the protected window %d + sinks %d (%d blocks per head)",
			b.MaxCacheTokens, ceilDiv(b.MaxCacheTokens, bs), bs, o.Protect, o.Sinks, need)
	}
	return nil
}

// budgetTokens is the per-head token budget C (before rounding up to blocks) for a sequence of length n.
func (o Options) budgetTokens(b Budget, n int) int {
	if b.MaxCacheTokens != 0 {
		return b.MaxCacheTokens
	}
	p := min(n, o.Protect+o.Sinks)
	return p + int(math.Ceil(float64(n-p)/b.Rate))
}

// protectFor is the number of most recent positions of every head of s that may not go under budget b (the
// options' budget when b is the zero Budget): Protect, or the recency share of the budget when larger.
func (o Options) protectFor(s *Seq, b Budget) int {
	if o.Policy == PolicyFull || o.Policy == PolicyWindow {
		return o.Protect
	}
	if !b.set() {
		b = o.Budget
	}
	c := o.budgetTokens(b, s.NextPos)
	// Slots inside the metric buffer have no metric yet. The buffer and the recency share are capped so
	// that the protected positions and the sinks still fit the budget.
	src, _ := o.Policy.MetricWith(o.Metric)
	return max(o.Protect, min(max(src.Buffer, int(o.Recent*float64(c))), c-o.Sinks))
}

// floorBlocks is the fewest blocks the global ranking may leave a head of s under budget b (see Floor):
// the protected positions plus Floor of the rest of the per-head budget, rounded up to blocks. At most
// ceil(C/b), so the floors of all heads fit the budget.
func (o Options) floorBlocks(s *Seq, b Budget) int {
	if !b.set() {
		b = o.Budget
	}
	c := o.budgetTokens(b, s.NextPos)
	p := min(c, o.protectFor(s, b)+o.Sinks)
	return ceilDiv(p+int(o.Floor*float64(c-p)), o.BlockSize)
}

// BudgetBlocks is the number of blocks sequence s may keep under budget b (the options' budget when b
// is the zero Budget): ceil(C/b)*layers*kvHeads. For PolicyFull it is the blocks the sequence holds.
func (o Options) BudgetBlocks(s *Seq, b Budget) int {
	if o.Policy == PolicyFull {
		return s.Blocks()
	}
	if !b.set() {
		b = o.Budget
	}
	return ceilDiv(o.budgetTokens(b, s.NextPos), o.BlockSize) * s.Layers * s.KVHeads
}

// Excess is E_s before capping at the evictable blocks: blocks in use minus the budget, at least 0.
func (o Options) Excess(s *Seq, b Budget) int {
	return max(0, s.Blocks()-o.BudgetBlocks(s, b))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
