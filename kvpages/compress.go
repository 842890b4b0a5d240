package kvpages

import "fmt"

// Compress runs one eviction round for the scheduler: Select the candidates, read back the chosen
// sequences' slots (read: the engine's ReadSlots over Seq.SlotBlocks, cut by Seq.SplitSlots), Plan,
// execute the moves on the device (move: the engine's CopyMoves, finished before it returns), then
// Apply. It returns the plan (nil when nothing was selected) and the selected candidate indices, whose
// RoundsSince the caller resets. If read, Plan or move fails, no table changes.
func (pl *Planner) Compress(pool *Pool, cands []Candidate, read func(s *Seq) ([]HeadSlots, error),
	move func(moves []int32) error) (*Plan, []int, error) {
	if pool.BlockSize() != pl.opts.BlockSize {
		return nil, nil, fmt.Errorf("kvpages: planner block size %d, pool block size %d", pl.opts.BlockSize, pool.BlockSize())
	}
	sel, err := pl.Select(cands)
	if err != nil || len(sel) == 0 {
		return nil, nil, err
	}
	in := make([]SeqSlots, len(sel))
	for k, i := range sel {
		c := cands[i]
		slots, err := read(c.Seq)
		if err != nil {
			return nil, nil, fmt.Errorf("kvpages: reading slots of candidate %d: %w", i, err)
		}
		in[k] = SeqSlots{Seq: c.Seq, Slots: slots, Budget: c.Budget}
	}
	plan, err := pl.Plan(in)
	if err != nil {
		return nil, nil, err
	}
	if len(plan.Moves) > 0 {
		if err := move(plan.Moves); err != nil {
			return nil, nil, fmt.Errorf("kvpages: executing %d cache moves: %w", len(plan.Moves)/2, err)
		}
	}
	if _, err := plan.Apply(pool); err != nil {
		return nil, nil, err
	}
	return plan, sel, nil
}
