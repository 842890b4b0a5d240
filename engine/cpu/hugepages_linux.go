package cpu

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeWords returns n zeroed words (the weights' and the probe's memory), the whole 2 MiB pages inside
// them advised as transparent huge pages: where THP is "madvise" (the default of many distributions) Go's
// heap gets 4 KiB pages, and a decode step, which streams every weight once, then takes a TLB miss and a
// page walk for every 4 KiB of each of its streams. Advised before the first touch (the upload's copy), so
// that the pages are faulted in huge.
func hugeWords(n int) []uint32 {
	w := make([]uint32, n)
	const huge = 2 << 20
	if n*4 < 2*huge {
		return w
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n*4)
	start := uintptr(unsafe.Pointer(&b[0]))
	lo, hi := int((start+huge-1)&^(huge-1)-start), int((start+uintptr(len(b)))&^(huge-1)-start)
	if lo < hi {
		_ = unix.Madvise(b[lo:hi], unix.MADV_HUGEPAGE) // advice only: without it the pages stay small
	}
	return w
}
