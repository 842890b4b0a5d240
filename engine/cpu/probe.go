package cpu

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// ReadProbe is the host's measured read bandwidth: the yardstick of a bandwidth-bound decode step.
type ReadProbe struct {
	GBps       float64 `json:"read_gb_s"`        // bytes read per second / 1e9, the best pass (STREAM's convention)
	MedianGBps float64 `json:"read_gb_s_median"` // the median pass: on a shared host passes vary a lot
	Bytes      int64   `json:"bytes"`            // buffer size
	Threads    int     `json:"threads"`
	Passes     int     `json:"passes"`
	Kernels    string  `json:"kernels"`
}

// ProbeRead measures read bandwidth STREAM-style over passes timed passes (see ReadProber).
func ProbeRead(threads, passes int) ReadProbe {
	r := NewReadProber(threads)
	defer r.Close()
	for range max(passes, 1) {
		r.Pass()
	}
	return r.Result()
}

// ReadProber measures read bandwidth one pass at a time, so that a benchmark can spread the passes over its
// run and the yardstick sees the host in the same seconds as what it measures: threads workers
// (DefaultThreads if <= 0) each sum a contiguous part of one buffer of f32 with the row kernel. The buffer
// is 256 MiB or 8 times the largest cache the OS reports, whichever is larger, so it is read from memory,
// not cache.
type ReadProber struct {
	buf     []float32
	threads int
	pool    *workers
	sums    []float32
	passes  []time.Duration
}

func NewReadProber(threads int) *ReadProber {
	if threads <= 0 {
		threads = DefaultThreads()
	}
	bytes := max(int64(256<<20), 8*largestCache())
	n := int(bytes / 4)
	words := hugeWords(n) // the pages the weights get, so that the yardstick reads memory as decode does
	r := &ReadProber{buf: unsafe.Slice((*float32)(unsafe.Pointer(&words[0])), n), threads: threads,
		pool: newWorkers(threads), sums: make([]float32, threads)}
	r.pool.run(threads, func(i int) { // first touch, by the thread that will read it
		x := r.part(i)
		for j := range x {
			x[j] = 1
		}
	})
	return r
}

func (r *ReadProber) part(i int) []float32 {
	n := len(r.buf)
	return r.buf[n*i/r.threads : n*(i+1)/r.threads]
}

// Pass reads the whole buffer once, timed.
func (r *ReadProber) Pass() {
	runtime.GC() // no collection pending: one would have to stop the threads mid-pass
	t0 := time.Now()
	r.pool.run(r.threads, func(i int) {
		// 1 MiB per call: the runtime can preempt between calls, not inside the assembly
		x := r.part(i)
		for lo := 0; lo < len(x); lo += 1 << 18 {
			c := x[lo:min(lo+1<<18, len(x))]
			if useAsm {
				r.sums[i] += asmDotF32(&c[0], &c[0], len(c)&^7) // each element read from memory once, then from L1
			} else {
				r.sums[i] += dot(c, c)
			}
		}
	})
	r.passes = append(r.passes, time.Since(t0))
}

// Result is the best and the median of the passes so far (none: zero rates).
func (r *ReadProber) Result() ReadProbe {
	bytes := float64(len(r.buf) * 4)
	res := ReadProbe{Bytes: int64(len(r.buf) * 4), Threads: r.threads, Passes: len(r.passes), Kernels: Kernels()}
	if len(r.passes) == 0 {
		return res
	}
	t := slices.Clone(r.passes)
	slices.Sort(t)
	res.GBps = bytes / t[0].Seconds() / 1e9
	res.MedianGBps = bytes / t[len(t)/2].Seconds() / 1e9
	return res
}

// Close stops the prober's workers; the buffer goes with the prober.
func (r *ReadProber) Close() { r.pool.close() }

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
