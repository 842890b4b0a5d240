package gpu

import (
	"fmt"

	"kvc/engine/vk"
)

// descriptorCache keeps one descriptor set per (kernel layout, buffers, offsets, ranges): a decode step binds
// the same buffers every token, so after the first step no set is allocated or written.
type descriptorCache struct {
	dev     *vk.Device
	pools   []vk.DescriptorPool
	entries map[uint64][]*descEntry // by hash of the key
	count   int
	limit   int // past this many cached sets, Sync recycles them all
}

type descEntry struct {
	k      *Kernel
	bufs   []vk.Buffer
	offs   []uint64
	ranges []uint64
	owners []*Buffer
	set    vk.DescriptorSet
	dead   bool
	hash   uint64
}

const (
	poolSets        = 256
	poolDescriptors = poolSets * 8
)

func (c *descriptorCache) init(dev *vk.Device) {
	c.dev = dev
	c.entries = map[uint64][]*descEntry{}
	c.limit = maxCachedSets
}

// maxCachedSets bounds the cache when ops bind ever-changing ranges (its pools would grow without end).
const maxCachedSets = 8192

// trim recycles every cached set once there are too many; only call it when no command is pending.
func (c *descriptorCache) trim() {
	if c.count <= c.limit {
		return
	}
	for _, list := range c.entries {
		for _, e := range list {
			e.dead = true
			e.k.freeSets = append(e.k.freeSets, e.set)
			for _, o := range e.owners {
				o.sets = o.sets[:0]
			}
		}
	}
	c.entries = map[uint64][]*descEntry{}
	c.count = 0
}

func (c *descriptorCache) destroy() {
	for _, p := range c.pools {
		c.dev.DestroyDescriptorPool(p)
	}
	c.pools = nil
	c.entries = nil
}

func hashKey(k *Kernel, bufs []vk.Buffer, offs, ranges []uint64) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		h ^= v
		h *= prime
	}
	mix(k.pipe.Layout)
	for i := range bufs {
		mix(uint64(bufs[i]))
		mix(offs[i])
		mix(ranges[i])
	}
	return h
}

func (e *descEntry) matches(k *Kernel, bufs []vk.Buffer, offs, ranges []uint64) bool {
	if e.k != k || len(e.bufs) != len(bufs) {
		return false
	}
	for i := range bufs {
		if e.bufs[i] != bufs[i] || e.offs[i] != offs[i] || e.ranges[i] != ranges[i] {
			return false
		}
	}
	return true
}

// get returns a set for the key, from the cache or newly written.
func (c *descriptorCache) get(k *Kernel, bufs []vk.Buffer, offs, ranges []uint64, owners []*Buffer, st *Stats) (vk.DescriptorSet, error) {
	h := hashKey(k, bufs, offs, ranges)
	for _, e := range c.entries[h] {
		if e.matches(k, bufs, offs, ranges) {
			st.DescriptorHits++
			return e.set, nil
		}
	}
	var set vk.DescriptorSet
	if n := len(k.freeSets); n > 0 {
		set = k.freeSets[n-1]
		k.freeSets = k.freeSets[:n-1]
	} else {
		var err error
		if set, err = c.alloc(k); err != nil {
			return 0, err
		}
	}
	if len(bufs) > 0 {
		c.dev.UpdateDescriptorSet(set, k.pipe, bufs, offs, ranges)
	}
	e := &descEntry{k: k, bufs: append([]vk.Buffer(nil), bufs...), offs: append([]uint64(nil), offs...),
		ranges: append([]uint64(nil), ranges...), owners: append([]*Buffer(nil), owners...), set: set, hash: h}
	c.entries[h] = append(c.entries[h], e)
	for _, o := range owners {
		o.sets = append(o.sets, e)
	}
	c.count++
	st.DescriptorNew++
	return set, nil
}

func (c *descriptorCache) alloc(k *Kernel) (vk.DescriptorSet, error) {
	if n := len(c.pools); n > 0 {
		set, err := c.dev.AllocateDescriptorSet(c.pools[n-1], k.pipe)
		if err == nil {
			return set, nil
		}
		if ve, ok := err.(*vk.Error); !ok || !ve.OutOfPool() {
			return 0, fmt.Errorf("gpu: descriptor set for %s: %w", k.Name, err)
		}
	}
	// Grow: a new pool, big enough for this kernel even if it binds many buffers.
	nd := uint32(poolDescriptors)
	if need := uint32(k.nDesc * poolSets); need > nd {
		nd = need
	}
	p, err := c.dev.CreateDescriptorPool(poolSets, nd)
	if err != nil {
		return 0, fmt.Errorf("gpu: descriptor pool: %w", err)
	}
	c.pools = append(c.pools, p)
	set, err := c.dev.AllocateDescriptorSet(p, k.pipe)
	if err != nil {
		return 0, fmt.Errorf("gpu: descriptor set for %s: %w", k.Name, err)
	}
	return set, nil
}

// forget drops the cached sets that point at buf (about to be destroyed, so its handle may be reused) and
// recycles them; the caller guarantees no pending command uses them.
func (c *descriptorCache) forget(buf *Buffer) {
	for _, e := range buf.sets {
		if e.dead {
			continue
		}
		e.dead = true
		c.count--
		list := c.entries[e.hash]
		for i, x := range list {
			if x == e {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(c.entries, e.hash)
		} else {
			c.entries[e.hash] = list
		}
		e.k.freeSets = append(e.k.freeSets, e.set)
		for _, o := range e.owners {
			if o != buf {
				o.sets = removeEntry(o.sets, e)
			}
		}
	}
	buf.sets = nil
}

func removeEntry(list []*descEntry, e *descEntry) []*descEntry {
	for i, x := range list {
		if x == e {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}
