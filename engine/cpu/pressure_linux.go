package cpu

import (
	"os"
	"time"
)

// cpuStall is the kernel's running total of time during which some runnable task waited for a CPU (PSI,
// /proc/pressure/cpu); false where the kernel does not report it. A variable so that tests can replace it.
var cpuStall = func() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	return parseStall(b)
}
