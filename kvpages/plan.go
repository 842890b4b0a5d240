package kvpages

import (
	"errors"
	"fmt"
	"sort"
)

// Planner plans eviction rounds under fixed Options. It keeps scratch memory between rounds, so one
// Planner must not be used by two goroutines at once.
type Planner struct {
	opts    Options
	keys    []uint64   // per head: evictable slots as key<<32 | logical index, heads back to back
	sorted  []uint64   // per head: the sorted slots of one histogram bucket
	hist    []int32    // per head: histBuckets cumulative counts of the keys' buckets
	scratch [][]uint64 // per worker: radix-sort scratch
	shift   uint       // bucket of a key entry v: v >> shift
}

// NewPlanner validates opts (see Options.Validate) and returns a planner.
func NewPlanner(opts Options) (*Planner, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Planner{opts: opts}, nil
}

// Options returns the planner's options.
func (pl *Planner) Options() Options { return pl.opts }

// Candidate is a sequence the engine might compress this round.
type Candidate struct {
	Seq         *Seq
	Budget      Budget // zero value: Options.Budget
	RoundsSince int    // rounds since this sequence was last compressed (or since it was admitted)
}

// Select picks the candidates to plan this round, before the engine reads any metrics back: those that
// are over budget, most rounds since their last compression first (ties in input order), added while
// the sum of their slots (blocks*b) stays within MaxKVPerRound. The first one is always taken, so a
// sequence larger than the cap is still compressed. It returns indices into cands.
func (pl *Planner) Select(cands []Candidate) ([]int, error) {
	var idx []int
	for i, c := range cands {
		if c.Seq == nil {
			return nil, fmt.Errorf("kvpages: candidate %d has no sequence", i)
		}
		if c.Budget.set() {
			if err := pl.opts.checkBudget(c.Budget); err != nil {
				return nil, fmt.Errorf("candidate %d: %w", i, err)
			}
		}
		if pl.needsWork(c.Seq, c.Budget) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return cands[idx[a]].RoundsSince > cands[idx[b]].RoundsSince })
	if pl.opts.MaxKVPerRound == 0 {
		return idx, nil
	}
	total := 0
	for n, i := range idx {
		kv := cands[i].Seq.Blocks() * pl.opts.BlockSize
		if n > 0 && total+kv > pl.opts.MaxKVPerRound {
			return idx[:n], nil
		}
		total += kv
	}
	return idx, nil
}

// needsWork says whether planning s can evict anything under its budget.
func (pl *Planner) needsWork(s *Seq, b Budget) bool {
	switch pl.opts.Policy {
	case PolicyFull:
		return false
	case PolicyKVCompress:
		return pl.opts.Excess(s, b) > 0
	}
	k := pl.headBlocks(s, b)
	for _, t := range s.Tables {
		if len(t) > k {
			return true
		}
	}
	return false
}

// headBlocks is the per-head block count of the baselines: ceil(C/b).
func (pl *Planner) headBlocks(s *Seq, b Budget) int {
	if !b.set() {
		b = pl.opts.Budget
	}
	return ceilDiv(pl.opts.budgetTokens(b, s.NextPos), pl.opts.BlockSize)
}

// SeqSlots is one sequence to plan, with its slots as read back from the device.
type SeqSlots struct {
	Seq    *Seq
	Slots  []HeadSlots // [layer*KVHeads + kvHead]; may be nil for PolicyFull
	Budget Budget      // zero value: Options.Budget
}

// Plan is one eviction round. The engine copies Moves on the device (Backend.CopyMoves), then calls
// Apply to shrink the tables and return the freed blocks to the pool.
type Plan struct {
	Policy    Policy
	BlockSize int
	Seqs      []SeqPlan
	// Moves are (src, dst) global slot ids (block*b + offset), flattened: the argument of CopyMoves. No
	// destination is a source, and each head's moves stay inside that head's blocks.
	Moves   []int32
	applied bool
}

// SeqPlan is one sequence's part of a Plan.
type SeqPlan struct {
	Seq          *Seq
	BudgetBlocks int // blocks the sequence may keep
	Excess       int // E_s: blocks in use - budget, before capping at the evictable blocks
	Heads        []HeadPlan
}

// HeadPlan is one (layer, KV head)'s part of a Plan. Heads that evict nothing have EvictedBlocks 0,
// NewCtx = OldCtx and no moves.
type HeadPlan struct {
	OldCtx, OldBlocks int
	EvictedBlocks     int     // e_h: tail blocks freed
	Evicted           []int32 // logical indices evicted, ascending: (e_h-1)*b + a of them, a = OldCtx%b (b if 0)
	NewCtx            int     // (OldBlocks - e_h)*b when e_h > 0
	Free              []int32 // the last e_h entries of the table, freed by Apply
	MoveOff, MoveN    int     // this head's moves are Plan.Moves[2*MoveOff : 2*(MoveOff+MoveN)]
}

// EvictedKVs is the number of KVs the plan evicts.
func (p *Plan) EvictedKVs() int {
	n := 0
	for _, s := range p.Seqs {
		for _, h := range s.Heads {
			n += len(h.Evicted)
		}
	}
	return n
}

// FreedBlocks is the number of blocks Apply returns to the pool.
func (p *Plan) FreedBlocks() int {
	n := 0
	for _, s := range p.Seqs {
		for _, h := range s.Heads {
			n += len(h.Free)
		}
	}
	return n
}

// Plan plans one round for the given sequences (normally those Select picked). Sequences with nothing to
// evict get a SeqPlan whose heads evict nothing.
func (pl *Planner) Plan(in []SeqSlots) (*Plan, error) {
	o := pl.opts
	b := o.BlockSize
	seen := make(map[*Seq]bool, len(in))
	for si, x := range in {
		if x.Seq == nil {
			return nil, fmt.Errorf("kvpages: seq %d: no sequence", si)
		}
		if seen[x.Seq] {
			return nil, fmt.Errorf("kvpages: seq %d: sequence appears twice in one plan", si)
		}
		seen[x.Seq] = true
		if x.Budget.set() {
			if err := o.checkBudget(x.Budget); err != nil {
				return nil, fmt.Errorf("seq %d: %w", si, err)
			}
		}
		if o.Policy == PolicyFull {
			continue
		}
		if err := checkShape(si, x.Seq, x.Slots, b); err != nil {
			return nil, err
		}
	}
	plan := &Plan{Policy: o.Policy, BlockSize: b, Seqs: make([]SeqPlan, len(in))}
	for si, x := range in {
		s := x.Seq
		sp := &plan.Seqs[si]
		*sp = SeqPlan{Seq: s, BudgetBlocks: o.BudgetBlocks(s, x.Budget), Heads: make([]HeadPlan, len(s.Tables))}
		sp.Excess = max(0, s.Blocks()-sp.BudgetBlocks)
		for hd := range sp.Heads {
			sp.Heads[hd] = HeadPlan{OldCtx: s.Ctx[hd], OldBlocks: len(s.Tables[hd]), NewCtx: s.Ctx[hd]}
		}
		if !pl.needsWork(s, x.Budget) {
			if o.Policy != PolicyFull {
				if err := checkValues(si, s, x.Slots); err != nil {
					return nil, err
				}
			}
			continue
		}
		ranks, err := pl.keyHeads(si, s, x.Slots, o.protectFor(s, x.Budget))
		if err != nil {
			return nil, err
		}
		counts := make([]int, len(s.Tables))
		if o.Policy == PolicyKVCompress {
			if o.Floor > 0 {
				f := o.floorBlocks(s, x.Budget)
				for hd := range ranks {
					ranks[hd].nb = min(ranks[hd].nb, max(0, len(s.Tables[hd])-f))
				}
			}
			pl.selectGlobal(ranks, sp.Excess, counts)
		} else {
			k := pl.headBlocks(s, x.Budget)
			for hd := range ranks {
				counts[hd] = min(max(0, len(s.Tables[hd])-k), ranks[hd].nb)
			}
		}
		pl.compact(plan, sp, ranks, counts)
	}
	return plan, nil
}

// ErrPlanStale is returned by Apply when a sequence changed between planning and applying.
var ErrPlanStale = errors.New("kvpages: plan is stale")

// Apply shrinks every planned head to its new context, drops the freed tail blocks from its table and
// releases them to the pool. Call it after the engine has executed Moves on the device. It checks the
// whole plan first and changes nothing when a sequence no longer matches it. It returns the blocks freed.
func (p *Plan) Apply(pool *Pool) (int, error) {
	if p.applied {
		return 0, fmt.Errorf("kvpages: plan applied twice")
	}
	if pool.BlockSize() != p.BlockSize {
		return 0, fmt.Errorf("kvpages: plan for block size %d applied to a pool of block size %d", p.BlockSize, pool.BlockSize())
	}
	for si, sp := range p.Seqs {
		s := sp.Seq
		if len(s.Tables) != len(sp.Heads) {
			return 0, fmt.Errorf("%w: seq %d has %d heads, planned %d", ErrPlanStale, si, len(s.Tables), len(sp.Heads))
		}
		for hd, hp := range sp.Heads {
			if hp.EvictedBlocks == 0 {
				continue
			}
			if s.Ctx[hd] != hp.OldCtx || len(s.Tables[hd]) != hp.OldBlocks {
				return 0, fmt.Errorf("%w: seq %d head %d has context %d in %d blocks, planned for %d in %d",
					ErrPlanStale, si, hd, s.Ctx[hd], len(s.Tables[hd]), hp.OldCtx, hp.OldBlocks)
			}
			for _, id := range hp.Free {
				if id < 0 || int(id) >= pool.Blocks() || !pool.owned[id] {
					return 0, fmt.Errorf("%w: seq %d head %d frees block %d that the pool does not hold as in use", ErrPlanStale, si, hd, id)
				}
			}
		}
	}
	freed := 0
	for _, sp := range p.Seqs {
		s := sp.Seq
		s.Edits++
		for hd, hp := range sp.Heads {
			if hp.EvictedBlocks == 0 {
				continue
			}
			for _, id := range hp.Free {
				pool.Release(id)
			}
			freed += len(hp.Free)
			s.Tables[hd] = s.Tables[hd][:hp.OldBlocks-hp.EvictedBlocks]
			s.Ctx[hd] = hp.NewCtx
		}
	}
	p.applied = true
	return freed, nil
}
