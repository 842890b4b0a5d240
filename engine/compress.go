package engine

import (
	"fmt"
	"time"

	"kvc/kvpages"
)

// DefaultWindow is the paper's observation window w: the last w prompt rows add to a windowed metric.
const DefaultWindow = 8

// SetMetric sets the options' metric collection for metric m (a policy's, kvpages.Policy.MetricWith): the
// observation window w (max-pooled with pool7) or every prompt query, and decode-time accumulation. window
// < 0 is m's own collection (the window DefaultWindow, or every prompt query); window >= 0 chooses the
// window for the per-query means too (every prompt query costs one metric pass per prompt row). h2o's
// summed metric always takes every prompt query.
func (o *Options) SetMetric(m kvpages.MetricSource, window int, pool7 bool) {
	o.Metric, o.Window, o.Pool7, o.PromptMetric, o.SquaredWindow, o.MetricAvg, o.MetricBuffer = MetricNone, 0, false, false, false, false, 0
	o.MetricValueNorm = false
	if !m.Needed {
		return
	}
	if m.Decode {
		o.Metric = MetricPlain
		if m.Squared {
			o.Metric = MetricSquared
		}
	}
	o.SquaredWindow, o.MetricAvg, o.MetricBuffer, o.MetricValueNorm = m.Squared, m.PerQuery, m.Buffer, m.ValueNorm
	if m.ObservationWindow || m.PerQuery && window >= 0 {
		if window < 0 {
			window = DefaultWindow
		}
		o.Window, o.Pool7 = window, pool7
	} else {
		o.PromptMetric = true
	}
}

// CompressStats describe one compression round.
type CompressStats struct {
	Seqs        int // sequences planned
	EvictedKVs  int
	FreedBlocks int
	Moves       int
	Time        time.Duration
}

// Compress runs one eviction round over the given sequences with planner pl: it picks the sequences over
// their budgets (budgets[i], or the planner's when nil/zero), reads back only their metrics and positions,
// plans, moves the retained KVs on the device and returns the freed blocks to the pool.
func (e *Engine) Compress(pl *kvpages.Planner, seqs []*Sequence, budgets []kvpages.Budget, roundsSince []int) (CompressStats, error) {
	start := time.Now()
	var st CompressStats
	if pl.Options().BlockSize != e.Opt.BlockSize {
		return st, fmt.Errorf("engine: planner block size %d differs from the cache's %d", pl.Options().BlockSize, e.Opt.BlockSize)
	}
	cands := make([]kvpages.Candidate, len(seqs))
	for i, s := range seqs {
		cands[i] = kvpages.Candidate{Seq: s.KV}
		if budgets != nil {
			cands[i].Budget = budgets[i]
		}
		if roundsSince != nil {
			cands[i].RoundsSince = roundsSince[i]
		}
	}
	pick, err := pl.Select(cands)
	if err != nil || len(pick) == 0 {
		return st, err
	}
	picked := make([]*kvpages.Seq, len(pick))
	for j, i := range pick {
		picked[j] = seqs[i].KV
	}
	slots, err := e.readHeadSlots(picked)
	if err != nil {
		return st, err
	}
	in := make([]kvpages.SeqSlots, len(pick))
	for j, i := range pick {
		in[j] = kvpages.SeqSlots{Seq: picked[j], Slots: slots[j], Budget: cands[i].Budget}
	}
	plan, err := pl.Plan(in)
	if err != nil {
		return st, err
	}
	n := len(plan.Moves) / 2
	if n > 0 {
		if err := e.ensureMoves(n); err != nil {
			return st, err
		}
		if err := e.B.Write(e.moves, 0, i32bytes(plan.Moves)); err != nil {
			return st, err
		}
		// No Sync: the copies ride in the next submission, ahead of (and ordered by barriers with) the
		// next step's writes into the blocks this round frees, so a round costs one submission, its read-back.
		e.boundKV() // moves stay within blocks in use before Apply frees any
		e.B.CopyMoves(e.KV, e.moves, n)
	}
	freed, err := plan.Apply(e.Pool)
	if err != nil {
		return st, err
	}
	st = CompressStats{Seqs: len(in), EvictedKVs: plan.EvictedKVs(), FreedBlocks: freed, Moves: n, Time: time.Since(start)}
	return st, nil
}

func (e *Engine) ensureMoves(n int) error {
	if n <= e.moveCap {
		return nil
	}
	if e.moves != nil {
		e.B.Free(e.moves)
	}
	c := max(2*n, 4096)
	m, err := e.B.Alloc(int64(c) * 8)
	if err != nil {
		return fmt.Errorf("engine: move list of %d moves: %w", c, err)
	}
	e.moves, e.moveCap = m, c
	return nil
}
