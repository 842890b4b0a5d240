package gpu

import (
	"fmt"
	"sort"
	"time"
)

// ProbeResult is what Probe measures on a device.
type ProbeResult struct {
	CopyBytes       int64   // size of the copied buffer
	CopyGBps        float64 // (bytes read + bytes written) / GPU time, median of the runs
	CopyTimed       string  // "timestamps" or "wall clock" (no timestamps on the queue)
	DispatchUs      float64 // median wall time of record + submit + wait of one tiny dispatch
	BatchDispatchUs float64 // median wall time per dispatch of 100 tiny dependent dispatches in one submission
}

const copyGroup = 256

// CopyKernel is the 16-bytes-per-invocation buffer copy (copy.spv).
func (b *Backend) CopyKernel() (*Kernel, error) {
	return b.Kernel("copy", []uint32{copyGroup}, PushSize[countPush](), []int{1, 1})
}

// DispatchCopy records dst = src with the copy shader; both ranges are the same multiple of 16 bytes.
func (b *Backend) DispatchCopy(dst, src Range) {
	k, err := b.CopyKernel()
	if err != nil {
		b.Fail(err)
		return
	}
	if src.Buf == nil || dst.Buf == nil {
		b.Fail(fmt.Errorf("gpu: DispatchCopy of a non-gpu buffer"))
		return
	}
	n := src.length()
	if n%16 != 0 || dst.length() != n {
		b.Fail(fmt.Errorf("gpu: DispatchCopy of %d bytes into %d: both must be equal multiples of 16", n, dst.length()))
		return
	}
	b.Dispatch(k, b.Groups1D(int(n/16), copyGroup), PushBytes(&countPush{Count: uint32(n / 16)}), []Range{src}, []Range{dst})
}

// timeGPU runs record, submits it and returns the GPU time between its first and last command (wall time
// when the queue has no timestamps).
func (b *Backend) timeGPU(record func()) (time.Duration, bool, error) {
	if err := b.Sync(); err != nil {
		return 0, false, err
	}
	if !b.caps.TimestampsSupported {
		t0 := time.Now()
		record()
		err := b.Sync()
		return time.Since(t0), false, err
	}
	if b.probePool == 0 {
		p, err := b.dev.CreateQueryPool(2)
		if err != nil {
			return 0, false, err
		}
		b.probePool = p
	}
	if !b.begin() {
		return 0, false, b.Sync()
	}
	b.dev.CmdResetQueries(b.rec.cmd, b.probePool, 0, 2)
	b.dev.CmdTimestamp(b.rec.cmd, b.probePool, 0)
	record()
	b.dev.CmdTimestamp(b.rec.cmd, b.probePool, 1)
	if err := b.Sync(); err != nil {
		return 0, false, err
	}
	var ts [2]uint64
	if err := b.dev.QueryResults(b.probePool, 0, ts[:]); err != nil {
		return 0, false, err
	}
	ns := float64((ts[1]-ts[0])&tsMask(b.info.Limits.TimestampValidBits)) * b.caps.TimestampPeriodNs
	return time.Duration(ns), true, nil
}

func median(d []float64) float64 {
	s := append([]float64(nil), d...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// CopyBandwidth copies a buffer of bytes (a multiple of 16, bound whole) runs times with the copy shader and
// returns the median GB/s counting bytes read plus bytes written.
func (b *Backend) CopyBandwidth(bytes int64, runs int) (gbps float64, timed string, err error) {
	src, err := b.AllocBinding(bytes)
	if err != nil {
		return 0, "", err
	}
	defer b.Free(src)
	dst, err := b.AllocBinding(bytes)
	if err != nil {
		return 0, "", err
	}
	defer b.Free(dst)
	b.Fill(Whole(src), 0x3f800000)
	b.DispatchCopy(Whole(dst), Whole(src)) // warm-up: pipeline, descriptor set, first touch of the pages
	var rates []float64
	timed = "wall clock"
	for i := 0; i < runs; i++ {
		d, ts, err := b.timeGPU(func() { b.DispatchCopy(Whole(dst), Whole(src)) })
		if err != nil {
			return 0, "", err
		}
		if ts {
			timed = "timestamps"
		}
		rates = append(rates, float64(2*bytes)/d.Seconds()/1e9)
	}
	return median(rates), timed, nil
}

// DispatchOverhead returns the median wall time of one tiny dispatch recorded, submitted and waited for,
// and the median wall time per dispatch of batch dependent tiny dispatches in one submission.
func (b *Backend) DispatchOverhead(runs, batch int) (single, perDispatch time.Duration, err error) {
	buf, err := b.AllocBuffer(256)
	if err != nil {
		return 0, 0, err
	}
	defer b.Free(buf)
	b.Fill(Whole(buf), 0)
	if err := b.Sync(); err != nil {
		return 0, 0, err
	}
	var one, many []float64
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		b.Fill(Whole(buf), uint32(i))
		if err := b.Sync(); err != nil {
			return 0, 0, err
		}
		one = append(one, float64(time.Since(t0)))
		t0 = time.Now()
		for j := 0; j < batch; j++ {
			b.Fill(Whole(buf), uint32(j))
		}
		if err := b.Sync(); err != nil {
			return 0, 0, err
		}
		many = append(many, float64(time.Since(t0))/float64(batch))
	}
	return time.Duration(median(one)), time.Duration(median(many)), nil
}

// ProbeCopyBytes is the buffer size Probe copies: 256 MiB, or less where a binding or the heap is smaller.
func (b *Backend) ProbeCopyBytes() int64 {
	n := int64(256 << 20)
	if b.caps.MaxStorageBufferRange < n {
		n = b.caps.MaxStorageBufferRange
	}
	if heap := b.info.Heaps[b.info.MemoryTypes[b.mem.devType].Heap].Size; int64(heap/8) < n {
		n = int64(heap / 8)
	}
	return n &^ 15
}

// Probe measures copy bandwidth and dispatch overhead.
func (b *Backend) Probe() (ProbeResult, error) {
	var r ProbeResult
	r.CopyBytes = b.ProbeCopyBytes()
	var err error
	if r.CopyGBps, r.CopyTimed, err = b.CopyBandwidth(r.CopyBytes, 5); err != nil {
		return r, err
	}
	one, per, err := b.DispatchOverhead(30, 100)
	if err != nil {
		return r, err
	}
	r.DispatchUs = float64(one) / 1e3
	r.BatchDispatchUs = float64(per) / 1e3
	return r, nil
}
