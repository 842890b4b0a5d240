// Package kvpages is the paged KV cache's bookkeeping: a pool of physical blocks, each holding BlockSize
// slots of one KV head of one layer, per-sequence block tables and context lengths for every
// (layer, KV head), and the KV-Compress eviction schedule with its baselines. It plans; it knows nothing
// about Vulkan. engine executes the plans on the device.
package kvpages

import (
	"errors"
	"fmt"
)

// ErrNoBlocks is returned when the pool has too few free blocks for a request.
var ErrNoBlocks = errors.New("kvpages: out of KV blocks")

// Pool is the free list of N physical blocks.
type Pool struct {
	blockSize int
	free      []int32 // stack of free block ids; lowest ids are handed out first
	owned     []bool
}

// NewPool makes a pool of n blocks of blockSize slots.
func NewPool(n, blockSize int) (*Pool, error) {
	if n <= 0 {
		return nil, fmt.Errorf("kvpages: pool needs at least one block, got %d", n)
	}
	if blockSize <= 0 {
		return nil, fmt.Errorf("kvpages: block size must be positive, got %d", blockSize)
	}
	p := &Pool{blockSize: blockSize, free: make([]int32, n), owned: make([]bool, n)}
	for i := range p.free {
		p.free[i] = int32(n - 1 - i)
	}
	return p, nil
}

func (p *Pool) BlockSize() int { return p.blockSize }
func (p *Pool) Blocks() int    { return len(p.owned) }
func (p *Pool) Free() int      { return len(p.free) }
func (p *Pool) InUse() int     { return len(p.owned) - len(p.free) }

// Alloc takes one free block.
func (p *Pool) Alloc() (int32, error) {
	if len(p.free) == 0 {
		return -1, ErrNoBlocks
	}
	id := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.owned[id] = true
	return id, nil
}

// Release returns a block to the free list. Releasing a block that is not owned is a bug and panics.
func (p *Pool) Release(id int32) {
	if id < 0 || int(id) >= len(p.owned) || !p.owned[id] {
		panic(fmt.Sprintf("kvpages: release of block %d that is not in use", id))
	}
	p.owned[id] = false
	p.free = append(p.free, id)
}
