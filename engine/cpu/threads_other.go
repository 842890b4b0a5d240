//go:build !linux

package cpu

// physicalCores: unknown here; DefaultThreads uses GOMAXPROCS.
func physicalCores() int { return 0 }
