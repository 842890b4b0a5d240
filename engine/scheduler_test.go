package engine_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
)

// schedFake is a Model whose logits are a hash of the token history its cache holds, so an output depends
// on every token fed, in order: a preempted request reproduces its tokens only if it is recomputed from
// exactly the right history. It keeps real kvpages bookkeeping and per-slot positions so compression
// plans and applies for real.
type schedFake struct {
	pool          *kvpages.Pool
	layers, heads int
	vocab         int
	info          engine.ModelInfo
	hist          map[*kvpages.Seq][]int
	decoding      map[*kvpages.Seq]bool // got logits before: later single rows are decode rows
	pos           []int32
	passes        int
	maxPasses     int
	window        int // passes with window rows
}

func newSchedFake(blocks, blockSize, layers, heads, vocab int, info engine.ModelInfo) *schedFake {
	p, err := kvpages.NewPool(blocks, blockSize)
	if err != nil {
		panic(err)
	}
	return &schedFake{pool: p, layers: layers, heads: heads, vocab: vocab, info: info, hist: map[*kvpages.Seq][]int{}, decoding: map[*kvpages.Seq]bool{},
		pos: make([]int32, blocks*blockSize), maxPasses: 200000}
}

func (f *schedFake) KVPool() *kvpages.Pool  { return f.pool }
func (f *schedFake) NewSeq() *kvpages.Seq   { return kvpages.NewSeq(f.layers, f.heads) }
func (f *schedFake) Info() engine.ModelInfo { return f.info }

func schedFakeLogits(hist []int, vocab int) []float32 {
	h := fnv.New64a()
	for _, t := range hist {
		h.Write([]byte{byte(t), byte(t >> 8)})
	}
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	out := make([]float32, vocab)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

func (f *schedFake) Forward(items []engine.Item) ([][]float32, error) {
	f.passes++
	if f.passes > f.maxPasses {
		return nil, fmt.Errorf("fake: more than %d passes: the scheduler does not terminate", f.maxPasses)
	}
	rows, need := 0, 0
	for _, it := range items {
		rows += len(it.Tokens)
		need += it.Seq.BlocksNeeded(f.pool, len(it.Tokens))
		if it.Seq.NextPos+len(it.Tokens) > f.info.Context {
			return nil, fmt.Errorf("fake: past the context")
		}
		if it.WindowRows > 0 {
			f.window++
		}
	}
	if rows > f.info.MaxRows {
		return nil, fmt.Errorf("fake: %d rows, max %d", rows, f.info.MaxRows)
	}
	if need > f.pool.Free() {
		return nil, fmt.Errorf("%w: fake needs %d", kvpages.ErrNoBlocks, need)
	}
	var out [][]float32
	for _, it := range items {
		p0 := it.Seq.NextPos
		slots, err := it.Seq.Append(f.pool, len(it.Tokens))
		if err != nil {
			return nil, err
		}
		n := len(it.Tokens)
		for i, sl := range slots {
			f.pos[sl] = int32(p0 + (i/f.heads)%n)
		}
		f.hist[it.Seq] = append(f.hist[it.Seq], it.Tokens...)
		if len(f.hist[it.Seq]) != it.Seq.NextPos {
			return nil, fmt.Errorf("fake: history of %d tokens, NextPos %d", len(f.hist[it.Seq]), it.Seq.NextPos)
		}
		if it.Logits {
			f.decoding[it.Seq] = true
			out = append(out, schedFakeLogits(f.hist[it.Seq], f.vocab))
		}
	}
	return out, nil
}

func (f *schedFake) Compress(pl *kvpages.Planner, seqs []*kvpages.Seq, budgets []kvpages.Budget) (engine.CompressStats, error) {
	b := f.pool.BlockSize()
	in := make([]kvpages.SeqSlots, len(seqs))
	for i, s := range seqs {
		blocks := s.SlotBlocks()
		metric := make([]float32, len(blocks)*b)
		pos := make([]int32, len(blocks)*b)
		for k, id := range blocks {
			for j := 0; j < b; j++ {
				p := f.pos[int(id)*b+j]
				pos[k*b+j] = p
				metric[k*b+j] = float32((int(p)*2654435761)%1000) / 1000
			}
		}
		// slots past ctx hold stale positions: make them valid for the planner's checks
		off := 0
		for hd, t := range s.Tables {
			for j := s.Ctx[hd]; j < len(t)*b; j++ {
				pos[off+j] = 0
			}
			off += len(t) * b
		}
		hs, err := s.SplitSlots(b, metric, pos)
		if err != nil {
			return engine.CompressStats{}, err
		}
		in[i] = kvpages.SeqSlots{Seq: s, Slots: hs, Budget: budgets[i]}
	}
	plan, err := pl.Plan(in)
	if err != nil {
		return engine.CompressStats{}, err
	}
	for k := 0; k < len(plan.Moves); k += 2 {
		f.pos[plan.Moves[k+1]] = f.pos[plan.Moves[k]]
	}
	freed, err := plan.Apply(f.pool)
	if err != nil {
		return engine.CompressStats{}, err
	}
	for _, s := range seqs {
		if s.Blocks() == 0 {
			return engine.CompressStats{}, errors.New("fake: compression emptied a sequence")
		}
	}
	return engine.CompressStats{Seqs: len(seqs), EvictedKVs: plan.EvictedKVs(), FreedBlocks: freed, Moves: len(plan.Moves) / 2}, nil
}

// schedLetters decodes id to one letter, so stop strings are easy to hit.
type schedLetters struct{}

func (schedLetters) Push(id int) string { return string(rune('a' + id%4)) }
func (schedLetters) Flush() string      { return "" }

type schedWant struct {
	tokens []int
	text   string
	reason string
	eos    bool // stopped on EOS: every generated token was fed
}

// schedAlone generates r by itself with the fake logits: what the scheduler must reproduce.
func schedAlone(r engine.Request, vocab, context int, eos map[int]bool) schedWant {
	hist := append([]int(nil), r.Prompt...)
	smp := engine.NewSampler(r.Sampler)
	stop := engine.NewStopText(r.Stop)
	var w schedWant
	text := ""
	for gen := 0; ; {
		if gen >= r.MaxTokens {
			w.reason = engine.FinishLength
			break
		}
		next := smp.Sample(schedFakeLogits(hist, vocab), hist)
		if !r.IgnoreEOS && eos[next] {
			w.reason = engine.FinishStop
			w.eos = true
			break
		}
		hist = append(hist, next)
		gen++
		text += stop.Push(schedLetters{}.Push(next))
		if stop.Stopped {
			w.reason = engine.FinishStop
			break
		}
		if gen >= r.MaxTokens {
			w.reason = engine.FinishLength
			break
		}
		if len(hist) > context {
			w.reason = engine.FinishContext
			break
		}
	}
	if !stop.Stopped {
		text += stop.Flush()
	}
	w.tokens = hist[len(r.Prompt):]
	w.text = text
	return w
}

// Random pools, prompt lengths, budgets, pass shapes and arrival times: every request finishes exactly
// once with the tokens it gets alone (also after preemption), the pool is never over-committed and
// returns to empty, and nothing deadlocks.
func TestSchedulerProperties(t *testing.T) {
	const vocab, context = 12, 60
	var preemptions, preemptedOK, rounds, errorsSeen, mixed int
	trials := 1500
	if testing.Short() {
		trials = 200
	}
	for trial := 0; trial < trials; trial++ {
		rng := rand.New(rand.NewPCG(uint64(trial), 99))
		bs := []int{1, 2, 4, 8}[rng.IntN(4)]
		layers, heads := 1+rng.IntN(2), 1+rng.IntN(2)
		info := engine.ModelInfo{MaxRows: 4 + rng.IntN(40), Context: context, Window: rng.IntN(6),
			PromptMetric: rng.IntN(5) == 0, DecodeMetric: rng.IntN(2) == 0}
		perTok := layers * heads
		blocks := perTok * (2 + rng.IntN(60/bs+2))
		f := newSchedFake(blocks, bs, layers, heads, vocab, info)
		var pl *kvpages.Planner
		if rng.IntN(2) == 0 {
			o := kvpages.Options{Policy: kvpages.PolicyKVCompress, BlockSize: bs, Protect: rng.IntN(6),
				Budget: kvpages.Budget{MaxCacheTokens: 8 + rng.IntN(24)}, MaxKVPerRound: rng.IntN(3) * 40}
			var err error
			if pl, err = kvpages.NewPlanner(o); err != nil {
				t.Fatal(err)
			}
		}
		eos := map[int]bool{0: true}
		var reqs []engine.Request
		n := 1 + rng.IntN(14)
		for i := 0; i < n; i++ {
			r := engine.Request{ID: fmt.Sprint(i), MaxTokens: rng.IntN(30), IgnoreEOS: rng.IntN(4) == 0}
			for j := 0; j < 1+rng.IntN(40); j++ {
				r.Prompt = append(r.Prompt, rng.IntN(vocab))
			}
			if rng.IntN(3) == 0 {
				r.Sampler = engine.SamplerConfig{Temp: 0.9, TopK: 5, Seed: rng.Uint64()}
			}
			if rng.IntN(4) == 0 {
				r.Stop = []string{"ab", "ddd"}[rng.IntN(2):]
			}
			if pl != nil && rng.IntN(3) == 0 {
				r.Budget = kvpages.Budget{Rate: 1 + 3*rng.Float64()}
			}
			reqs = append(reqs, r)
		}
		got := map[string]engine.Result{}
		var sch *engine.Scheduler
		late := rng.IntN(n + 1) // requests from late on arrive while running, one per finished result
		cfg := engine.SchedulerConfig{Planner: pl, Interval: rng.IntN(4), MaxSeqs: rng.IntN(6), EOS: eos,
			SplitPasses: rng.IntN(3) == 0, NewDecoder: func() engine.TextDecoder { return schedLetters{} },
			OnResult: func(r engine.Result) {
				if _, dup := got[r.ID]; dup {
					t.Fatalf("trial %d: request %s finished twice", trial, r.ID)
				}
				got[r.ID] = r
				if late < n {
					sch.Submit(reqs[late])
					late++
				}
				if f.pool.InUse() > f.pool.Blocks() {
					t.Fatalf("pool over-committed")
				}
			}}
		var err error
		sch, err = engine.NewScheduler(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs[:late] {
			sch.Submit(r)
		}
		if late == 0 {
			sch.Submit(reqs[0])
			late = 1
		}
		if err := sch.Run(); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if len(got) != n {
			t.Fatalf("trial %d: %d of %d requests finished", trial, len(got), n)
		}
		if f.pool.InUse() != 0 {
			t.Fatalf("trial %d: %d blocks still in use after the run", trial, f.pool.InUse())
		}
		for _, r := range reqs {
			res := got[r.ID]
			w := schedAlone(r, vocab, context, eos)
			fedMax := len(r.Prompt) + len(w.tokens) - 1 // the last token is never fed...
			if w.eos {
				fedMax++ // ...unless an EOS was sampled after it
			}
			fitsAlone := r.MaxTokens == 0 || perTok*((max(fedMax, len(r.Prompt))+bs-1)/bs) <= blocks
			promptFits := r.MaxTokens == 0 || perTok*((len(r.Prompt)+bs-1)/bs) <= blocks
			if res.FinishReason == engine.FinishError {
				errorsSeen++
				if fitsAlone {
					t.Fatalf("trial %d req %s: failed though it fits the pool alone (%d blocks): %v", trial, r.ID, blocks, res.Err)
				}
				if res.Err == nil {
					t.Fatalf("trial %d req %s: error result without an error", trial, r.ID)
				}
				continue
			}
			if !promptFits {
				t.Fatalf("trial %d req %s: a prompt larger than the pool finished %q", trial, r.ID, res.FinishReason)
			}
			if !fitsAlone && pl == nil {
				t.Fatalf("trial %d req %s: finished %q though it needs more than the pool", trial, r.ID, res.FinishReason)
			}
			if fmt.Sprint(res.Tokens) != fmt.Sprint(w.tokens) || res.FinishReason != w.reason || res.Text != w.text {
				t.Fatalf("trial %d req %s (preempted %d): got %v %q %q, alone %v %q %q", trial, r.ID, res.Preemptions,
					res.Tokens, res.FinishReason, res.Text, w.tokens, w.reason, w.text)
			}
			if res.Preemptions > 0 && len(res.Tokens) > 0 {
				preemptedOK++
			}
		}
		st := sch.Stats()
		preemptions += st.Preemptions
		rounds += st.CompressRounds
		if st.MixedTime > 0 {
			mixed++
		}
		if st.PeakDecodeBatch > max(cfg.MaxSeqs, 0) && cfg.MaxSeqs > 0 {
			t.Fatalf("trial %d: decode batch %d above MaxSeqs %d", trial, st.PeakDecodeBatch, cfg.MaxSeqs)
		}
	}
	t.Logf("%d trials: %d preemptions (%d preempted requests completed), %d compression rounds, %d error results, %d runs with mixed passes",
		trials, preemptions, preemptedOK, rounds, errorsSeen, mixed)
	if preemptedOK == 0 || rounds == 0 || errorsSeen == 0 || mixed == 0 {
		t.Fatalf("the trials did not exercise preemption (%d), compression (%d), errors (%d) and mixed passes (%d)",
			preemptions, rounds, errorsSeen, mixed)
	}
}

// A prompt longer than the pool gets an error result at once while the others run; bad requests are
// refused by name.
func TestSchedulerRefusesWhatCannotRun(t *testing.T) {
	f := newSchedFake(8, 4, 1, 1, 10, engine.ModelInfo{MaxRows: 8, Context: 64})
	var got []engine.Result
	sch, err := engine.NewScheduler(f, engine.SchedulerConfig{OnResult: func(r engine.Result) { got = append(got, r) }})
	if err != nil {
		t.Fatal(err)
	}
	long := make([]int, 40) // 10 blocks, the pool has 8
	sch.Submit(engine.Request{ID: "long", Prompt: long, MaxTokens: 3})
	sch.Submit(engine.Request{ID: "ok", Prompt: []int{1, 2, 3}, MaxTokens: 3, IgnoreEOS: true})
	sch.Submit(engine.Request{ID: "empty", MaxTokens: 3})
	sch.Submit(engine.Request{ID: "ctx", Prompt: make([]int, 65), MaxTokens: 3})
	sch.Submit(engine.Request{ID: "stop", Prompt: []int{1}, MaxTokens: 3, Stop: []string{"x"}})
	sch.Submit(engine.Request{ID: "budget", Prompt: []int{1}, MaxTokens: 3, Budget: kvpages.Budget{Rate: 2}})
	if err := sch.Run(); err != nil {
		t.Fatal(err)
	}
	byID := map[string]engine.Result{}
	for _, r := range got {
		byID[r.ID] = r
	}
	if len(byID) != 6 {
		t.Fatalf("%d results: %+v", len(byID), got)
	}
	for _, id := range []string{"long", "empty", "ctx", "stop", "budget"} {
		if byID[id].FinishReason != engine.FinishError || byID[id].Err == nil {
			t.Errorf("%s: %+v, want an error result", id, byID[id])
		} else {
			t.Logf("%s: %v", id, byID[id].Err)
		}
	}
	if r := byID["ok"]; r.FinishReason != engine.FinishLength || len(r.Tokens) != 3 {
		t.Errorf("ok: %+v", r)
	}
}

// StopAdmitting finishes what is running and leaves the rest queued; Abort drops everything in flight.
func TestSchedulerStopAndAbort(t *testing.T) {
	f := newSchedFake(64, 4, 1, 1, 10, engine.ModelInfo{MaxRows: 8, Context: 64})
	var got []engine.Result
	var sch *engine.Scheduler
	sch, _ = engine.NewScheduler(f, engine.SchedulerConfig{MaxSeqs: 2, OnResult: func(r engine.Result) {
		got = append(got, r)
		sch.StopAdmitting()
	}})
	for i := 0; i < 6; i++ {
		sch.Submit(engine.Request{ID: fmt.Sprint(i), Prompt: []int{1, 2}, MaxTokens: 4 + i, IgnoreEOS: true})
	}
	if err := sch.Run(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || sch.Pending() != 4 || f.pool.InUse() != 0 {
		t.Fatalf("after StopAdmitting: %d results, %d pending, %d blocks in use; want 2, 4, 0", len(got), sch.Pending(), f.pool.InUse())
	}

	f = newSchedFake(64, 4, 1, 1, 10, engine.ModelInfo{MaxRows: 8, Context: 64})
	got = nil
	sch, _ = engine.NewScheduler(f, engine.SchedulerConfig{OnResult: func(r engine.Result) { got = append(got, r) }})
	sch.Submit(engine.Request{ID: "a", Prompt: []int{1, 2}, MaxTokens: 40, IgnoreEOS: true})
	for i := 0; i < 3; i++ {
		if _, err := sch.Step(); err != nil {
			t.Fatal(err)
		}
	}
	sch.Abort()
	if err := sch.Run(); !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("Run after Abort: %v", err)
	}
	if len(got) != 0 || f.pool.InUse() != 0 {
		t.Fatalf("abort emitted %d results and left %d blocks in use", len(got), f.pool.InUse())
	}
}

func schedPrompts(n, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 11))
	ps := make([][]int, n)
	for i := range ps {
		ps[i] = []int{1}
		for j := r.IntN(90); j >= 0; j-- {
			ps[i] = append(ps[i], 3+r.IntN(vocab-3))
		}
	}
	return ps
}

// runScheduled generates n tokens (EOS ignored) for each prompt through the scheduler.
func runScheduled(t *testing.T, e *engine.Engine, pl *kvpages.Planner, prompts [][]int, n int) ([][]int, engine.SchedulerStats) {
	out := make([][]int, len(prompts))
	seen := 0
	sch, err := engine.NewScheduler(e.BatchModel(), engine.SchedulerConfig{Planner: pl, OnResult: func(r engine.Result) {
		var i int
		fmt.Sscan(r.ID, &i)
		if r.Err != nil || out[i] != nil {
			t.Fatalf("request %d: %v (or finished twice)", i, r.Err)
		}
		out[i] = r.Tokens
		seen++
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		sch.Submit(engine.Request{ID: fmt.Sprint(i), Prompt: p, MaxTokens: n, IgnoreEOS: true})
	}
	if err := sch.Run(); err != nil {
		t.Fatal(err)
	}
	if seen != len(prompts) || e.Pool.InUse() != 0 {
		t.Fatalf("%d of %d results, %d blocks left in use", seen, len(prompts), e.Pool.InUse())
	}
	return out, sch.Stats()
}

// On stories260K, 20 requests through the scheduler give exactly the greedy tokens each gives alone: with
// a roomy pool, with chunked prefills beside decode rows, and with a pool so small that requests are
// preempted and recomputed. With compression and a small pool, everything still completes.
func testSchedulerRealModel(t *testing.T, b engine.Backend, nPrompts, n int, smallPool float64) {
	ck := openStories(t)
	cfg := ck.Config
	prompts := schedPrompts(nPrompts, cfg.Vocab, 5)
	alone := greedy(t, newEngine(t, b, ck, engine.Options{BlockSize: 16, MaxRows: 128}), prompts, n, false)
	perSeq := cfg.Layers * cfg.KVHeads * ((91 + n + 15) / 16) // blocks of the longest request
	for _, c := range []struct {
		name           string
		maxRows, pool  int
		wantPreemption bool
	}{
		{"roomy", 128, 16384, false},
		{"chunked", 24, 16384, false},
		{"small-pool", 32, int(smallPool * float64(perSeq)), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, b, ck, engine.Options{BlockSize: 16, MaxRows: c.maxRows, KVBlocks: c.pool})
			got, st := runScheduled(t, e, nil, prompts, n)
			for i := range prompts {
				if fmt.Sprint(got[i]) != fmt.Sprint(alone[i]) {
					t.Fatalf("prompt %d (%d tokens): scheduled %v, alone %v", i, len(prompts[i]), got[i], alone[i])
				}
			}
			t.Logf("peak batch %d, mean %.1f, %d preemptions, %d steps", st.PeakDecodeBatch, st.MeanDecodeBatch(), st.Preemptions, st.Steps)
			if c.wantPreemption && st.Preemptions == 0 {
				t.Fatalf("the small pool caused no preemption")
			}
			if c.name == "chunked" && st.MixedTime == 0 {
				t.Fatalf("no pass mixed prefill chunks with decode rows")
			}
		})
	}
	t.Run("compressed-small-pool", func(t *testing.T) {
		opt := engine.Options{BlockSize: 16, MaxRows: 32, KVBlocks: int(smallPool * float64(perSeq))}
		opt.SetMetric(kvpages.PolicyKVCompress.Metric(), 8, true)
		e := newEngine(t, b, ck, opt)
		pl, err := kvpages.NewPlanner(kvpages.Options{Policy: kvpages.PolicyKVCompress, BlockSize: 16, Protect: 16,
			Budget: kvpages.Budget{MaxCacheTokens: 32}})
		if err != nil {
			t.Fatal(err)
		}
		got, st := runScheduled(t, e, pl, prompts, n)
		for i := range got {
			if len(got[i]) != n {
				t.Fatalf("prompt %d: %d tokens, want %d", i, len(got[i]), n)
			}
		}
		t.Logf("compressed: peak batch %d, mean %.1f, %d preemptions, %d rounds evicting %d KVs", st.PeakDecodeBatch,
			st.MeanDecodeBatch(), st.Preemptions, st.CompressRounds, st.Compress.EvictedKVs)
		if st.CompressRounds == 0 || st.Compress.EvictedKVs == 0 {
			t.Fatalf("no compression happened")
		}
	})
}

func TestSchedulerRealModelCPU(t *testing.T) { testSchedulerRealModel(t, &cpu.Backend{}, 20, 24, 3) }

func TestSchedulerRealModelVulkan(t *testing.T) {
	testSchedulerRealModel(t, openVulkan(t), 6, 24, 1.5)
}

// A waiting scheduler (as a server runs it) streams every token through OnToken, finishes requests whose
// context is cancelled from another goroutine with their blocks back in the pool at once, and returns
// after Close when the queue is empty. The others equal their solo runs.
func TestSchedulerStreamCancelWait(t *testing.T) {
	const vocab, ctxLen = 12, 80
	f := newSchedFake(60, 4, 1, 2, vocab, engine.ModelInfo{MaxRows: 16, Context: ctxLen, Window: 2})
	eos := map[int]bool{0: true}
	type stream struct {
		ids  []int
		text string
	}
	streams := map[string]*stream{}
	results := make(chan engine.Result, 64)
	var sch *engine.Scheduler
	sch, err := engine.NewScheduler(f, engine.SchedulerConfig{Wait: true, MaxSeqs: 4, EOS: eos,
		NewDecoder: func() engine.TextDecoder { return schedLetters{} },
		OnResult: func(r engine.Result) {
			if r.FinishReason == engine.FinishCancelled && f.pool.InUse() != 0 && sch.Running() == 0 {
				t.Errorf("%s cancelled alone but %d blocks still in use", r.ID, f.pool.InUse())
			}
			results <- r
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- sch.Run() }()

	// Stream a batch, cancelling every third request after its second token.
	cancels, acked := make(chan func()), make(chan bool)
	var reqs []engine.Request
	for i := 0; i < 12; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		id := fmt.Sprint(i)
		st := &stream{}
		streams[id] = st
		r := engine.Request{ID: id, Prompt: []int{1, 2 + i%5, 3 + i%7}, MaxTokens: 10 + 3*i, IgnoreEOS: i%2 == 0,
			Ctx: ctx, Stop: []string{"dd"}}
		r.OnToken = func(tok int, text string) {
			st.ids = append(st.ids, tok)
			st.text += text
			if i%3 == 0 && len(st.ids) == 2 {
				cancels <- cancel // cancelled on another goroutine, before the next step
				<-acked
			}
		}
		reqs = append(reqs, r)
		sch.Submit(r)
	}
	go func() {
		for c := range cancels {
			c()
			acked <- true
		}
	}()
	got := map[string]engine.Result{}
	for len(got) < len(reqs) {
		select {
		case r := <-results:
			got[r.ID] = r
		case err := <-done:
			t.Fatalf("Run returned before Close: %v", err)
		}
	}
	// Idle now: Run must still be waiting; a request submitted later runs too, then Close ends Run.
	late := engine.Request{ID: "late", Prompt: []int{4, 4}, MaxTokens: 5, IgnoreEOS: true}
	sch.Submit(late)
	if r := <-results; r.ID != "late" || len(r.Tokens) != 5 {
		t.Fatalf("late request: %+v", r)
	}
	sch.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(cancels)
	if f.pool.InUse() != 0 {
		t.Fatalf("%d blocks in use after the run", f.pool.InUse())
	}
	cancelled := 0
	for i, r := range reqs {
		res, st := got[r.ID], streams[r.ID]
		w := schedAlone(r, vocab, ctxLen, eos)
		if fmt.Sprint(st.ids) != fmt.Sprint(res.Tokens) || !strings.HasPrefix(res.Text, st.text) {
			t.Fatalf("req %s: streamed %v %q, result %v %q", r.ID, st.ids, st.text, res.Tokens, res.Text)
		}
		if res.FinishReason == engine.FinishCancelled {
			cancelled++
			if i%3 != 0 || len(res.Tokens) < 2 || fmt.Sprint(w.tokens[:len(res.Tokens)]) != fmt.Sprint(res.Tokens) {
				t.Fatalf("req %s cancelled with %v; alone %v", r.ID, res.Tokens, w.tokens)
			}
			continue
		}
		if fmt.Sprint(res.Tokens) != fmt.Sprint(w.tokens) || res.Text != w.text || res.FinishReason != w.reason {
			t.Fatalf("req %s: %v %q %s, alone %v %q %s", r.ID, res.Tokens, res.Text, res.FinishReason, w.tokens, w.text, w.reason)
		}
	}
	if cancelled == 0 || sch.Stats().Cancelled != cancelled {
		t.Fatalf("%d requests cancelled, stats say %d", cancelled, sch.Stats().Cancelled)
	}
	t.Logf("%d of %d requests cancelled mid-stream", cancelled, len(reqs))
}

// A request cancelled while queued finishes without running.
func TestSchedulerCancelQueued(t *testing.T) {
	f := newSchedFake(64, 4, 1, 1, 10, engine.ModelInfo{MaxRows: 8, Context: 64})
	var got []engine.Result
	sch, _ := engine.NewScheduler(f, engine.SchedulerConfig{MaxSeqs: 1, OnResult: func(r engine.Result) { got = append(got, r) }})
	ctx, cancel := context.WithCancel(context.Background())
	sch.Submit(engine.Request{ID: "a", Prompt: []int{1, 2}, MaxTokens: 8, IgnoreEOS: true})
	sch.Submit(engine.Request{ID: "b", Prompt: []int{1, 2}, MaxTokens: 8, IgnoreEOS: true, Ctx: ctx})
	if _, err := sch.Step(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := sch.Run(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "b" || got[0].FinishReason != engine.FinishCancelled || len(got[0].Tokens) != 0 ||
		got[1].FinishReason != engine.FinishLength {
		t.Fatalf("results %+v", got)
	}
}
