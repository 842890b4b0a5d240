package engine

import (
	"fmt"

	"kvc/kvpages"
)

// ReadHeadSlots reads back the metric and position of every slot of s's blocks, cut per (layer, KV head).
// The metrics are those compression ranks by: with MetricAvg, divided by the queries each KV has seen.
func (e *Engine) ReadHeadSlots(s *kvpages.Seq) ([]kvpages.HeadSlots, error) {
	b := e.Opt.BlockSize
	blocks := s.SlotBlocks()
	metric := make([]float32, len(blocks)*b)
	pos := make([]int32, len(blocks)*b)
	if err := e.B.ReadSlots(e.KV, blocks, metric, pos); err != nil {
		return nil, fmt.Errorf("engine: reading metrics back: %w", err)
	}
	if e.Opt.MetricAvg {
		// L2-avg (the reference's -avg aggregation): divide by the queries each KV has seen, so old KVs
		// are not favoured just for having been attended longer.
		for j, p := range pos {
			if p >= 0 {
				metric[j] /= float32(max(s.NextPos-int(p), 1))
			}
		}
	}
	return s.SplitSlots(b, metric, pos)
}

// CacheView is a read-only snapshot of s's cache (kept positions and metrics per head, blocks, pool use)
// under the eviction options opts, with l the eviction rounds so far.
func (e *Engine) CacheView(s *Sequence, opts kvpages.Options, l kvpages.Ledger) (*kvpages.CacheView, error) {
	hs, err := e.ReadHeadSlots(s.KV)
	if err != nil {
		return nil, err
	}
	return kvpages.NewCacheView(e.Pool, s.KV, hs, opts, e.KV.BlockBytes(), l)
}
