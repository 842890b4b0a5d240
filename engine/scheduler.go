package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kvc/kvpages"
)

// Model is what the batch scheduler needs from an engine. *Engine provides it through BatchModel; tests
// plug in a fake with deterministic logits.
type Model interface {
	// Forward runs one pass (see Engine.Forward); on kvpages.ErrNoBlocks nothing was appended.
	Forward(items []Item) ([][]float32, error)
	// KVPool is the block pool every sequence allocates from.
	KVPool() *kvpages.Pool
	// NewSeq makes an empty cache for one sequence.
	NewSeq() *kvpages.Seq
	// Compress runs one eviction round over exactly these sequences (see Engine.Compress).
	Compress(pl *kvpages.Planner, seqs []*kvpages.Seq, budgets []kvpages.Budget) (CompressStats, error)
	Info() ModelInfo
}

// ModelInfo are the limits and metric needs the scheduler plans passes around.
type ModelInfo struct {
	MaxRows int // most rows in one Forward
	Context int // most positions a sequence may hold
	Window  int // observation-window rows the last prefill chunk carries (0: none)
	// PromptMetric: every prompt row is an observation row (H2O), so every prefill chunk sets WindowRows.
	PromptMetric bool
	// DecodeMetric: decode rows accumulate the per-slot metric. Forward adds it for the single-token rows
	// of a pass only, so decode rows and prefill chunks may share a pass.
	DecodeMetric bool
}

// PickModel is a Model whose passes can return sampling candidates picked on the device (see Engine.Pass);
// the scheduler then reads back only what each sequence's sampler needs.
type PickModel interface {
	Pass(items []Item) ([]Output, error)
}

// BatchModel adapts the engine to the scheduler.
func (e *Engine) BatchModel() Model { return engineModel{e} }

type engineModel struct{ e *Engine }

func (m engineModel) Forward(items []Item) ([][]float32, error) { return m.e.Forward(items) }
func (m engineModel) Pass(items []Item) ([]Output, error)       { return m.e.Pass(items) }
func (m engineModel) KVPool() *kvpages.Pool                     { return m.e.Pool }
func (m engineModel) NewSeq() *kvpages.Seq                      { return kvpages.NewSeq(m.e.Cfg.Layers, m.e.Cfg.KVHeads) }
func (m engineModel) Compress(pl *kvpages.Planner, seqs []*kvpages.Seq, budgets []kvpages.Budget) (CompressStats, error) {
	ss := make([]*Sequence, len(seqs))
	for i, s := range seqs {
		ss[i] = &Sequence{KV: s}
	}
	return m.e.Compress(pl, ss, budgets, nil)
}
func (m engineModel) Info() ModelInfo {
	o := m.e.Opt
	return ModelInfo{MaxRows: o.MaxRows, Context: m.e.Cfg.Context, Window: o.Window, PromptMetric: o.PromptMetric,
		DecodeMetric: o.Metric != MetricNone}
}

// TextDecoder turns generated ids into text one at a time (tokenizer.StreamDecoder is one).
type TextDecoder interface {
	Push(id int) string
	Flush() string
}

// Request is one generation for the scheduler.
type Request struct {
	ID        string
	Prompt    []int // token ids, BOS included when the model wants one
	MaxTokens int   // new tokens at most
	Sampler   SamplerConfig
	Stop      []string       // stop strings (need SchedulerConfig.NewDecoder)
	Budget    kvpages.Budget // per-request KV budget; zero: the planner's
	IgnoreEOS bool           // generate exactly MaxTokens (benchmarks)
	// Ctx cancels the request (its client went away); nil: never. It is checked before every step: a
	// cancelled request finishes with FinishCancelled and its blocks are back in the pool before the pass.
	Ctx context.Context
	// OnToken receives each generated token (EOS excluded) on the goroutine that runs the scheduler, with
	// the text it released: empty while a possible stop string or an incomplete character is held back.
	// Result.Text is these texts joined, then the tail released at the finish.
	OnToken func(id int, text string)
}

// Finish reasons of a Result.
const (
	FinishStop    = "stop"    // EOS or a stop string
	FinishLength  = "length"  // MaxTokens reached
	FinishContext = "context" // the model's context is full
	FinishError   = "error"   // see Result.Err
	// FinishCancelled: Request.Ctx was cancelled; Tokens and Text hold what was generated until then.
	FinishCancelled = "cancelled"
)

// Result is a finished request; the scheduler emits each exactly once.
type Result struct {
	ID           string
	Tokens       []int  // generated ids (EOS excluded; the token completing a stop string included)
	Text         string // decoded text, cut before a stop string (empty without a decoder)
	FinishReason string
	PromptTokens int
	KVKept       int // KVs the sequence held when it finished (all layers and KV heads)
	FullKVs      int // KVs a full cache would have held
	Preemptions  int
	Err          error
	Time         time.Duration // first admission to finish
}

// SchedulerConfig configure a Scheduler.
type SchedulerConfig struct {
	Planner  *kvpages.Planner // nil: never compress
	Interval int              // also compress every N steps (0: after prefill and on shortage only)
	MaxSeqs  int              // most sequences admitted at once (0: MaxRows)
	EOS      map[int]bool
	// NewDecoder makes a text decoder per request; nil: no Text and stop strings are refused.
	NewDecoder func() TextDecoder
	// OnResult receives every finished request, on the goroutine that calls Run.
	OnResult func(Result)
	// SplitPasses runs prefill chunks in a pass of their own even when the model would allow mixing them
	// with decode rows (it is forced when the model collects a decode metric).
	SplitPasses bool
	// Wait makes Run wait for more requests when it has nothing to do instead of returning, until Close
	// (a server). Submit wakes it.
	Wait bool
	// OnStep is called after every step on the goroutine that calls Run (to sample gauges: Pending,
	// Running, the pool).
	OnStep func()
}

// SchedulerStats describe a run.
type SchedulerStats struct {
	Steps           int
	DecodeSteps     int // steps with at least one decode row
	DecodeRows      int // decode rows over all steps
	PeakDecodeBatch int
	PrefillTokens   int // prompt (and recomputed) tokens run
	Preemptions     int
	CompressRounds  int
	Compress        CompressStats // totals (Seqs counts sequence-rounds)
	PrefillTime     time.Duration // passes of prefill chunks only
	DecodeTime      time.Duration // passes of decode rows only
	MixedTime       time.Duration // passes with both
	PeakBlocks      int
	Finished        int
	Errors          int
	Cancelled       int
}

// MeanDecodeBatch is the mean number of decode rows per step that decoded.
func (s SchedulerStats) MeanDecodeBatch() float64 {
	if s.DecodeSteps == 0 {
		return 0
	}
	return float64(s.DecodeRows) / float64(s.DecodeSteps)
}

// ErrAborted is returned by Run after Abort: in-flight requests were dropped without results.
var ErrAborted = errors.New("engine: scheduler aborted")

// Scheduler runs many requests through one model by continuous batching under the KV pool: every step
// it compresses what needs it, admits waiting prompts whose uncompressed prefill fits, and runs one pass
// with a decode row per running sequence plus prefill chunks of the admitted ones.
type Scheduler struct {
	m    Model
	info ModelInfo
	cfg  SchedulerConfig

	mu      sync.Mutex
	waiting []*schedSeq // FIFO; preempted requests go back to the front
	nextOrd int

	active     []*schedSeq // admitted, in admission order (oldest first)
	admitClock int64
	// prefillLocked stops admission after a preemption until some sequence finishes, so a preempted
	// request is not readmitted only to be preempted again.
	prefillLocked bool

	stopAdmit atomic.Bool
	abort     atomic.Bool
	closed    atomic.Bool
	wake      chan struct{} // Wait mode: something was submitted, or Close or Abort
	stats     SchedulerStats
}

type schedSeq struct {
	req       Request
	order     int
	admitted  int64
	kv        *kvpages.Seq
	sampler   *Sampler
	tokens    []int // prompt and generated; the cache holds tokens[:kv.NextPos]
	prefilled bool  // the cache holds all tokens but the last sampled one
	compress  bool  // prefill done, compression pending before the first decode
	rounds    int   // steps since last compressed
	ts        *TokenStream
	text      strings.Builder
	preempted int
	start     time.Time
	done      bool
}

// NewScheduler makes a scheduler for m.
func NewScheduler(m Model, cfg SchedulerConfig) (*Scheduler, error) {
	info := m.Info()
	if info.MaxRows <= 0 || info.Context <= 0 {
		return nil, fmt.Errorf("engine: scheduler: model reports %d rows per pass and a context of %d", info.MaxRows, info.Context)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("engine: scheduler: compression interval %d must be >= 0", cfg.Interval)
	}
	if cfg.MaxSeqs <= 0 || cfg.MaxSeqs > info.MaxRows {
		cfg.MaxSeqs = info.MaxRows
	}
	return &Scheduler{m: m, info: info, cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Submit queues a request; it may be called from any goroutine, also while Run is going.
func (s *Scheduler) Submit(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &schedSeq{req: r, order: s.nextOrd, tokens: append([]int(nil), r.Prompt...)}
	s.nextOrd++
	s.waiting = append(s.waiting, q)
	s.signal()
}

// StopAdmitting makes Run finish the admitted requests and return, leaving the rest queued.
func (s *Scheduler) StopAdmitting() { s.stopAdmit.Store(true); s.signal() }

// Abort makes Run drop everything in flight (no results) and return ErrAborted.
func (s *Scheduler) Abort() { s.abort.Store(true); s.signal() }

// Close tells a Wait scheduler that nothing more will be submitted: Run returns once every submitted
// request has finished.
func (s *Scheduler) Close() { s.closed.Store(true); s.signal() }

// Running is the number of admitted requests (call it on the Run goroutine, e.g. from OnStep).
func (s *Scheduler) Running() int { return len(s.active) }

// Stats returns the statistics so far (call it after Run, or from OnResult).
func (s *Scheduler) Stats() SchedulerStats { return s.stats }

// Pending is the number of queued requests not yet admitted.
func (s *Scheduler) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// Run steps until no admitted request is left and nothing more may be admitted. An error is a failure of
// the model (a request that cannot run gets an error Result instead).
func (s *Scheduler) Run() error {
	for {
		if s.abort.Load() {
			for _, q := range s.active {
				q.kv.ReleaseAll(s.m.KVPool())
			}
			s.active = nil
			return ErrAborted
		}
		if len(s.active) == 0 && (s.stopAdmit.Load() || s.Pending() == 0) {
			if !s.cfg.Wait || s.stopAdmit.Load() || s.closed.Load() {
				return nil
			}
			<-s.wake
			continue
		}
		progress, err := s.Step()
		if err != nil {
			return err
		}
		if s.cfg.OnStep != nil {
			s.cfg.OnStep()
		}
		if !progress {
			return fmt.Errorf("engine: scheduler made no progress with %d sequences admitted and %d waiting (%d of %d blocks free)",
				len(s.active), s.Pending(), s.m.KVPool().Free(), s.m.KVPool().Blocks())
		}
	}
}

// Step runs one scheduler step: compression, admission, one pass (or two with SplitPasses), sampling.
// It reports whether anything happened.
func (s *Scheduler) Step() (bool, error) {
	s.stats.Steps++
	progress := s.cancel()
	pool := s.m.KVPool()
	for _, q := range s.active {
		q.rounds++
	}

	// (a) compression: after a prefill, before the first decode; every Interval steps.
	if s.cfg.Planner != nil {
		var due []*schedSeq
		periodic := s.cfg.Interval > 0 && s.stats.Steps%s.cfg.Interval == 0
		for _, q := range s.active {
			if q.prefilled && (q.compress || periodic) {
				due = append(due, q)
			}
		}
		if _, err := s.compress(due); err != nil {
			return false, err
		}
		for _, q := range due {
			q.compress = false
		}
	}

	// (b) admission, FIFO, while the uncompressed prefill fits next to a decode step of everyone running.
	if n, err := s.admit(); err != nil {
		return false, err
	} else if n > 0 {
		progress = true
	}

	// (c) the pass: decode rows and prefill chunks, made to fit the pool by compression, then preemption.
	var dec []*schedSeq
	var pre []chunk
	for {
		dec, pre = s.plan()
		need := 0
		for _, q := range dec {
			need += q.kv.BlocksNeeded(pool, 1)
		}
		for _, c := range pre {
			need += c.q.kv.BlocksNeeded(pool, c.n)
		}
		if need <= pool.Free() {
			break
		}
		if freed, err := s.compressRunning(); err != nil {
			return false, err
		} else if freed > 0 {
			continue
		}
		victim := s.youngest()
		if victim == nil {
			break
		}
		if len(s.active) == 1 {
			// Alone and still short: it can never fit this pool.
			s.fail(victim, fmt.Errorf("the request needs more KV memory than the pool holds: %d blocks in use at %d tokens, %d more needed, %d blocks in the pool",
				victim.kv.Blocks(), victim.kv.NextPos, need, pool.Blocks()))
			progress = true
			continue
		}
		s.preempt(victim)
		progress = true
	}
	if len(dec) == 0 && len(pre) == 0 {
		return progress, nil
	}

	if err := s.run(dec, pre); err != nil {
		return false, err
	}
	s.stats.PeakBlocks = max(s.stats.PeakBlocks, pool.InUse())
	return true, nil
}

type chunk struct {
	q     *schedSeq
	n     int
	final bool
}

// plan picks this step's decode rows (every prefilled sequence) and prefill chunks (admission order,
// within the rows left, the last chunk of a prompt holding its whole observation window).
func (s *Scheduler) plan() ([]*schedSeq, []chunk) {
	var dec []*schedSeq
	for _, q := range s.active {
		if q.prefilled {
			dec = append(dec, q)
		}
	}
	budget := s.info.MaxRows
	if !s.cfg.SplitPasses {
		budget -= len(dec)
	}
	var pre []chunk
	for _, q := range s.active {
		if q.prefilled || budget <= 0 {
			continue
		}
		target := len(q.tokens)
		left := target - q.kv.NextPos
		w := min(s.info.Window, target, s.info.MaxRows)
		if left <= budget {
			pre = append(pre, chunk{q: q, n: left, final: true})
			budget -= left
			continue
		}
		if n := min(budget, left-w); n > 0 {
			pre = append(pre, chunk{q: q, n: n})
			budget -= n
		}
	}
	return dec, pre
}

// admit moves waiting requests into the batch while their uncompressed prompt fits.
func (s *Scheduler) admit() (int, error) {
	pool := s.m.KVPool()
	n := 0
	if len(s.active) == 0 {
		s.prefillLocked = false
	}
	for !s.stopAdmit.Load() && !s.prefillLocked && len(s.active) < s.cfg.MaxSeqs {
		s.mu.Lock()
		if len(s.waiting) == 0 {
			s.mu.Unlock()
			break
		}
		q := s.waiting[0]
		s.mu.Unlock()
		if q.sampler == nil { // never admitted: refuse what can never run
			if err := s.check(q); err != nil {
				s.popWaiting()
				s.fail(q, err)
				n++
				continue
			}
			if q.req.MaxTokens == 0 {
				s.popWaiting()
				s.finish(q, FinishLength, nil)
				n++
				continue
			}
		}
		fresh := s.m.NewSeq()
		need := fresh.BlocksNeeded(pool, len(q.tokens))
		if need > pool.Blocks() {
			s.popWaiting()
			s.fail(q, fmt.Errorf("the prompt of %d tokens needs %d KV blocks uncompressed, the pool has %d: raise --kv-mem",
				len(q.tokens), need, pool.Blocks()))
			n++
			continue
		}
		if need > pool.Free()-s.reserved() {
			break
		}
		s.popWaiting()
		if q.sampler == nil { // first admission (a preempted request keeps its sampler, decoder and text)
			q.sampler = NewSampler(q.req.Sampler)
			var dec TextDecoder
			if s.cfg.NewDecoder != nil {
				dec = s.cfg.NewDecoder()
			}
			q.ts = NewTokenStream(s.cfg.EOS, q.req.IgnoreEOS, q.req.MaxTokens, s.info.Context, q.req.Stop, dec, q.req.Prompt)
			q.start = time.Now()
		}
		q.kv = fresh
		q.prefilled, q.compress, q.rounds = false, false, 0
		s.admitClock++
		q.admitted = s.admitClock
		s.active = append(s.active, q)
		n++
	}
	return n, nil
}

// cancel finishes the requests whose context is done, queued or admitted, and reports whether there were any.
func (s *Scheduler) cancel() bool {
	gone := func(q *schedSeq) bool { return q.req.Ctx != nil && q.req.Ctx.Err() != nil }
	var drop []*schedSeq
	s.mu.Lock()
	kept := s.waiting[:0]
	for _, q := range s.waiting {
		if gone(q) {
			drop = append(drop, q)
		} else {
			kept = append(kept, q)
		}
	}
	clear(s.waiting[len(kept):])
	s.waiting = kept
	s.mu.Unlock()
	for _, q := range s.active {
		if gone(q) {
			drop = append(drop, q)
		}
	}
	for _, q := range drop {
		s.stats.Cancelled++
		s.finish(q, FinishCancelled, nil)
	}
	return len(drop) > 0
}

func (s *Scheduler) popWaiting() {
	s.mu.Lock()
	s.waiting = s.waiting[1:]
	s.mu.Unlock()
}

// check refuses requests that cannot run at all.
func (s *Scheduler) check(q *schedSeq) error {
	r := q.req
	switch {
	case len(r.Prompt) == 0:
		return fmt.Errorf("empty prompt (it needs at least a BOS token)")
	case len(r.Prompt) > s.info.Context:
		return fmt.Errorf("the prompt is %d tokens, the model's context is %d", len(r.Prompt), s.info.Context)
	case r.MaxTokens < 0:
		return fmt.Errorf("max tokens %d must be >= 0", r.MaxTokens)
	case len(r.Stop) > 0 && s.cfg.NewDecoder == nil:
		return fmt.Errorf("stop strings need a text decoder")
	}
	if err := r.Sampler.Validate(); err != nil {
		return err
	}
	if r.Budget != (kvpages.Budget{}) {
		if s.cfg.Planner == nil {
			return fmt.Errorf("a KV budget needs a compression policy (the engine runs with the full cache)")
		}
		o := s.cfg.Planner.Options()
		o.Budget = r.Budget
		if err := o.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// reserved is the blocks admitted requests may still take before anything more is admitted: the rest of
// every admitted prompt and one decode step of every running sequence.
func (s *Scheduler) reserved() int {
	pool := s.m.KVPool()
	r := 0
	for _, q := range s.active {
		if q.prefilled {
			r += q.kv.BlocksNeeded(pool, 1)
		} else {
			r += q.kv.BlocksNeeded(pool, len(q.tokens)-q.kv.NextPos)
		}
	}
	return r
}

// compress runs eviction rounds over qs until every one of them was planned (rounds are capped by the
// planner's MaxKVPerRound). It returns the blocks freed.
func (s *Scheduler) compress(qs []*schedSeq) (int, error) {
	pl := s.cfg.Planner
	if pl == nil || len(qs) == 0 {
		return 0, nil
	}
	freed := 0
	left := qs
	for len(left) > 0 {
		cands := make([]kvpages.Candidate, len(left))
		for i, q := range left {
			cands[i] = kvpages.Candidate{Seq: q.kv, Budget: q.req.Budget, RoundsSince: q.rounds}
		}
		sel, err := pl.Select(cands)
		if err != nil {
			return freed, err
		}
		if len(sel) == 0 {
			break
		}
		seqs := make([]*kvpages.Seq, len(sel))
		budgets := make([]kvpages.Budget, len(sel))
		picked := make(map[int]bool, len(sel))
		for k, i := range sel {
			seqs[k], budgets[k] = left[i].kv, left[i].req.Budget
			left[i].rounds = 0
			picked[i] = true
		}
		st, err := s.m.Compress(pl, seqs, budgets)
		if err != nil {
			return freed, fmt.Errorf("engine: scheduler compression: %w", err)
		}
		s.stats.CompressRounds++
		s.stats.Compress.Seqs += st.Seqs
		s.stats.Compress.EvictedKVs += st.EvictedKVs
		s.stats.Compress.FreedBlocks += st.FreedBlocks
		s.stats.Compress.Moves += st.Moves
		s.stats.Compress.Time += st.Time
		freed += st.FreedBlocks
		var rest []*schedSeq
		for i, q := range left {
			if !picked[i] {
				rest = append(rest, q)
			}
		}
		left = rest
	}
	return freed, nil
}

// compressRunning compresses the running sequences when a pass is short of blocks.
func (s *Scheduler) compressRunning() (int, error) {
	var run []*schedSeq
	for _, q := range s.active {
		if q.prefilled {
			run = append(run, q)
		}
	}
	return s.compress(run)
}

// youngest is the most recently admitted sequence.
func (s *Scheduler) youngest() *schedSeq {
	var y *schedSeq
	for _, q := range s.active {
		if y == nil || q.admitted > y.admitted {
			y = q
		}
	}
	return y
}

// preempt releases q's blocks and queues it again at the front, to be recomputed from its prompt and the
// tokens it generated.
func (s *Scheduler) preempt(q *schedSeq) {
	q.kv.ReleaseAll(s.m.KVPool())
	q.kv = nil
	s.removeActive(q)
	q.preempted++
	s.stats.Preemptions++
	s.prefillLocked = true
	s.mu.Lock()
	// Ahead of never-admitted requests, behind earlier-submitted preempted ones.
	i := 0
	for i < len(s.waiting) && s.waiting[i].sampler != nil && s.waiting[i].order < q.order {
		i++
	}
	s.waiting = append(s.waiting, nil)
	copy(s.waiting[i+1:], s.waiting[i:])
	s.waiting[i] = q
	s.mu.Unlock()
}

func (s *Scheduler) removeActive(q *schedSeq) {
	for i, a := range s.active {
		if a == q {
			s.active = append(s.active[:i], s.active[i+1:]...)
			return
		}
	}
}

// run executes the pass and samples from its logits.
func (s *Scheduler) run(dec []*schedSeq, pre []chunk) error {
	decItems := make([]Item, len(dec))
	for i, q := range dec {
		decItems[i] = Item{Seq: q.kv, Tokens: q.tokens[len(q.tokens)-1:], Logits: true, Pick: q.sampler.DevicePick()}
	}
	preItems := make([]Item, len(pre))
	var preIdx []int // chunk index of each logits row of the prefill items
	for i, c := range pre {
		p0 := c.q.kv.NextPos
		it := Item{Seq: c.q.kv, Tokens: c.q.tokens[p0 : p0+c.n], Logits: c.final}
		if c.final {
			it.Pick = c.q.sampler.DevicePick()
		}
		if s.info.PromptMetric {
			it.WindowRows = c.n
		} else if c.final {
			it.WindowRows = min(s.info.Window, c.n)
		}
		preItems[i] = it
		if c.final {
			preIdx = append(preIdx, i)
		}
		s.stats.PrefillTokens += c.n
	}
	var decLogits, preLogits []Output
	if len(dec) > 0 {
		s.stats.DecodeSteps++
		s.stats.DecodeRows += len(dec)
		s.stats.PeakDecodeBatch = max(s.stats.PeakDecodeBatch, len(dec))
	}
	if s.cfg.SplitPasses || len(dec) == 0 || len(pre) == 0 {
		if len(dec) > 0 {
			t := time.Now()
			out, err := s.pass(decItems)
			if err != nil {
				return fmt.Errorf("engine: scheduler decode pass of %d rows: %w", len(dec), err)
			}
			s.stats.DecodeTime += time.Since(t)
			decLogits = out
		}
		if len(pre) > 0 {
			t := time.Now()
			out, err := s.pass(preItems)
			if err != nil {
				return fmt.Errorf("engine: scheduler prefill pass of %d chunks: %w", len(pre), err)
			}
			s.stats.PrefillTime += time.Since(t)
			preLogits = out
		}
	} else {
		t := time.Now()
		out, err := s.pass(append(decItems, preItems...))
		if err != nil {
			return fmt.Errorf("engine: scheduler pass of %d decode rows and %d prefill chunks: %w", len(dec), len(pre), err)
		}
		s.stats.MixedTime += time.Since(t)
		decLogits, preLogits = out[:len(dec)], out[len(dec):]
	}
	for i, q := range dec {
		s.sample(q, decLogits[i])
	}
	for k, i := range preIdx {
		q := pre[i].q
		q.prefilled = true
		q.compress = true
		s.sample(q, preLogits[k])
	}
	return nil
}

// pass runs items through the model: with candidates picked on the device where it can, else logits.
func (s *Scheduler) pass(items []Item) ([]Output, error) {
	if pm, ok := s.m.(PickModel); ok {
		return pm.Pass(items)
	}
	logits, err := s.m.Forward(items)
	out := make([]Output, len(logits))
	for i, l := range logits {
		out[i].Logits = l
	}
	return out, err
}

// sample draws q's next token from a pass's output row and finishes q when it is done.
func (s *Scheduler) sample(q *schedSeq, o Output) {
	next := q.sampler.Next(o, q.tokens)
	generated, text, finish := q.ts.Next(next, len(q.tokens)+1)
	if generated {
		q.tokens = append(q.tokens, next)
		q.text.WriteString(text)
		if q.req.OnToken != nil {
			q.req.OnToken(next, text)
		}
	}
	if finish != "" {
		s.finish(q, finish, nil)
	}
}

func (s *Scheduler) fail(q *schedSeq, err error) { s.finish(q, FinishError, err) }

// finish releases q and emits its result.
func (s *Scheduler) finish(q *schedSeq, reason string, err error) {
	if q.done {
		panic("engine: scheduler finished a request twice")
	}
	q.done = true
	res := Result{ID: q.req.ID, FinishReason: reason, PromptTokens: len(q.req.Prompt), Preemptions: q.preempted, Err: err}
	res.Tokens = append([]int(nil), q.tokens[len(q.req.Prompt):]...)
	if q.kv != nil {
		for _, c := range q.kv.Ctx {
			res.KVKept += c
		}
		res.FullKVs = q.kv.NextPos * q.kv.Layers * q.kv.KVHeads
		q.kv.ReleaseAll(s.m.KVPool())
		q.kv = nil
		s.removeActive(q)
	}
	if q.ts != nil {
		q.text.WriteString(q.ts.Tail())
	}
	res.Text = q.text.String()
	if !q.start.IsZero() {
		res.Time = time.Since(q.start)
	}
	s.stats.Finished++
	if err != nil {
		s.stats.Errors++
	}
	s.prefillLocked = false
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(res)
	}
}
