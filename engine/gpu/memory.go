package gpu

import (
	"fmt"
	"sort"

	"kvc/engine"
	"kvc/engine/vk"
)

const (
	blockSize   = 256 << 20 // sub-allocation blocks (capped by maxMemoryAllocationSize)
	stagingSize = 64 << 20  // the staging ring: uploads and read-backs of unmapped memory
	mib         = 1 << 20
)

// Buffer is device memory: its own VkBuffer bound into a sub-allocated (or dedicated) VkDeviceMemory.
// It implements engine.Buf.
type Buffer struct {
	h      vk.Buffer
	size   int64 // as asked
	block  *memBlock
	off    uint64 // in block
	span   uint64 // bytes taken from the block
	mapped []byte // len size, when the memory is host-visible
	freed  bool
	owner  *allocator // the device it belongs to

	// Hazard tracking (see recorder): the byte ranges read and written since the last barrier.
	reads, writes access
	useSerial     uint64       // recording serial that last used it
	sets          []*descEntry // cached descriptor sets that point at it
}

// Size is the size asked for, in bytes.
func (buf *Buffer) Size() int64 { return buf.size }

type memBlock struct {
	mem       vk.Memory
	size      uint64
	dedicated bool
	counted   bool // included in allocator.used
	mapped    []byte
	free      []span // sorted by offset, coalesced
}

type span struct{ off, size uint64 }

// allocator carves VkDeviceMemory blocks into buffers.
type allocator struct {
	dev         *vk.Device
	info        *vk.DeviceInfo
	devType     int  // memory type for buffers
	mappable    bool // devType is host-visible and coherent
	stageType   int  // host-visible coherent type for the staging ring
	blockSize   uint64
	maxAlloc    uint64
	blocks      []*memBlock
	used        uint64 // bytes of VkDeviceMemory allocated
	staging     *Buffer
	stagingSize int64
	stageHead   int64                // bytes of the staging ring the current recording uses
	live        map[*Buffer]struct{} // destroyed at Close
}

// newAllocator picks the memory types. forceStaging (Options.Discrete) treats mappable device memory as if
// it were not.
func newAllocator(dev *vk.Device, info *vk.DeviceInfo, forceStaging bool) (*allocator, error) {
	a := &allocator{dev: dev, info: info, devType: -1, stageType: -1, live: map[*Buffer]struct{}{}, stagingSize: stagingSize}
	// The device-local heap we use is the largest one. A host-visible+coherent type on that very heap means
	// UMA, ReBAR or a CPU device: map it directly. A small host-visible device-local heap (the 256 MiB BAR)
	// is not used for buffers.
	bigHeap := -1
	for i, h := range info.Heaps {
		if h.Flags&vk.HeapDeviceLocal != 0 && (bigHeap < 0 || h.Size > info.Heaps[bigHeap].Size) {
			bigHeap = i
		}
	}
	for i, t := range info.MemoryTypes {
		if t.Heap != bigHeap || t.Flags&vk.MemDeviceLocal == 0 {
			continue
		}
		hv := t.Flags&(vk.MemHostVisible|vk.MemHostCoherent) == vk.MemHostVisible|vk.MemHostCoherent
		if a.devType < 0 || (hv && !a.mappable) {
			a.devType, a.mappable = i, hv
		}
	}
	if a.devType < 0 {
		// No device-local memory at all: any host-visible coherent type will do.
		for i, t := range info.MemoryTypes {
			if t.Flags&(vk.MemHostVisible|vk.MemHostCoherent) == vk.MemHostVisible|vk.MemHostCoherent {
				a.devType, a.mappable = i, true
				break
			}
		}
	}
	if a.devType < 0 {
		return nil, fmt.Errorf("gpu: %s has no usable memory type", info.Name)
	}
	if forceStaging {
		a.mappable = false
	}
	for i, t := range info.MemoryTypes {
		if t.Flags&(vk.MemHostVisible|vk.MemHostCoherent) != vk.MemHostVisible|vk.MemHostCoherent {
			continue
		}
		if a.stageType < 0 || t.Flags&vk.MemHostCached != 0 && info.MemoryTypes[a.stageType].Flags&vk.MemHostCached == 0 {
			a.stageType = i
		}
	}
	if a.stageType < 0 {
		return nil, fmt.Errorf("gpu: %s has no host-visible coherent memory for staging", info.Name)
	}
	a.maxAlloc = info.Limits.MaxMemoryAllocationSize
	if mb := info.Limits.MaxBufferSize; mb != 0 && mb < a.maxAlloc {
		a.maxAlloc = mb
	}
	a.blockSize = blockSize
	if a.blockSize > info.Limits.MaxMemoryAllocationSize {
		a.blockSize = info.Limits.MaxMemoryAllocationSize
	}
	return a, nil
}

func alignUp(x, a uint64) uint64 {
	if a <= 1 {
		return x
	}
	return (x + a - 1) / a * a
}

// heapLeft reports the bytes of the buffer heap that kvc has not allocated.
func (a *allocator) heapLeft() (left, total uint64) {
	h := a.info.Heaps[a.info.MemoryTypes[a.devType].Heap]
	if a.used > h.Size {
		return 0, h.Size
	}
	return h.Size - a.used, h.Size
}

func (a *allocator) allocMemory(size uint64, typ int) (vk.Memory, error) {
	oom := func() error {
		left, total := a.heapLeft()
		return fmt.Errorf("gpu: %w allocating %.1f MiB on %s: kvc holds %.1f MiB, the heap has %.1f MiB of %.1f MiB left",
			engine.ErrOutOfMemory, float64(size)/mib, a.info.Name, float64(a.used)/mib, float64(left)/mib, float64(total)/mib)
	}
	if left, _ := a.heapLeft(); typ == a.devType && size > left {
		return 0, oom() // never ask the driver for more than the heap has
	}
	m, err := a.dev.AllocateMemory(size, typ)
	if err != nil {
		if ve, ok := err.(*vk.Error); ok && ve.OutOfMemory() {
			return 0, oom()
		}
		return 0, err
	}
	if typ == a.devType {
		a.used += size
	}
	return m, nil
}

// alloc creates a buffer of size bytes bound into memory of the given type; host buffers (staging) get a
// dedicated, mapped allocation.
func (a *allocator) alloc(size int64, typ int, usage uint32, host bool) (*Buffer, error) {
	if size < 0 {
		return nil, fmt.Errorf("gpu: negative buffer size %d", size)
	}
	if uint64(size) > a.maxAlloc {
		return nil, fmt.Errorf("gpu: buffer of %d bytes (%.1f MiB) exceeds %s's largest allocation (maxMemoryAllocationSize/maxBufferSize %d bytes): split it",
			size, float64(size)/mib, a.info.Name, a.maxAlloc)
	}
	vsize := uint64(size)
	if vsize == 0 {
		vsize = 4 // Vulkan has no empty buffers
	}
	h, req, err := a.dev.CreateBuffer(vsize, usage)
	if err != nil {
		return nil, err
	}
	if req.TypeBits&(1<<uint(typ)) == 0 {
		a.dev.DestroyBuffer(h)
		return nil, fmt.Errorf("gpu: memory type %d cannot hold a storage buffer on %s", typ, a.info.Name)
	}
	buf := &Buffer{h: h, size: size, owner: a}
	left, _ := a.heapLeft()
	if req.Size > a.blockSize/2 || typ != a.devType || host || !a.fitsBlock(req.Size, req.Alignment) && left < a.blockSize {
		// Big buffers (and staging) get their own allocation.
		m, err := a.allocMemory(req.Size, typ)
		if err != nil {
			a.dev.DestroyBuffer(h)
			return nil, err
		}
		blk := &memBlock{mem: m, size: req.Size, dedicated: true, counted: typ == a.devType}
		if err := a.place(buf, blk, 0, req.Size, host || a.mappable); err != nil {
			return nil, err
		}
		return buf, nil
	}
	for _, blk := range a.blocks {
		if off, ok := blk.take(req.Size, req.Alignment); ok {
			if err := a.place(buf, blk, off, req.Size, a.mappable); err != nil {
				return nil, err
			}
			return buf, nil
		}
	}
	m, err := a.allocMemory(a.blockSize, typ)
	if err != nil {
		a.dev.DestroyBuffer(h)
		return nil, err
	}
	blk := &memBlock{mem: m, size: a.blockSize, counted: true, free: []span{{0, a.blockSize}}}
	if a.mappable {
		if blk.mapped, err = a.dev.Map(m, a.blockSize); err != nil {
			a.dev.FreeMemory(m)
			a.used -= a.blockSize
			a.dev.DestroyBuffer(h)
			return nil, err
		}
	}
	a.blocks = append(a.blocks, blk)
	off, _ := blk.take(req.Size, req.Alignment)
	if err := a.place(buf, blk, off, req.Size, a.mappable); err != nil {
		return nil, err
	}
	return buf, nil
}

func (a *allocator) place(buf *Buffer, blk *memBlock, off, span uint64, hostVisible bool) error {
	if err := a.dev.BindBuffer(buf.h, blk.mem, off); err != nil {
		a.dev.DestroyBuffer(buf.h)
		a.release(blk, off, span)
		return err
	}
	buf.block, buf.off, buf.span = blk, off, span
	a.live[buf] = struct{}{}
	if blk.dedicated && hostVisible {
		m, err := a.dev.Map(blk.mem, blk.size)
		if err != nil {
			a.dev.DestroyBuffer(buf.h)
			a.release(blk, off, span)
			return err
		}
		blk.mapped = m
	}
	if blk.mapped != nil {
		buf.mapped = blk.mapped[off : off+uint64(buf.size) : off+uint64(buf.size)]
	}
	return nil
}

func (a *allocator) fitsBlock(size, align uint64) bool {
	for _, blk := range a.blocks {
		for _, s := range blk.free {
			if alignUp(s.off, align)+size <= s.off+s.size {
				return true
			}
		}
	}
	return false
}

// take finds the first free span that fits size at the alignment.
func (blk *memBlock) take(size, align uint64) (uint64, bool) {
	for i, s := range blk.free {
		start := alignUp(s.off, align)
		if start+size > s.off+s.size {
			continue
		}
		end := start + size
		var repl []span
		if start > s.off {
			repl = append(repl, span{s.off, start - s.off})
		}
		if end < s.off+s.size {
			repl = append(repl, span{end, s.off + s.size - end})
		}
		blk.free = append(blk.free[:i], append(repl, blk.free[i+1:]...)...)
		return start, true
	}
	return 0, false
}

// give returns a span to the free list, coalescing neighbours.
func (blk *memBlock) give(off, size uint64) {
	blk.free = append(blk.free, span{off, size})
	sort.Slice(blk.free, func(i, j int) bool { return blk.free[i].off < blk.free[j].off })
	out := blk.free[:1]
	for _, s := range blk.free[1:] {
		last := &out[len(out)-1]
		if last.off+last.size == s.off {
			last.size += s.size
		} else {
			out = append(out, s)
		}
	}
	blk.free = out
}

func (a *allocator) release(blk *memBlock, off, span uint64) {
	if blk.dedicated {
		if blk.mapped != nil {
			a.dev.Unmap(blk.mem)
		}
		a.dev.FreeMemory(blk.mem)
		if blk.counted {
			a.used -= blk.size
		}
		return
	}
	blk.give(off, span)
}

func (a *allocator) free(buf *Buffer) {
	if buf.freed {
		return
	}
	buf.freed = true
	delete(a.live, buf)
	a.dev.DestroyBuffer(buf.h)
	a.release(buf.block, buf.off, buf.span)
	buf.mapped = nil
}

func (a *allocator) destroy() {
	for buf := range a.live {
		a.free(buf)
	}
	a.staging = nil
	for _, blk := range a.blocks {
		if blk.mapped != nil {
			a.dev.Unmap(blk.mem)
		}
		a.dev.FreeMemory(blk.mem)
	}
	a.blocks = nil
}

const bufferUsage = vk.UsageStorage | vk.UsageTransferSrc | vk.UsageTransferDst

// AllocBuffer allocates a device buffer. Its contents are undefined (Fill it to clear).
func (b *Backend) AllocBuffer(bytes int64) (*Buffer, error) {
	if b.closed {
		return nil, fmt.Errorf("gpu: Alloc on a closed backend")
	}
	return b.mem.alloc(bytes, b.mem.devType, bufferUsage, false)
}

// AllocBinding allocates a buffer that shaders will bind whole: it may not exceed maxStorageBufferRange.
func (b *Backend) AllocBinding(bytes int64) (*Buffer, error) {
	if bytes > b.caps.MaxStorageBufferRange {
		return nil, fmt.Errorf("gpu: buffer of %d bytes (%.1f MiB) to be bound whole exceeds %s's maxStorageBufferRange of %d bytes (%.1f MiB): split it",
			bytes, float64(bytes)/mib, b.info.Name, b.caps.MaxStorageBufferRange, float64(b.caps.MaxStorageBufferRange)/mib)
	}
	return b.AllocBuffer(bytes)
}

// Alloc implements engine.Backend.
func (b *Backend) Alloc(bytes int64) (engine.Buf, error) {
	buf, err := b.AllocBuffer(bytes)
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// Free releases a buffer; when commands not yet submitted use it, it is released after the next Sync.
func (b *Backend) Free(x engine.Buf) {
	buf, ok := x.(*Buffer)
	if !ok || buf == nil || buf.freed || b.closed || buf.owner != b.mem {
		return
	}
	if b.rec.recording && buf.useSerial == b.rec.serial {
		b.rec.deferred = append(b.rec.deferred, buf)
		return
	}
	b.release(buf)
}

func (b *Backend) release(buf *Buffer) {
	b.desc.forget(buf)
	b.mem.free(buf)
}

func (b *Backend) asBuffer(x engine.Buf, op string) (*Buffer, error) {
	buf, ok := x.(*Buffer)
	if !ok || buf == nil {
		return nil, fmt.Errorf("gpu: %s of a %T, not a gpu buffer", op, x)
	}
	if buf.freed {
		return nil, fmt.Errorf("gpu: %s of a freed buffer", op)
	}
	if buf.owner != b.mem {
		return nil, fmt.Errorf("gpu: %s of a buffer of another device", op)
	}
	return buf, nil
}

// inlineMax is the largest write recorded into the command buffer itself (vkCmdUpdateBuffer's limit).
const inlineMax = 65536

// Write copies src into dst at off. It is ordered after every op recorded before it, and it does not submit
// (unless one recording stages more than the staging ring holds): a mapped buffer that no pending command
// uses is written directly; otherwise small aligned writes are recorded inline (vkCmdUpdateBuffer) and
// the rest goes through the staging ring, copied into place by the same command buffer. So a step's
// uploads and its work are one submission whether or not device memory is mappable.
func (b *Backend) Write(dst engine.Buf, off int64, src []byte) error {
	buf, err := b.asBuffer(dst, "Write")
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(src)) > buf.size {
		return fmt.Errorf("gpu: write of %d bytes at %d past buffer of %d", len(src), off, buf.size)
	}
	if len(src) == 0 {
		return nil
	}
	b.stats.UploadBytes += int64(len(src))
	pending := b.rec.recording && buf.useSerial == b.rec.serial
	if buf.mapped != nil && !pending {
		copy(buf.mapped[off:], src)
		return nil
	}
	if len(src) <= inlineMax && off%4 == 0 && len(src)%4 == 0 {
		b.recordUpdate(buf, off, src)
		return nil
	}
	for len(src) > 0 {
		st, at, n, err := b.stage(int64(len(src)))
		if err != nil {
			return err
		}
		copy(st.mapped[at:at+n], src[:n])
		b.Copy(Range{buf, off, n}, Range{st, at, n})
		src, off = src[n:], off+n
	}
	return nil
}

// Read copies src at off into dst after submitting and waiting for all recorded work. Unmapped memory is
// copied into the staging ring by the same submission.
func (b *Backend) Read(src engine.Buf, off int64, dst []byte) error {
	buf, err := b.asBuffer(src, "Read")
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(dst)) > buf.size {
		return fmt.Errorf("gpu: read of %d bytes at %d past buffer of %d", len(dst), off, buf.size)
	}
	b.stats.ReadbackBytes += int64(len(dst))
	if buf.mapped != nil || len(dst) == 0 {
		if err := b.Sync(); err != nil {
			return err
		}
		copy(dst, buf.mapped[off:])
		return nil
	}
	for len(dst) > 0 {
		st, at, n, err := b.stage(int64(len(dst)))
		if err != nil {
			return err
		}
		b.Copy(Range{st, at, n}, Range{buf, off, n})
		if err := b.Sync(); err != nil {
			return err
		}
		copy(dst[:n], st.mapped[at:at+n])
		dst, off = dst[n:], off+n
	}
	return nil
}

// ReadAll implements engine.BatchReader: every range comes back after one submission (more only when the
// unmapped ones exceed the staging ring).
func (b *Backend) ReadAll(reqs []engine.ReadReq) error {
	type staged struct {
		dst []byte
		at  int64
	}
	var pend []staged
	var st *Buffer
	room := int64(-1)
	for _, r := range reqs {
		buf, err := b.asBuffer(r.Src, "Read")
		if err != nil {
			return err
		}
		if r.Off < 0 || r.Off+int64(len(r.Dst)) > buf.size {
			return fmt.Errorf("gpu: read of %d bytes at %d past buffer of %d", len(r.Dst), r.Off, buf.size)
		}
		if buf.mapped != nil || len(r.Dst) == 0 {
			continue
		}
		if room < 0 {
			if st, err = b.stagingBuffer(); err != nil {
				return err
			}
			room = st.size - b.mem.stageHead
		}
		room -= int64(alignUp(uint64(len(r.Dst)), 16))
	}
	if room < 0 && st != nil {
		for _, r := range reqs { // too big for one pass through the ring
			if err := b.Read(r.Src, r.Off, r.Dst); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range reqs {
		buf := r.Src.(*Buffer)
		b.stats.ReadbackBytes += int64(len(r.Dst))
		if buf.mapped != nil || len(r.Dst) == 0 {
			continue
		}
		st, at, n, err := b.stage(int64(len(r.Dst)))
		if err != nil {
			return err
		}
		b.Copy(Range{st, at, n}, Range{buf, r.Off, n})
		pend = append(pend, staged{r.Dst, at})
	}
	if err := b.Sync(); err != nil {
		return err
	}
	for _, r := range reqs {
		if buf := r.Src.(*Buffer); buf.mapped != nil {
			copy(r.Dst, buf.mapped[r.Off:])
		}
	}
	for _, p := range pend {
		copy(p.dst, st.mapped[p.at:p.at+int64(len(p.dst))])
	}
	return nil
}

// stage reserves up to n bytes of the staging ring for the recording: it returns the ring, the offset and
// how many bytes it got. The ring is reused after each Sync; when the recording has filled it, stage
// submits the recording first.
func (b *Backend) stage(n int64) (*Buffer, int64, int64, error) {
	st, err := b.stagingBuffer()
	if err != nil {
		return nil, 0, 0, err
	}
	if b.mem.stageHead >= st.size {
		if err := b.Sync(); err != nil {
			return nil, 0, 0, err
		}
	}
	at := b.mem.stageHead
	m := min(n, st.size-at)
	b.mem.stageHead = int64(alignUp(uint64(at+m), 16))
	return st, at, m, nil
}

// stagingBuffer is the bounded host window (the staging ring) through which unmapped memory is written and read.
func (b *Backend) stagingBuffer() (*Buffer, error) {
	if b.mem.staging != nil {
		return b.mem.staging, nil
	}
	st, err := b.mem.alloc(b.mem.stagingSize, b.mem.stageType, vk.UsageTransferSrc|vk.UsageTransferDst, true)
	if err != nil {
		return nil, fmt.Errorf("gpu: staging buffer: %w", err)
	}
	b.mem.staging = st
	return st, nil
}

// Memory reports the device memory kvc holds (blocks and dedicated allocations, so at least the sum of live
// buffer sizes) and the size of the heap it allocates from.
func (b *Backend) Memory() (held, heap int64) {
	_, total := b.mem.heapLeft()
	return int64(b.mem.used), int64(total)
}
