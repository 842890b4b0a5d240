package cpu

import (
	"runtime"
	"sync"
)

// DefaultThreads is how many workers the CPU backend runs unless told: one per physical core this process
// may use (a decode step is bound by memory and a prompt by the vector units, neither of which a second
// hardware thread on the same core adds; llama.cpp's CPU backend defaults to the physical cores too), and
// never more than GOMAXPROCS, which the Go runtime lowers to a container's CPU limit.
func DefaultThreads() int {
	n := runtime.GOMAXPROCS(0)
	if cores := coresOnce(); cores > 0 {
		n = min(n, cores)
	}
	return max(n, 1)
}

// coresOnce reads the core topology once: the reference backend asks for its thread count on every op.
var coresOnce = sync.OnceValue(physicalCores)

// countCores is the number of distinct cores among cpus, siblings(cpu) naming a CPU's core (the list of
// hardware threads it shares a core with); 0 if a CPU's core is unknown.
func countCores(cpus []int, siblings func(cpu int) (string, bool)) int {
	seen := map[string]bool{}
	for _, c := range cpus {
		s, ok := siblings(c)
		if !ok {
			return 0
		}
		seen[s] = true
	}
	return len(seen)
}
