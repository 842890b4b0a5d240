package gpu

import (
	"fmt"

	"kvc/engine"
	"kvc/engine/vk"
)

// submitTimeoutNs bounds one submission: a device that does not finish is an error, not a hang.
const submitTimeoutNs = 600e9

// Range is a byte range of a buffer bound to one descriptor. Len 0 means to the end of the buffer.
// Off must be a multiple of Caps().StorageOffsetAlignment and the length at most MaxStorageBufferRange.
type Range struct {
	Buf *Buffer
	Off int64
	Len int64
}

// Whole is the whole of an engine.Buf that this backend allocated (nil Buf otherwise: Dispatch then
// fails the backend with a clear error).
func Whole(x engine.Buf) Range {
	buf, _ := x.(*Buffer)
	return Range{Buf: buf}
}

func (r Range) length() int64 {
	if r.Len == 0 {
		return r.Buf.size - r.Off
	}
	return r.Len
}

// recorder owns the command buffer being recorded.
type recorder struct {
	pool      vk.CommandPool
	cmd       vk.CommandBuffer
	fence     vk.Fence
	recording bool
	serial    uint64 // increments per submission; Buffer.useSerial compares against it
	epoch     uint64 // increments per barrier; Buffer read/write epochs compare against it
	deferred  []*Buffer
	// scratch for descriptor keys, reused to keep Dispatch free of allocations
	bufs         []vk.Buffer
	offs, ranges []uint64
	owners       []*Buffer
}

func (r *recorder) init(dev *vk.Device) error {
	var err error
	if r.pool, r.cmd, err = dev.CreateCommandBuffer(); err != nil {
		return err
	}
	if r.fence, err = dev.CreateFence(); err != nil {
		return err
	}
	r.serial, r.epoch = 1, 1
	return nil
}

func (r *recorder) destroy(dev *vk.Device) {
	if r.fence != 0 {
		dev.DestroyFence(r.fence)
	}
	if r.pool != 0 {
		dev.DestroyCommandPool(r.pool)
	}
}

// begin starts recording if needed.
func (b *Backend) begin() bool {
	if b.rec.recording {
		return true
	}
	if err := b.dev.Begin(b.rec.cmd); err != nil {
		b.Fail(err)
		return false
	}
	b.rec.recording = true
	b.rec.epoch++ // the submission boundary orders everything before it
	b.prof.begin(b.dev, b.rec.cmd)
	return true
}

// access is the set of byte ranges of a buffer that commands since the last barrier (epoch) touched; past
// a few ranges it covers the whole buffer.
type access struct {
	epoch uint64
	n     int
	all   bool
	spans [4]span
}

func (a *access) overlaps(epoch, off, n uint64) bool {
	if a.epoch != epoch {
		return false
	}
	if a.all {
		return true
	}
	for _, s := range a.spans[:a.n] {
		if off < s.off+s.size && s.off < off+n {
			return true
		}
	}
	return false
}

func (a *access) add(epoch, off, n uint64) {
	if a.epoch != epoch {
		a.epoch, a.n, a.all = epoch, 0, false
	}
	if a.all {
		return
	}
	if a.n == len(a.spans) {
		a.all = true
		return
	}
	a.spans[a.n] = span{off, n}
	a.n++
}

// hazard reports whether the next command's access to [off, off+n) of buf conflicts with a command since
// the last barrier (read-after-write, write-after-write, write-after-read). Call hazard for every range of
// a command first, then mark them.
func (b *Backend) hazard(buf *Buffer, off, n uint64, write bool) bool {
	e := b.rec.epoch
	return buf.writes.overlaps(e, off, n) || write && buf.reads.overlaps(e, off, n)
}

func (b *Backend) mark(buf *Buffer, off, n uint64, write bool) {
	if write {
		buf.writes.add(b.rec.epoch, off, n)
	} else {
		buf.reads.add(b.rec.epoch, off, n)
	}
	buf.useSerial = b.rec.serial
}

func (b *Backend) barrier() {
	if b.testNoBarriers {
		return
	}
	b.dev.CmdBarrier(b.rec.cmd)
	b.rec.epoch++
	b.stats.Barriers++
}

// checkRange validates a range; binding >= 0 names a kernel binding in the error (formatted only on error,
// so that recording allocates nothing).
func (b *Backend) checkRange(r Range, what string, binding int) bool {
	if binding >= 0 && (r.Buf == nil || r.Buf.freed || r.Buf.owner != b.mem || r.Off < 0 || r.Len < 0 || r.Off+r.length() > r.Buf.size) {
		what = fmt.Sprintf("%s binding %d", what, binding)
	}
	if r.Buf == nil {
		b.Fail(fmt.Errorf("gpu: %s: not a gpu buffer", what))
		return false
	}
	if r.Buf.freed {
		b.Fail(fmt.Errorf("gpu: %s: buffer was freed", what))
		return false
	}
	if r.Buf.owner != b.mem {
		b.Fail(fmt.Errorf("gpu: %s: buffer of another device", what))
		return false
	}
	if r.Off < 0 || r.Len < 0 || r.Off+r.length() > r.Buf.size || r.length() <= 0 && r.Buf.size > 0 {
		b.Fail(fmt.Errorf("gpu: %s: range [%d, +%d) outside a buffer of %d bytes", what, r.Off, r.Len, r.Buf.size))
		return false
	}
	return true
}

// Groups1D is the workgroup grid for n items at perGroup items per workgroup. When the group count exceeds
// maxComputeWorkGroupCount[0] the grid becomes 2D; shaders must therefore compute their linear index as
//
//	uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
//
// (or, per workgroup, gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) and return when i >= n: the
// 2D grid may have a few extra groups. Dispatch applies the same split to any grid {x, 1, 1}.
func (b *Backend) Groups1D(n, perGroup int) [3]uint32 {
	if n <= 0 {
		return [3]uint32{0, 1, 1}
	}
	return [3]uint32{uint32((n + perGroup - 1) / perGroup), 1, 1}
}

func (b *Backend) splitGrid(g [3]uint32) ([3]uint32, bool) {
	max := b.caps.MaxWorkGroupCount
	if g[0] <= max[0] && g[1] <= max[1] && g[2] <= max[2] {
		return g, true
	}
	if g[1] != 1 || g[2] != 1 {
		return g, false
	}
	y := (g[0] + max[0] - 1) / max[0]
	if y > max[1] {
		return g, false
	}
	x := (g[0] + y - 1) / y
	return [3]uint32{x, y, 1}, true
}

// Dispatch records kernel k over the grid groups with push constants push (len must equal the kernel's
// push size) and, per binding, the buffer ranges of its descriptors (len(bufs[i]) = the binding's count).
// Errors (bad ranges, limits) are kept and returned by the next Sync.
func (b *Backend) Dispatch(k *Kernel, groups [3]uint32, push []byte, bufs ...[]Range) {
	if b.err != nil || b.closed {
		return
	}
	if k == nil {
		b.Fail(fmt.Errorf("gpu: Dispatch of a nil kernel"))
		return
	}
	if len(push) != k.pushBytes {
		b.Fail(fmt.Errorf("gpu: %s: %d push-constant bytes, the kernel takes %d", k.Name, len(push), k.pushBytes))
		return
	}
	if len(bufs) != len(k.counts) {
		b.Fail(fmt.Errorf("gpu: %s: %d bindings given, the kernel has %d", k.Name, len(bufs), len(k.counts)))
		return
	}
	grid, ok := b.splitGrid(groups)
	if !ok {
		b.Fail(fmt.Errorf("gpu: %s: grid %v exceeds maxComputeWorkGroupCount %v", k.Name, groups, b.caps.MaxWorkGroupCount))
		return
	}
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 {
		return // nothing to do
	}
	r := &b.rec
	r.bufs, r.offs, r.ranges, r.owners = r.bufs[:0], r.offs[:0], r.ranges[:0], r.owners[:0]
	align := b.caps.StorageOffsetAlignment
	for i, rs := range bufs {
		if len(rs) != k.counts[i] {
			b.Fail(fmt.Errorf("gpu: %s: binding %d has %d ranges, the kernel declares %d", k.Name, i, len(rs), k.counts[i]))
			return
		}
		for _, rg := range rs {
			if !b.checkRange(rg, k.Name, i) {
				return
			}
			if rg.Off%align != 0 {
				b.Fail(fmt.Errorf("gpu: %s binding %d: offset %d is not a multiple of minStorageBufferOffsetAlignment %d", k.Name, i, rg.Off, align))
				return
			}
			n := rg.length()
			if n > b.caps.MaxStorageBufferRange {
				b.Fail(fmt.Errorf("gpu: %s binding %d: range of %d bytes exceeds maxStorageBufferRange %d of %s: split the buffer", k.Name, i, n, b.caps.MaxStorageBufferRange, b.info.Name))
				return
			}
			if n == 0 {
				n = 4 // an empty buffer: bind its 4 placeholder bytes
			}
			r.bufs = append(r.bufs, rg.Buf.h)
			r.offs = append(r.offs, uint64(rg.Off))
			r.ranges = append(r.ranges, uint64(n))
			r.owners = append(r.owners, rg.Buf)
		}
	}
	if !b.begin() {
		return
	}
	set, err := b.desc.get(k, r.bufs, r.offs, r.ranges, r.owners, &b.stats)
	if err != nil {
		b.Fail(err)
		return
	}
	need := false
	j := 0
	for i := range bufs {
		for range bufs[i] {
			need = need || b.hazard(r.owners[j], r.offs[j], r.ranges[j], !k.readOnly[i])
			j++
		}
	}
	if need {
		b.barrier()
	}
	j = 0
	for i := range bufs {
		for range bufs[i] {
			b.mark(r.owners[j], r.offs[j], r.ranges[j], !k.readOnly[i])
			j++
		}
	}
	q := b.prof.before(b.dev, r.cmd, k.Name)
	b.dev.CmdDispatch(r.cmd, k.pipe, set, push, grid[0], grid[1], grid[2])
	b.prof.after(b.dev, r.cmd, q)
	b.stats.Dispatches++
}

// Copy records a buffer-to-buffer copy of src into dst (lengths must match; Len 0 = to the end).
func (b *Backend) Copy(dst, src Range) {
	if b.err != nil || b.closed || !b.checkRange(dst, "Copy destination", -1) || !b.checkRange(src, "Copy source", -1) {
		return
	}
	n := src.length()
	if dst.length() < n {
		b.Fail(fmt.Errorf("gpu: Copy of %d bytes into a range of %d", n, dst.length()))
		return
	}
	if dst.Buf == src.Buf && dst.Off < src.Off+n && src.Off < dst.Off+n {
		b.Fail(fmt.Errorf("gpu: Copy within one buffer of overlapping ranges [%d,+%d) and [%d,+%d)", src.Off, n, dst.Off, n))
		return
	}
	if n == 0 || !b.begin() {
		return
	}
	so, do, un := uint64(src.Off), uint64(dst.Off), uint64(n)
	if b.hazard(src.Buf, so, un, false) || b.hazard(dst.Buf, do, un, true) {
		b.barrier()
	}
	b.mark(src.Buf, so, un, false)
	b.mark(dst.Buf, do, un, true)
	b.dev.CmdCopy(b.rec.cmd, src.Buf.h, dst.Buf.h, uint64(src.Off), uint64(dst.Off), uint64(n))
}

func (b *Backend) recordUpdate(buf *Buffer, off int64, data []byte) {
	if !b.begin() {
		return
	}
	if b.hazard(buf, uint64(off), uint64(len(data)), true) {
		b.barrier()
	}
	b.mark(buf, uint64(off), uint64(len(data)), true)
	b.dev.CmdUpdate(b.rec.cmd, buf.h, uint64(off), data)
}

// Fill sets every 32-bit word of r to value (r.Off and the length must be multiples of 4). It runs the fill
// kernel when r.Off is aligned for binding, else a transfer fill.
func (b *Backend) Fill(r Range, value uint32) {
	if b.err != nil || b.closed || !b.checkRange(r, "Fill", -1) {
		return
	}
	n := r.length()
	if r.Off%4 != 0 || n%4 != 0 {
		b.Fail(fmt.Errorf("gpu: Fill of %d bytes at %d: offset and length must be multiples of 4", n, r.Off))
		return
	}
	if n == 0 {
		return
	}
	if r.Off%b.caps.StorageOffsetAlignment != 0 || n > b.caps.MaxStorageBufferRange {
		if !b.begin() {
			return
		}
		if b.hazard(r.Buf, uint64(r.Off), uint64(n), true) {
			b.barrier()
		}
		b.mark(r.Buf, uint64(r.Off), uint64(n), true)
		b.dev.CmdFill(b.rec.cmd, r.Buf.h, uint64(r.Off), uint64(n), value)
		return
	}
	if b.fillK == nil {
		k, err := b.Kernel("fill", []uint32{fillGroup}, PushSize[fillPush](), []int{1})
		if err != nil {
			b.Fail(err)
			return
		}
		b.fillK = k
	}
	words := int(n / 4)
	b.Dispatch(b.fillK, b.Groups1D(words, fillGroup), PushBytes(&fillPush{Count: uint32(words), Value: value}), []Range{{r.Buf, r.Off, n}})
}

const fillGroup = 256

// Sync submits the recorded commands, waits for them and returns the first error since the last Sync.
func (b *Backend) Sync() error {
	if b.closed {
		return fmt.Errorf("gpu: Sync on a closed backend")
	}
	r := &b.rec
	if r.recording {
		b.dev.CmdHostBarrier(r.cmd)
		err := b.dev.End(r.cmd)
		if err == nil {
			err = b.dev.SubmitWait(r.cmd, r.fence, submitTimeoutNs)
			b.stats.Submits++
		}
		r.recording = false
		r.serial++
		if err != nil {
			b.Fail(fmt.Errorf("gpu: %s: %w", b.info.Name, err))
		} else {
			b.prof.collect(b.dev)
		}
		b.mem.stageHead = 0 // the staging ring's bytes have been consumed
		for _, buf := range r.deferred {
			b.release(buf)
		}
		r.deferred = r.deferred[:0]
		b.desc.trim()
	}
	err := b.err
	b.err = nil
	return err
}
