package cpu

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// ReadProbe is the host's measured read bandwidth: the yardstick of a bandwidth-bound decode step.
type ReadProbe struct {
	GBps    float64 `json:"read_gb_s"` // bytes read per second / 1e9, the best pass
	Bytes   int64   `json:"bytes"`     // buffer size
	Threads int     `json:"threads"`
	Passes  int     `json:"passes"`
	Kernels string  `json:"kernels"`
}

// ProbeRead measures read bandwidth STREAM-style: threads workers (all CPUs if <= 0) each sum a
// contiguous part of one buffer of f32 with the row kernel, and the best of passes timed passes counts.
// The buffer is 256 MiB or 8 times the largest cache the OS reports, whichever is larger, so it is read
// from memory, not cache.
func ProbeRead(threads, passes int) ReadProbe {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	passes = max(passes, 1)
	bytes := max(int64(256<<20), 8*largestCache())
	n := int(bytes / 4)
	words := hugeWords(n) // the pages the weights get, so that the yardstick reads memory as decode does
	buf := unsafe.Slice((*float32)(unsafe.Pointer(&words[0])), n)
	p := newWorkers(threads)
	defer p.close()
	part := func(i int) []float32 { return buf[n*i/threads : n*(i+1)/threads] }
	p.run(threads, func(i int) { // first touch, by the thread that will read it
		x := part(i)
		for j := range x {
			x[j] = 1
		}
	})
	sums := make([]float32, threads)
	runtime.GC() // no collection pending: one would have to stop the threads mid-pass
	best := time.Duration(1<<63 - 1)
	for range passes {
		t0 := time.Now()
		p.run(threads, func(i int) {
			// 1 MiB per call: the runtime can preempt between calls, not inside the assembly
			x := part(i)
			for lo := 0; lo < len(x); lo += 1 << 18 {
				c := x[lo:min(lo+1<<18, len(x))]
				if useAsm {
					sums[i] += asmDotF32(&c[0], &c[0], len(c)&^7) // each element read from memory once, then from L1
				} else {
					sums[i] += dot(c, c)
				}
			}
		})
		best = min(best, time.Since(t0))
	}
	return ReadProbe{GBps: float64(bytes) / best.Seconds() / 1e9, Bytes: bytes, Threads: threads, Passes: passes, Kernels: Kernels()}
}

// largestCache is the largest CPU cache in /sys (Linux), or 0.
func largestCache() int64 {
	files, _ := filepath.Glob("/sys/devices/system/cpu/cpu0/cache/index*/size")
	var most int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		mult := int64(1)
		switch {
		case strings.HasSuffix(s, "K"):
			mult, s = 1<<10, strings.TrimSuffix(s, "K")
		case strings.HasSuffix(s, "M"):
			mult, s = 1<<20, strings.TrimSuffix(s, "M")
		}
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			most = max(most, v*mult)
		}
	}
	return most
}
