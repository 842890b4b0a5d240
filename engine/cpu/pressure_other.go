//go:build !linux

package cpu

import "time"

// cpuStall: no pressure figures here; the pool keeps its short polling.
var cpuStall = func() (time.Duration, bool) { return 0, false }
