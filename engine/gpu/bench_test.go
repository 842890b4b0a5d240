package gpu

import (
	"testing"
	"time"
)

// BenchmarkCopy: the copy shader over a buffer of ProbeCopyBytes; MB/s counts bytes read + written per
// submission (wall time), gpu-GB/s is from timestamps.
func BenchmarkCopy(bb *testing.B) {
	b := OpenForTest(bb)
	n := b.ProbeCopyBytes()
	src, err := b.AllocBinding(n)
	if err != nil {
		bb.Fatal(err)
	}
	dst, err := b.AllocBinding(n)
	if err != nil {
		bb.Fatal(err)
	}
	b.Fill(Whole(src), 1)
	b.DispatchCopy(Whole(dst), Whole(src))
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
	bb.SetBytes(2 * n)
	bb.ResetTimer()
	var gpu time.Duration
	for i := 0; i < bb.N; i++ {
		d, _, err := b.timeGPU(func() { b.DispatchCopy(Whole(dst), Whole(src)) })
		if err != nil {
			bb.Fatal(err)
		}
		gpu += d
	}
	bb.ReportMetric(float64(2*n)*float64(bb.N)/gpu.Seconds()/1e9, "gpu-GB/s")
}

// BenchmarkDispatch: one tiny dispatch recorded, submitted and waited for.
func BenchmarkDispatch(bb *testing.B) {
	b := OpenForTest(bb)
	buf, _ := b.AllocBuffer(256)
	b.Fill(Whole(buf), 0)
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
	bb.ResetTimer()
	for i := 0; i < bb.N; i++ {
		b.Fill(Whole(buf), uint32(i))
		if err := b.Sync(); err != nil {
			bb.Fatal(err)
		}
	}
}

// BenchmarkDispatchBatch: 100 dependent tiny dispatches per submission; ns/op is per dispatch.
func BenchmarkDispatchBatch(bb *testing.B) {
	b := OpenForTest(bb)
	buf, _ := b.AllocBuffer(256)
	b.Fill(Whole(buf), 0)
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
	bb.ResetTimer()
	for i := 0; i < bb.N; i++ {
		b.Fill(Whole(buf), uint32(i))
		if i%100 == 99 {
			if err := b.Sync(); err != nil {
				bb.Fatal(err)
			}
		}
	}
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
}

func TestProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("probe copies a large buffer")
	}
	b := OpenForTest(t)
	// A small copy checks the shader's result; Probe's numbers must be positive and finite.
	const n = 4096*16 + 48
	src, _ := b.AllocBuffer(n)
	dst, _ := b.AllocBuffer(n)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	if err := b.Write(src, 0, data); err != nil {
		t.Fatal(err)
	}
	b.Fill(Whole(dst), 0)
	b.DispatchCopy(Whole(dst), Whole(src))
	got := make([]byte, n)
	if err := b.Read(dst, 0, got); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != data[i] {
			t.Fatalf("byte %d = %d, want %d", i, got[i], data[i])
		}
	}
	gbps, timed, err := b.CopyBandwidth(16<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	one, per, err := b.DispatchOverhead(5, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copy 16 MiB: %.2f GB/s (%s); dispatch %v, batched %v per dispatch", gbps, timed, one, per)
	if !(gbps > 0) || one <= 0 || per <= 0 {
		t.Errorf("implausible measurements: %v GB/s, %v, %v", gbps, one, per)
	}
}

// BenchmarkRecord: the host cost of recording one dispatch (cached kernel and descriptor set), without
// the submission.
func BenchmarkRecord(bb *testing.B) {
	b := OpenForTest(bb)
	k, err := b.CopyKernel()
	if err != nil {
		bb.Fatal(err)
	}
	src, _ := b.AllocBuffer(1024)
	dst, _ := b.AllocBuffer(1024)
	push := PushBytes(&countPush{Count: 64})
	s, d := []Range{Whole(src)}, []Range{Whole(dst)}
	bb.ResetTimer()
	for i := 0; i < bb.N; i++ {
		b.Dispatch(k, [3]uint32{1, 1, 1}, push, s, d)
		if i%1000 == 999 {
			bb.StopTimer()
			if err := b.Sync(); err != nil {
				bb.Fatal(err)
			}
			bb.StartTimer()
		}
	}
	bb.StopTimer()
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
}

// BenchmarkDispatchBatchIndependent: like BenchmarkDispatchBatch but on 100 distinct buffers, so no
// barriers: the difference is the cost of a barrier.
func BenchmarkDispatchBatchIndependent(bb *testing.B) {
	b := OpenForTest(bb)
	var bufs []*Buffer
	for i := 0; i < 100; i++ {
		x, _ := b.AllocBuffer(256)
		bufs = append(bufs, x)
		b.Fill(Whole(x), 0)
	}
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
	bb.ResetTimer()
	for i := 0; i < bb.N; i++ {
		b.Fill(Whole(bufs[i%100]), uint32(i))
		if i%100 == 99 {
			if err := b.Sync(); err != nil {
				bb.Fatal(err)
			}
		}
	}
	if err := b.Sync(); err != nil {
		bb.Fatal(err)
	}
}
