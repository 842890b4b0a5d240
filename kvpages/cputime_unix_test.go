//go:build unix

package kvpages

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used (user + system), for benchmarks on shared machines
// where wall time mostly measures the neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
