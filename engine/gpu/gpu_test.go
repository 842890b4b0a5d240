package gpu

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestWriteReadRoundTrip(t *testing.T) {
	b := OpenForTest(t)
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{1, 7, 4097} {
		for _, off := range []int64{0, 1, 3, 13} {
			buf, err := b.AllocBuffer(int64(size) + off + 5)
			if err != nil {
				t.Fatal(err)
			}
			src := make([]byte, size)
			rng.Read(src)
			if err := b.Write(buf, off, src); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, size)
			if err := b.Read(buf, off, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, src) {
				t.Errorf("size %d off %d: read back differs", size, off)
			}
			b.Free(buf)
		}
	}
	buf, _ := b.AllocBuffer(8)
	if err := b.Write(buf, 4, make([]byte, 5)); err == nil {
		t.Error("write past the end succeeded")
	}
	if err := b.Read(buf, -1, make([]byte, 1)); err == nil {
		t.Error("read at a negative offset succeeded")
	}
}

func u32s(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func TestFillNonMultipleOfWorkgroup(t *testing.T) {
	b := OpenForTest(t)
	const n = 3*fillGroup + 17
	buf, err := b.AllocBuffer(4 * (n + 8))
	if err != nil {
		t.Fatal(err)
	}
	b.Fill(Whole(buf), 0xdeadbeef)
	b.Fill(Range{buf, 0, 4 * n}, 7) // the last 8 words keep the poison
	out := make([]byte, 4*(n+8))
	if err := b.Read(buf, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		want := uint32(7)
		if i >= n {
			want = 0xdeadbeef
		}
		if v != want {
			t.Fatalf("word %d = %#x, want %#x", i, v, want)
		}
	}
	// Unaligned offset (transfer path) and bad lengths.
	b.Fill(Range{buf, 4, 8}, 9)
	if err := b.Read(buf, 0, out[:16]); err != nil {
		t.Fatal(err)
	}
	if got := u32s(out[:16]); got[0] != 7 || got[1] != 9 || got[2] != 9 || got[3] != 7 {
		t.Errorf("fill at offset 4: %v", got)
	}
	b.Fill(Range{buf, 2, 8}, 1)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "multiples of 4") {
		t.Errorf("unaligned fill: err = %v", err)
	}
}

// fill, then copy, then fill the source again, then copy elsewhere: each step depends on the previous.
func TestDependentCommandsInOneSubmission(t *testing.T) {
	b := OpenForTest(t)
	const n = 10000
	a, _ := b.AllocBuffer(4 * n)
	c, _ := b.AllocBuffer(4 * n)
	d, _ := b.AllocBuffer(4 * n)
	before := b.Stats()
	for i := 0; i < 20; i++ {
		b.Fill(Whole(a), uint32(i))
		b.Copy(Whole(c), Whole(a))
	}
	b.Fill(Whole(a), 1234)
	b.Copy(Whole(d), Whole(c))
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Submits-before.Submits != 1 {
		t.Errorf("%d submissions, want 1", st.Submits-before.Submits)
	}
	if st.Barriers == before.Barriers {
		t.Error("no barriers between dependent commands")
	}
	for _, x := range []struct {
		buf  *Buffer
		want uint32
	}{{a, 1234}, {c, 19}, {d, 19}} {
		out := make([]byte, 4*n)
		if err := b.Read(x.buf, 0, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range u32s(out) {
			if v != x.want {
				t.Fatalf("word %d = %d, want %d", i, v, x.want)
			}
		}
	}
}

func TestIndependentDispatchesNeedNoBarrier(t *testing.T) {
	b := OpenForTest(t)
	var bufs []*Buffer
	for i := 0; i < 4; i++ {
		x, _ := b.AllocBuffer(1024)
		bufs = append(bufs, x)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	before := b.Stats().Barriers
	for i, x := range bufs {
		b.Fill(Whole(x), uint32(i))
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().Barriers - before; got != 0 {
		t.Errorf("%d barriers between fills of distinct buffers, want 0", got)
	}
	// Disjoint ranges of one buffer need none either; an overlapping range does.
	x := bufs[0]
	before = b.Stats().Barriers
	b.Fill(Range{x, 0, 512}, 1)
	b.Fill(Range{x, 512, 512}, 2)
	if got := b.Stats().Barriers - before; got != 0 {
		t.Errorf("%d barriers between fills of disjoint ranges, want 0", got)
	}
	b.Fill(Range{x, 256, 512}, 3)
	if got := b.Stats().Barriers - before; got != 1 {
		t.Errorf("%d barriers before an overlapping fill, want 1", got)
	}
	out := make([]byte, 1024)
	if err := b.Read(x, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		want := uint32(1)
		switch {
		case i >= 64 && i < 192:
			want = 3
		case i >= 192:
			want = 2
		}
		if v != want {
			t.Fatalf("word %d = %d, want %d", i, v, want)
		}
	}
}

func TestAllocationLimits(t *testing.T) {
	b := OpenForTest(t)
	c := b.Caps()
	if _, err := b.AllocBinding(c.MaxStorageBufferRange + 4); err == nil || !strings.Contains(err.Error(), "maxStorageBufferRange") {
		t.Errorf("binding allocation past maxStorageBufferRange: err = %v", err)
	}
	if _, err := b.AllocBuffer(c.MaxAlloc + 1); err == nil || !strings.Contains(err.Error(), "split") {
		t.Errorf("allocation past the device maximum: err = %v", err)
	}
	if _, err := b.AllocBuffer(-1); err == nil {
		t.Error("negative allocation succeeded")
	}
	// Binding a range past maxStorageBufferRange fails at Sync, not in the driver.
	if c.MaxStorageBufferRange < 1<<30 {
		big, err := b.AllocBuffer(c.MaxStorageBufferRange + 1024)
		if err != nil {
			t.Fatal(err)
		}
		k, err := b.Kernel("fill", []uint32{fillGroup}, 8, []int{1})
		if err != nil {
			t.Fatal(err)
		}
		b.Dispatch(k, [3]uint32{1, 1, 1}, PushBytes(&fillPush{Count: 1, Value: 0}), []Range{Whole(big)})
		if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "maxStorageBufferRange") {
			t.Errorf("dispatch binding %d bytes: err = %v", big.Size(), err)
		}
		b.Free(big)
	}
}

func TestSubAllocatorAlignment(t *testing.T) {
	b := OpenForTest(t)
	align := uint64(b.Caps().StorageOffsetAlignment)
	var bufs []*Buffer
	for i, size := range []int64{1, 3, 100, 4096, 5, 65537, 12} {
		buf, err := b.AllocBuffer(size)
		if err != nil {
			t.Fatal(err)
		}
		if buf.off%align != 0 {
			t.Errorf("buffer %d at block offset %d, not a multiple of %d", i, buf.off, align)
		}
		for _, o := range bufs {
			if o.block == buf.block && buf.off < o.off+o.span && o.off < buf.off+buf.span {
				t.Errorf("buffer %d [%d,+%d) overlaps [%d,+%d)", i, buf.off, buf.span, o.off, o.span)
			}
		}
		bufs = append(bufs, buf)
	}
	// Freed space is reused and coalesced.
	blk := bufs[0].block
	free0 := len(blk.free)
	for _, x := range bufs {
		b.Free(x)
	}
	if len(blk.free) != 1 || blk.free[0].size != blk.size {
		t.Errorf("after freeing everything the block has free list %v (was %d spans)", blk.free, free0)
	}
}

func TestDescriptorCacheReuse(t *testing.T) {
	b := OpenForTest(t)
	x, _ := b.AllocBuffer(4096)
	y, _ := b.AllocBuffer(4096)
	b.Fill(Whole(x), 1)
	b.Fill(Whole(y), 2)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	s0 := b.Stats()
	for i := 0; i < 10; i++ {
		b.Fill(Whole(x), uint32(i))
		b.Fill(Whole(y), uint32(i))
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	s1 := b.Stats()
	if s1.DescriptorNew != s0.DescriptorNew || s1.DescriptorHits-s0.DescriptorHits != 20 {
		t.Errorf("descriptor sets: %d new, %d hits; want 0 new, 20 hits", s1.DescriptorNew-s0.DescriptorNew, s1.DescriptorHits-s0.DescriptorHits)
	}
	// A different range is a different set; freeing a buffer recycles its sets.
	b.Fill(Range{x, 0, 1024}, 3)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if b.Stats().DescriptorNew != s1.DescriptorNew+1 {
		t.Error("a new range did not get a new set")
	}
	b.Free(x)
	k := b.fillK
	if len(k.freeSets) != 2 {
		t.Errorf("freeing a buffer recycled %d sets, want 2", len(k.freeSets))
	}
	z, _ := b.AllocBuffer(4096)
	b.Fill(Whole(z), 5)
	out := make([]byte, 4)
	if err := b.Read(z, 4092, out); err != nil || u32s(out)[0] != 5 {
		t.Errorf("fill through a recycled set: %v %v", u32s(out), err)
	}
}

// The collector runs constantly while pipelines are created and dispatches recorded: nothing the driver
// reads may live in Go memory that a GC can move or free.
func TestGCPressure(t *testing.T) {
	b := OpenForTest(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	buf, _ := b.AllocBuffer(4 * 1000)
	for i := 0; i < 30; i++ {
		k, err := b.Kernel("fill", []uint32{uint32(32 + i)}, 8, []int{1}) // a new pipeline each time
		if err != nil {
			t.Fatal(err)
		}
		b.Dispatch(k, b.Groups1D(1000, 32+i), PushBytes(&fillPush{Count: 1000, Value: uint32(i)}), []Range{Whole(buf)})
		out := make([]byte, 4000)
		if err := b.Read(buf, 0, out); err != nil {
			t.Fatal(err)
		}
		for j, v := range u32s(out) {
			if v != uint32(i) {
				t.Fatalf("iteration %d word %d = %d", i, j, v)
			}
		}
	}
}

func TestLargeGridIsSplit(t *testing.T) {
	b := OpenForTest(t)
	maxX := b.Caps().MaxWorkGroupCount[0]
	k, err := b.Kernel("fill", []uint32{1}, 8, []int{1}) // one invocation per group
	if err != nil {
		t.Fatal(err)
	}
	n := int(maxX) + 1000
	buf, err := b.AllocBuffer(int64(4 * (n + 4)))
	if err != nil {
		t.Fatal(err)
	}
	b.Fill(Whole(buf), 0xffffffff)
	b.Dispatch(k, b.Groups1D(n, 1), PushBytes(&fillPush{Count: uint32(n), Value: 3}), []Range{Whole(buf)})
	out := make([]byte, 4*(n+4))
	if err := b.Read(buf, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		want := uint32(3)
		if i >= n {
			want = 0xffffffff
		}
		if v != want {
			t.Fatalf("word %d = %#x, want %#x", i, v, want)
		}
	}
}

func TestKernelChecks(t *testing.T) {
	b := OpenForTest(t)
	if _, err := b.Kernel("fill", nil, 8, []int{1}); err == nil || !strings.Contains(err.Error(), "specialization constant 0") {
		t.Errorf("missing spec constant: err = %v", err)
	}
	if _, err := b.Kernel("fill", []uint32{64}, 8, nil); err == nil || !strings.Contains(err.Error(), "binding 0") {
		t.Errorf("missing binding: err = %v", err)
	}
	if _, err := b.Kernel("no-such-kernel", nil, 0, nil); err == nil {
		t.Error("unknown module accepted")
	}
	k, err := b.Kernel("fill", []uint32{64}, 8, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if k2, _ := b.Kernel("fill", []uint32{64}, 8, []int{1}); k2 != k {
		t.Error("kernel not cached")
	}
	buf, _ := b.AllocBuffer(64)
	b.Dispatch(k, [3]uint32{1, 1, 1}, PushBytes(&countPush{Count: 1}), []Range{Whole(buf)})
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "push-constant") {
		t.Errorf("short push constants: err = %v", err)
	}
	b.Dispatch(k, [3]uint32{1, 1, 1}, PushBytes(&fillPush{Count: 1, Value: 0}), []Range{{buf, 4, 0}})
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "minStorageBufferOffsetAlignment") {
		t.Errorf("misaligned binding: err = %v", err)
	}
}
