// Package kvpages is the paged KV cache's bookkeeping: a pool of physical blocks, each holding BlockSize
// slots of one KV head of one layer, per-sequence block tables and context lengths for every
// (layer, KV head), and the KV-Compress eviction schedule with its baselines. It plans; it knows nothing
// about Vulkan. engine executes the plans on the device.
package kvpages

import (
	"container/heap"
	"errors"
	"fmt"
)

// ErrNoBlocks is returned when the pool has too few free blocks for a request.
var ErrNoBlocks = errors.New("kvpages: out of KV blocks")

// Pool is the free list of N physical blocks. Alloc always hands out the lowest free id, so the blocks in
// use stay packed at the bottom of the pool whatever its size: Bound (one past the highest id in use) then
// follows the tokens held, not the pool, and a backend that splits the pool over several buffers (Vulkan's
// arenas) can compile its kernels for the few it needs; the blocks of a step also share pages and cache
// sets instead of being scattered over the whole pool.
type Pool struct {
	blockSize int
	free      idHeap // free block ids, lowest on top
	owned     []bool
	bound     int // 1 + the highest id in use (0 when none is)
}

// NewPool makes a pool of n blocks of blockSize slots.
func NewPool(n, blockSize int) (*Pool, error) {
	if n <= 0 {
		return nil, fmt.Errorf("kvpages: pool needs at least one block, got %d", n)
	}
	if blockSize <= 0 {
		return nil, fmt.Errorf("kvpages: block size must be positive, got %d", blockSize)
	}
	p := &Pool{blockSize: blockSize, free: make(idHeap, n), owned: make([]bool, n)}
	for i := range p.free {
		p.free[i] = int32(i) // ascending: already a min-heap
	}
	return p, nil
}

func (p *Pool) BlockSize() int { return p.blockSize }
func (p *Pool) Blocks() int    { return len(p.owned) }
func (p *Pool) Free() int      { return len(p.free) }
func (p *Pool) InUse() int     { return len(p.owned) - len(p.free) }

// Bound is one past the highest block id in use: every block a table holds is below it.
func (p *Pool) Bound() int { return p.bound }

// Alloc takes the lowest free block.
func (p *Pool) Alloc() (int32, error) {
	if len(p.free) == 0 {
		return -1, ErrNoBlocks
	}
	id := heap.Pop(&p.free).(int32)
	p.owned[id] = true
	p.bound = max(p.bound, int(id)+1)
	return id, nil
}

// Release returns a block to the free list. Releasing a block that is not owned is a bug and panics.
func (p *Pool) Release(id int32) {
	if id < 0 || int(id) >= len(p.owned) || !p.owned[id] {
		panic(fmt.Sprintf("kvpages: release of block %d that is not in use", id))
	}
	p.owned[id] = false
	heap.Push(&p.free, id)
	// The bound falls past every free block at the top. Lowest-first allocation keeps the blocks in use
	// packed, so this walk is short except right after a large release, whose blocks it pays for once.
	for p.bound > 0 && !p.owned[p.bound-1] {
		p.bound--
	}
}

// idHeap is a min-heap of block ids for container/heap.
type idHeap []int32

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(int32)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
