package gpu

// MemoryAvailable is what is left of the device heap kvc allocates from: the heap size minus the device
// memory kvc holds (whole sub-allocation blocks, so a little less than a driver would report free).
func (b *Backend) MemoryAvailable() int64 {
	left, _ := b.mem.heapLeft()
	return int64(left)
}
