package gpu

// MemoryAvailable is what is left of the device heap kvc allocates from: the heap size minus the device
// memory kvc holds (whole sub-allocation blocks, so a little less than a driver would report free).
func (b *Backend) MemoryAvailable() int64 {
	left, _ := b.mem.heapLeft()
	return int64(left)
}

// KVF16 reports whether the paged cache can store K and V as f16 here (16-bit storage enabled).
func (b *Backend) KVF16() bool { return b.caps.Storage16 }
