// Package cpu is the plain-Go reference backend: the oracle every shader is tested against, and the
// --device cpu path. It executes each op as it is called.
package cpu

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"kvc/engine"
)

// Buf is host memory, 4-byte aligned so it can be viewed as f32 or int32.
type Buf struct {
	words []uint32
	size  int64
}

func (b *Buf) Size() int64 { return b.size }

// Bytes is the buffer's memory.
func (b *Buf) Bytes() []byte {
	if len(b.words) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&b.words[0])), b.size)
}

// F32 views the buffer as float32s.
func (b *Buf) F32() []float32 {
	if len(b.words) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b.words[0])), b.size/4)
}

// I32 views the buffer as int32s.
func (b *Buf) I32() []int32 {
	if len(b.words) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b.words[0])), b.size/4)
}

// Backend is the CPU backend. Its zero value is the plain-Go reference, the oracle: it executes each op
// as its definition reads, and Threads bounds the goroutines an op may use. New makes the fast backend
// (--device cpu): the same ops, with SIMD row kernels (kernels.go) and a persistent worker pool.
type Backend struct {
	Threads int
	pool    *workers // nil: the reference kernels

	// bytes the host copied in (Write) and out (Read, ReadSlots): the engine's per-step traffic, the same
	// on every backend, counted here too so that it can be measured where a GPU run would take too long.
	written, read atomic.Int64

	arena weightArena // UploadWeight's memory

	fused fusedWindow // AttentionWindow's lists
}

// Counters implements engine.Counting: no queue submissions or dispatches on the host, only bytes.
func (c *Backend) Counters() engine.Counters {
	return engine.Counters{UploadBytes: c.written.Load(), ReadbackBytes: c.read.Load()}
}

// New returns the fast CPU backend with threads workers (DefaultThreads() if threads <= 0).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = DefaultThreads()
	}
	return &Backend{Threads: threads, pool: newWorkers(threads)}
}

// Fast reports whether this is the fast backend rather than the reference.
func (c *Backend) Fast() bool { return c.pool != nil }

// DefaultKVType: the fast backend keeps K and V as f16 (half the memory, so twice the sequences, and half
// the bytes long-context attention reads; stories260K's perplexity moves from 3.7991 to 3.7993); the
// reference keeps f32, exact.
func (c *Backend) DefaultKVType() engine.KVType {
	if c.Fast() {
		return engine.KVF16
	}
	return engine.KVF32
}

// The ops of engine.Backend, and the optional capabilities the host backend has.
var (
	_ engine.Backend           = (*Backend)(nil)
	_ engine.KVBlockIO         = (*Backend)(nil)
	_ engine.HostKVDefault     = (*Backend)(nil)
	_ engine.Counting          = (*Backend)(nil)
	_ engine.AttentionWindower = (*Backend)(nil)
)

func (c *Backend) Name() string { return "cpu" }

func (c *Backend) Alloc(bytes int64) (engine.Buf, error) {
	if bytes < 0 {
		return nil, fmt.Errorf("cpu: negative allocation %d", bytes)
	}
	return &Buf{words: make([]uint32, (bytes+3)/4), size: bytes}, nil
}

func (c *Backend) Free(engine.Buf) {}

func (c *Backend) Write(dst engine.Buf, off int64, src []byte) error {
	b := dst.(*Buf)
	if off < 0 || off+int64(len(src)) > b.size {
		return fmt.Errorf("cpu: write of %d bytes at %d past buffer of %d", len(src), off, b.size)
	}
	copy(b.Bytes()[off:], src)
	c.written.Add(int64(len(src)))
	return nil
}

func (c *Backend) Read(src engine.Buf, off int64, dst []byte) error {
	b := src.(*Buf)
	if off < 0 || off+int64(len(dst)) > b.size {
		return fmt.Errorf("cpu: read of %d bytes at %d past buffer of %d", len(dst), off, b.size)
	}
	copy(dst, b.Bytes()[off:])
	c.read.Add(int64(len(dst)))
	return nil
}

func (c *Backend) Sync() error { return nil }
func (c *Backend) Close() error {
	if c.pool != nil {
		c.pool.close()
	}
	return nil
}

// f32 and i32 view an engine.Buf of this backend.
func f32(b engine.Buf) []float32 { return b.(*Buf).F32() }
func i32(b engine.Buf) []int32   { return b.(*Buf).I32() }
