package gpu

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Devices without host-visible device memory (discrete GPUs without ReBAR) go through a bounded staging
// window; here a 4 KiB window forces many chunks.
func TestStagingPath(t *testing.T) {
	b := openForTest(t, Options{Discrete: true, stagingSize: 4096})
	if b.Caps().HostVisibleDeviceMemory {
		t.Fatal("forceStaging left device memory mapped")
	}
	rng := rand.New(rand.NewSource(2))
	for _, c := range []struct{ size, off int }{{1, 0}, {7, 3}, {4097, 1}, {20000, 5}} {
		buf, err := b.AllocBuffer(int64(c.size + c.off + 3))
		if err != nil {
			t.Fatal(err)
		}
		if buf.mapped != nil {
			t.Fatal("device buffer is mapped on the staging path")
		}
		src := make([]byte, c.size)
		rng.Read(src)
		if err := b.Write(buf, int64(c.off), src); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.size)
		if err := b.Read(buf, int64(c.off), got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("size %d at %d: round trip differs", c.size, c.off)
		}
	}
	if n := len(b.mem.staging.mapped); n != 4096 {
		t.Errorf("staging window %d bytes, want 4096", n)
	}
}

// A Write is ordered after the ops recorded before it.
func TestWriteOrderedAfterRecordedOps(t *testing.T) {
	for _, staging := range []bool{false, true} {
		b := openForTest(t, Options{Discrete: staging})
		buf, _ := b.AllocBuffer(64)
		b.Fill(Whole(buf), 0x11111111)
		// Small aligned write: recorded inline after the fill.
		if err := b.Write(buf, 8, []byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
			t.Fatal(err)
		}
		b.Fill(Range{buf, 48, 16}, 0x22222222)
		// Unaligned write: pending work is submitted first.
		if err := b.Write(buf, 49, []byte{9}); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 64)
		if err := b.Read(buf, 0, got); err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{0x11}, 64)
		copy(want[8:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
		copy(want[48:], bytes.Repeat([]byte{0x22}, 16))
		want[49] = 9
		if !bytes.Equal(got, want) {
			t.Errorf("staging=%v: got %x\nwant %x", staging, got, want)
		}
	}
}

func TestProfileReport(t *testing.T) {
	b := openForTest(t, Options{Profile: true})
	if !b.Caps().TimestampsSupported {
		t.Skip("no timestamps")
	}
	buf, _ := b.AllocBuffer(1 << 16)
	for i := 0; i < 7; i++ {
		b.Fill(Whole(buf), uint32(i))
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	p := b.Profile()
	if len(p) != 1 || p[0].Name != "fill" || p[0].Calls != 7 || !(p[0].TotalMs > 0) {
		t.Errorf("profile %+v, want 7 timed fill calls", p)
	}
	rep := b.ProfileReport()
	if !strings.Contains(rep, "fill") || !strings.Contains(rep, "median us") {
		t.Errorf("report:\n%s", rep)
	}
}

func TestCorruptPipelineCacheIgnored(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	b := OpenForTest(t)
	fn := b.pipelineCachePath()
	if !strings.HasPrefix(fn, filepath.Join(dir, "kvc", "pipelines-")) {
		t.Fatalf("cache path %s not under $XDG_CACHE_HOME/kvc", fn)
	}
	if err := os.MkdirAll(filepath.Dir(fn), 0o755); err != nil {
		t.Fatal(err)
	}
	// A valid-looking header of another device, then garbage; then pure garbage.
	hdr := make([]byte, 64)
	hdr[0], hdr[4] = 32, 1
	for _, data := range [][]byte{hdr, []byte("not a pipeline cache at all, just text")} {
		if err := os.WriteFile(fn, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b2, err := Open(b.index, Options{})
		if err != nil {
			t.Fatalf("Open with a corrupt pipeline cache: %v", err)
		}
		if _, err := b2.Kernel("fill", []uint32{64}, 8, []int{1}); err != nil {
			t.Fatal(err)
		}
		if err := b2.Close(); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(fn); err == nil && len(data) >= 32 && !b.validCacheHeader(data) {
			t.Errorf("saved cache has a header for another device")
		}
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	b := OpenForTest(t)
	k, err := b.Kernel("copy", []uint32{64}, 4, []int{1, 1})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := b.AllocBuffer(1024)
	dst, _ := b.AllocBuffer(1024)
	push := PushBytes(&countPush{Count: 64})
	s, d := []Range{Whole(src)}, []Range{Whole(dst)}
	b.Dispatch(k, [3]uint32{1, 1, 1}, push, s, d) // first use allocates the descriptor set
	allocs := testing.AllocsPerRun(100, func() { b.Dispatch(k, [3]uint32{1, 1, 1}, push, s, d) })
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if allocs > 0 {
		t.Errorf("Dispatch allocates %.1f times per call", allocs)
	}
}

func TestKernelLookupDoesNotAllocate(t *testing.T) {
	b := OpenForTest(t)
	spec, binds := []uint32{64}, []int{1}
	k, err := b.Kernel("fill", spec, 8, binds)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if k2, _ := b.Kernel("fill", spec, 8, binds); k2 != k {
			t.Fatal("kernel not cached")
		}
	})
	if allocs > 0 {
		t.Errorf("cached Kernel lookup allocates %.1f times", allocs)
	}
	if k3, _ := b.Kernel("fill", []uint32{128}, 8, binds); k3 == k {
		t.Error("different spec constants share a kernel")
	}
}

func TestCopyOverlapRejected(t *testing.T) {
	b := OpenForTest(t)
	buf, _ := b.AllocBuffer(64)
	b.Copy(Range{buf, 0, 32}, Range{buf, 16, 32})
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "overlapping") {
		t.Errorf("overlapping copy: err = %v", err)
	}
	b.Copy(Range{buf, 0, 32}, Range{buf, 32, 32})
	if err := b.Sync(); err != nil {
		t.Errorf("disjoint copy within a buffer: %v", err)
	}
}

// With barriers removed, synchronization validation must report the fill -> copy hazard; so a clean run of
// the other tests under KVC_VALIDATION=1 means the hazard tracking inserted the barriers that were needed.
func TestSyncValidationCatchesMissingBarrier(t *testing.T) {
	if os.Getenv("KVC_VALIDATION") != "1" || os.Getenv("KVC_VALIDATION_SYNC") == "0" {
		t.Skip("needs KVC_VALIDATION=1 with synchronization validation")
	}
	probe := OpenForTest(t) // skips or fails without a device
	b, err := Open(probe.index, Options{Validation: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.testNoBarriers = true
	x, _ := b.AllocBuffer(4096)
	y, _ := b.AllocBuffer(4096)
	b.Fill(Whole(x), 1)
	b.Copy(Whole(y), Whole(x))
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	msgs := strings.Join(b.ValidationMessages(), "\n")
	if !strings.Contains(msgs, "SYNC-HAZARD") {
		t.Errorf("no synchronization hazard reported without barriers; messages:\n%s", msgs)
	}
}

func TestOutOfDeviceMemoryMessage(t *testing.T) {
	b := OpenForTest(t)
	// Pretend the heap has 96 MiB left beyond what kvc holds.
	h := b.info.MemoryTypes[b.mem.devType].Heap
	saved := b.info.Heaps[h].Size
	defer func() { b.info.Heaps[h].Size = saved }()
	held0, _ := b.Memory()
	b.info.Heaps[h].Size = b.mem.used + 96<<20
	x, err := b.AllocBuffer(64 << 20)
	if err != nil {
		t.Fatalf("64 MiB of 96 MiB: %v", err)
	}
	if held, heap := b.Memory(); held-held0 < 64<<20 || heap != int64(b.info.Heaps[h].Size) {
		t.Errorf("Memory() = %d, %d after a 64 MiB allocation (held %d before)", held, heap, held0)
	}
	_, err = b.AllocBuffer(64 << 20)
	if err == nil || !strings.Contains(err.Error(), "out of device memory allocating 64.0 MiB") || !strings.Contains(err.Error(), "32.0 MiB of") {
		t.Errorf("64 MiB with 32 MiB left: err = %v", err)
	}
	small, err := b.AllocBuffer(1 << 20)
	if err != nil {
		t.Errorf("1 MiB with 32 MiB left: %v", err)
	}
	b.Free(small)
	b.Free(x)
	if _, err := b.AllocBuffer(90 << 20); err != nil {
		t.Errorf("90 MiB after freeing: %v", err)
	}
}

func TestDescriptorCacheBounded(t *testing.T) {
	b := OpenForTest(t)
	b.desc.limit = 10
	buf, _ := b.AllocBuffer(4096)
	for i := 0; i < 25; i++ {
		b.Fill(Range{buf, 16 * int64(i), 16}, uint32(i)) // a new range, so a new set, each time
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if b.desc.count != 0 || len(b.desc.entries) != 0 || len(buf.sets) != 0 {
		t.Errorf("after Sync past the limit: %d cached, %d owner links", b.desc.count, len(buf.sets))
	}
	pools := len(b.desc.pools)
	for i := 0; i < 25; i++ {
		b.Fill(Range{buf, 16 * int64(i), 16}, uint32(100+i))
	}
	out := make([]byte, 400)
	if err := b.Read(buf, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		if v != uint32(100+i/4) {
			t.Fatalf("word %d = %d", i, v)
		}
	}
	if len(b.desc.pools) != pools {
		t.Errorf("recycled sets not reused: pools grew from %d to %d", pools, len(b.desc.pools))
	}
}

func TestBufferOfAnotherDevice(t *testing.T) {
	a := OpenForTest(t)
	b := OpenForTest(t)
	x, _ := a.AllocBuffer(64)
	if err := b.Write(x, 0, []byte{1}); err == nil || !strings.Contains(err.Error(), "another device") {
		t.Errorf("Write: %v", err)
	}
	b.Fill(Whole(x), 0)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "another device") {
		t.Errorf("Fill: %v", err)
	}
	b.Free(x) // ignored
	if err := a.Write(x, 0, []byte{1}); err != nil {
		t.Errorf("the owner can still write: %v", err)
	}
}

// Random fills and copies over sub-ranges of a few buffers, all in one submission, against a host model:
// the range-level hazard tracking must order every dependent pair (synchronization validation checks the
// barriers too under KVC_VALIDATION=1).
func TestRandomCommandStreamMatchesModel(t *testing.T) {
	b := OpenForTest(t)
	rng := rand.New(rand.NewSource(3))
	const words = 256
	var bufs []*Buffer
	model := make([][]uint32, 3)
	for i := range model {
		x, _ := b.AllocBuffer(4 * words)
		bufs = append(bufs, x)
		model[i] = make([]uint32, words)
		b.Fill(Whole(x), 0)
	}
	for step := 0; step < 200; step++ {
		n := 4 * (1 + rng.Intn(16)) // words, multiple of 4: 16-byte aligned ranges
		dst := rng.Intn(3)
		doff := 4 * rng.Intn((words-n)/4+1)
		if rng.Intn(2) == 0 {
			v := uint32(step + 1)
			b.Fill(Range{bufs[dst], int64(4 * doff), int64(4 * n)}, v)
			for i := 0; i < n; i++ {
				model[dst][doff+i] = v
			}
			continue
		}
		src := rng.Intn(3)
		soff := 4 * rng.Intn((words-n)/4+1)
		if src == dst && soff < doff+n && doff < soff+n {
			continue // overlapping copies are refused
		}
		if rng.Intn(2) == 0 {
			b.Copy(Range{bufs[dst], int64(4 * doff), int64(4 * n)}, Range{bufs[src], int64(4 * soff), int64(4 * n)})
		} else {
			b.DispatchCopy(Range{bufs[dst], int64(4 * doff), int64(4 * n)}, Range{bufs[src], int64(4 * soff), int64(4 * n)})
		}
		copy(model[dst][doff:doff+n], model[src][soff:soff+n])
	}
	for i, x := range bufs {
		out := make([]byte, 4*words)
		if err := b.Read(x, 0, out); err != nil {
			t.Fatal(err)
		}
		for j, v := range u32s(out) {
			if v != model[i][j] {
				t.Fatalf("buffer %d word %d = %d, want %d", i, j, v, model[i][j])
			}
		}
	}
	t.Logf("stats %+v", b.Stats())
}

func TestKernelSubgroupOptions(t *testing.T) {
	b := OpenForTest(t)
	c := b.Caps()
	if _, err := b.KernelWith("fill", []uint32{64}, 8, []int{1}, KernelOptions{SubgroupSize: 3}); err == nil {
		t.Error("subgroup size 3 accepted")
	}
	if !c.Features.SubgroupSizeControl || !c.SubgroupSizeInCompute || !c.Features.ComputeFullSubgroups {
		t.Skip("no subgroup size control for compute shaders")
	}
	sz := c.SubgroupMax
	k, err := b.KernelWith("fill", []uint32{4 * sz}, 8, []int{1}, KernelOptions{SubgroupSize: sz, FullSubgroups: true})
	if err != nil {
		t.Fatal(err)
	}
	if k0, _ := b.Kernel("fill", []uint32{4 * sz}, 8, []int{1}); k0 == k {
		t.Error("options not part of the kernel cache key")
	}
	buf, _ := b.AllocBuffer(4 * 1000)
	b.Dispatch(k, b.Groups1D(1000, int(4*sz)), PushBytes(&fillPush{Count: 1000, Value: 42}), []Range{Whole(buf)})
	out := make([]byte, 4000)
	if err := b.Read(buf, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		if v != 42 {
			t.Fatalf("word %d = %d", i, v)
		}
	}
}

// A binding that is an array of storage buffers (as KV pools split over several buffers use), each element
// a different buffer or a different range of one.
func TestArrayBinding(t *testing.T) {
	b := OpenForTest(t)
	code, err := os.ReadFile("testdata/array_sum.spv")
	if err != nil {
		t.Fatal(err)
	}
	spec, binds := []uint32{64}, []int{3, 1}
	k, err := b.kernelFromCode(makeKernelKey("test_array_sum", spec, 4, binds), "test_array_sum", code, spec, 4, binds, KernelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !k.readOnly[0] || k.readOnly[1] {
		t.Errorf("readOnly %v, want [true false]", k.readOnly)
	}
	const n = 1000
	x, _ := b.AllocBuffer(4 * n)
	y, _ := b.AllocBuffer(4*n + 256) // two elements: [0, 4n) and [256, 256+4n)
	dst, _ := b.AllocBuffer(4 * n)
	b.Fill(Whole(x), 1)
	b.Fill(Range{y, 0, 256}, 10)
	b.Fill(Range{y, 256, 4 * n}, 100)
	b.Dispatch(k, b.Groups1D(n, 64), PushBytes(&countPush{Count: uint32(n)}), []Range{Whole(x), {y, 0, 4 * n}, {y, 256, 4 * n}}, []Range{Whole(dst)})
	out := make([]byte, 4*n)
	if err := b.Read(dst, 0, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range u32s(out) {
		want := uint32(1 + 100 + 100)
		if i < 64 {
			want = 1 + 10 + 100
		}
		if v != want {
			t.Fatalf("word %d = %d, want %d", i, v, want)
		}
	}
	// Wrong element count for the array binding is an error at Sync.
	b.Dispatch(k, b.Groups1D(n, 64), PushBytes(&countPush{Count: uint32(n)}), []Range{Whole(x)}, []Range{Whole(dst)})
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "binding 0 has 1 ranges") {
		t.Errorf("short array binding: err = %v", err)
	}
}
