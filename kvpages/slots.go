package kvpages

import "fmt"

// HeadSlots is what the engine reads back from the device for one (sequence, layer*KVHeads+kvHead): the
// metric and token position of every slot of the head's blocks, in the head's logical order (block
// Tables[hd][i/b], offset i%b), len(Tables[hd])*b entries each. Slots at logical index >= Ctx are ignored.
type HeadSlots struct {
	Metric []float32
	Pos    []int32
}

// SlotBlocks lists every block of s, head after head in logical order: the blocks argument of the
// engine's ReadSlots. SplitSlots cuts the result back into HeadSlots.
func (s *Seq) SlotBlocks() []int32 {
	out := make([]int32, 0, s.Blocks())
	for _, t := range s.Tables {
		out = append(out, t...)
	}
	return out
}

// SplitSlots cuts metric and pos, read for s.SlotBlocks(), into one HeadSlots per head (no copy).
func (s *Seq) SplitSlots(blockSize int, metric []float32, pos []int32) ([]HeadSlots, error) {
	want := s.Blocks() * blockSize
	if len(metric) != want || len(pos) != want {
		return nil, fmt.Errorf("kvpages: slot read-back has %d metrics and %d positions, want %d (%d blocks of %d)",
			len(metric), len(pos), want, s.Blocks(), blockSize)
	}
	out := make([]HeadSlots, len(s.Tables))
	off := 0
	for hd, t := range s.Tables {
		n := len(t) * blockSize
		out[hd] = HeadSlots{Metric: metric[off : off+n : off+n], Pos: pos[off : off+n : off+n]}
		off += n
	}
	return out, nil
}

// checkShape validates one sequence's tables and read-back sizes before planning.
func checkShape(si int, s *Seq, slots []HeadSlots, b int) error {
	nh := s.Layers * s.KVHeads
	if len(s.Tables) != nh || len(s.Ctx) != nh {
		return fmt.Errorf("kvpages: seq %d: %d tables and %d context lengths for %d layers x %d KV heads",
			si, len(s.Tables), len(s.Ctx), s.Layers, s.KVHeads)
	}
	if len(slots) != nh {
		return fmt.Errorf("kvpages: seq %d: %d head slot read-backs, want %d (layers x KV heads)", si, len(slots), nh)
	}
	for hd, hs := range slots {
		l, h := hd/s.KVHeads, hd%s.KVHeads
		c, nb := s.Ctx[hd], len(s.Tables[hd])
		if c < 0 || nb != ceilDiv(c, b) {
			return fmt.Errorf("kvpages: seq %d layer %d head %d: context %d needs %d blocks of %d, table has %d",
				si, l, h, c, ceilDiv(max(c, 0), b), b, nb)
		}
		if len(hs.Metric) != nb*b || len(hs.Pos) != nb*b {
			return fmt.Errorf("kvpages: seq %d layer %d head %d: %d metrics and %d positions, want %d (%d blocks of %d)",
				si, l, h, len(hs.Metric), len(hs.Pos), nb*b, nb, b)
		}
	}
	return nil
}

// badSlot says why a live slot's read-back is invalid (nil if it is valid): a NaN metric, or a position
// that was never written or lies beyond the sequence.
func badSlot(si int, s *Seq, hd, i int, m float32, p int32) error {
	if m != m {
		return fmt.Errorf("kvpages: seq %d layer %d head %d slot %d: metric is NaN", si, hd/s.KVHeads, hd%s.KVHeads, i)
	}
	if p < 0 || int(p) >= s.NextPos {
		return fmt.Errorf("kvpages: seq %d layer %d head %d slot %d: position %d outside [0, %d) (NextPos)",
			si, hd/s.KVHeads, hd%s.KVHeads, i, p, s.NextPos)
	}
	return nil
}

// firstErr returns the first non-nil error (the lowest head's, when errs is per head).
func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkValues validates every live slot of a sequence that keyHeads will not scan.
func checkValues(si int, s *Seq, slots []HeadSlots) error {
	errs := make([]error, len(slots))
	parallelFor(len(slots), func(_, hd int) {
		hs := slots[hd]
		for i := range s.Ctx[hd] {
			if err := badSlot(si, s, hd, i, hs.Metric[i], hs.Pos[i]); err != nil {
				errs[hd] = err
				return
			}
		}
	})
	return firstErr(errs)
}
