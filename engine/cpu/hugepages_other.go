//go:build !linux

package cpu

// hugeWords returns n zeroed words (huge pages are advised on Linux only).
func hugeWords(n int) []uint32 { return make([]uint32, n) }
