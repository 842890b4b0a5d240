package engine

import (
	"fmt"
	"math"

	"kvc/kvpages"
)

// ReadHeadSlots reads back the metric and position of every slot of s's blocks, cut per (layer, KV head).
// The metrics are those compression ranks by: with MetricValueNorm, times the L1 norm of each KV's value;
// with MetricAvg, divided by the queries that added to each KV.
func (e *Engine) ReadHeadSlots(s *kvpages.Seq) ([]kvpages.HeadSlots, error) {
	hs, err := e.readHeadSlots([]*kvpages.Seq{s})
	if err != nil {
		return nil, err
	}
	return hs[0], nil
}

// readHeadSlots reads the slots of several sequences back with one ReadSlots (one submission).
func (e *Engine) readHeadSlots(seqs []*kvpages.Seq) ([][]kvpages.HeadSlots, error) {
	b := e.Opt.BlockSize
	var blocks []int32
	ends := make([]int, len(seqs))
	for i, s := range seqs {
		blocks = append(blocks, s.SlotBlocks()...)
		ends[i] = len(blocks) * b
	}
	metric := make([]float32, len(blocks)*b)
	pos := make([]int32, len(blocks)*b)
	var vnorm []float32
	if e.Opt.MetricValueNorm {
		vnorm = make([]float32, len(blocks)*b)
	}
	e.boundKV()
	if err := e.B.ReadSlots(e.KV, blocks, metric, pos, vnorm); err != nil {
		return nil, fmt.Errorf("engine: reading metrics back: %w", err)
	}
	out := make([][]kvpages.HeadSlots, len(seqs))
	beg := 0
	for i, s := range seqs {
		m, p := metric[beg:ends[i]], pos[beg:ends[i]]
		if vnorm != nil {
			// VATP: a KV adds p*v to its head's output; its value's norm is a constant of the slot, so the
			// summed p times the norm is the summed contribution. +Inf stays +Inf (it never goes).
			for j, q := range p {
				if q >= 0 && !math.IsInf(float64(m[j]), 1) {
					m[j] *= vnorm[beg+j]
				}
			}
		}
		if e.Opt.MetricAvg {
			// L2-avg (the reference's -avg aggregation): divide by the queries that added to each KV (those
			// at least MetricBuffer positions after it), so old KVs are not favoured just for having been
			// attended longer.
			for j, q := range p {
				if q >= 0 {
					m[j] /= float32(max(s.NextPos-int(q)-e.Opt.MetricBuffer, 1))
				}
			}
		}
		hs, err := s.SplitSlots(b, m, p)
		if err != nil {
			return nil, err
		}
		out[i], beg = hs, ends[i]
	}
	return out, nil
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
