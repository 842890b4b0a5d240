package cpu

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workers is the fast backend's persistent thread pool: n-1 goroutines started once, plus the caller,
// each taking one fixed part of every job (static partitioning: part i of parts). Jobs run one at a time.
//
// A decode step is a few dozen short jobs with a little serial work between them. Waking a parked
// goroutine costs the OS a thread wake-up (tens of microseconds on a virtual machine, as long as a small
// job), so both sides poll first: a worker for the next job, and the caller for the end of the current
// one, for up to spinFor before parking on a channel.
type workers struct {
	n  int
	mu sync.Mutex // one job at a time

	cur     atomic.Pointer[job] // the latest job; workers run it once when its gen is new to them
	gen     uint64              // cur's gen (under mu)
	pending atomic.Int32        // workers still running cur

	// Parking: a side sets its flag, then checks once more for what it waits for; the other side takes
	// the flag back (CompareAndSwap) before sending, so exactly one token is sent per park.
	parked   []atomic.Bool // per worker
	wake     []chan struct{}
	waiting  atomic.Bool // the caller, for pending to reach 0
	finished chan struct{}

	// scratch is per-part memory the ops reuse between calls (attention's probabilities and sums).
	scratch [][]float64
}

// job is immutable once published, so a worker that takes no part in it reads it without a race.
type job struct {
	gen   uint64
	parts int // workers 1..parts-1 run task; 0: stop
	task  func(part int)
}

// spinFor is how long an idle side polls before parking: longer than the serial work between the jobs
// of one decode step (a few microseconds), short enough that an idle pool soon stops using the CPU and
// that on an oversubscribed machine a side waiting for a descheduled one soon gives its core back (there
// polling cost decode speed: 125M f16, load 6-8, four interleaved rounds with 200 us against none).
// KVC_CPU_SPIN (a Go duration, 0 to park at once) overrides it.
var spinFor = spinSetting(os.Getenv("KVC_CPU_SPIN"))

const defaultSpin = 50 * time.Microsecond

func spinSetting(env string) time.Duration {
	if d, err := time.ParseDuration(env); err == nil && d >= 0 {
		return d
	}
	return defaultSpin
}

func newWorkers(n int) *workers {
	p := &workers{n: max(n, 1), finished: make(chan struct{}, 1)}
	p.scratch = make([][]float64, p.n)
	p.parked = make([]atomic.Bool, p.n)
	p.wake = make([]chan struct{}, p.n)
	p.cur.Store(&job{parts: 1})
	for i := 1; i < p.n; i++ {
		p.wake[i] = make(chan struct{}, 1)
		go p.loop(i)
	}
	return p
}

func (p *workers) loop(part int) {
	var seen uint64
	for {
		j := p.next(part, seen)
		if j.parts == 0 {
			return
		}
		seen = j.gen
		if part < j.parts {
			j.task(part)
			if p.pending.Add(-1) == 0 && p.waiting.CompareAndSwap(true, false) {
				p.finished <- struct{}{}
			}
		}
	}
}

// next returns the first job after gen seen.
func (p *workers) next(part int, seen uint64) *job {
	var j *job
	await(func() bool { j = p.cur.Load(); return j.gen != seen }, &p.parked[part], p.wake[part])
	return j
}

// await returns once ready() holds: it polls for spinFor, then parks on wake with parked set. The side
// that makes ready() true takes parked back (CompareAndSwap) before sending one token on wake, so a
// waiter that finds ready() true after setting parked takes that token if the flag is already gone.
func await(ready func() bool, parked *atomic.Bool, wake <-chan struct{}) {
	start := time.Now()
	for i := 1; !ready(); i++ {
		if i%64 != 0 {
			continue
		}
		if time.Since(start) < spinFor {
			yield(i)
			continue
		}
		parked.Store(true)
		if ready() {
			if !parked.CompareAndSwap(true, false) {
				<-wake // the other side took the flag: take its token
			}
			return
		}
		<-wake
		start, i = time.Now(), 0
	}
}

// yield lets other goroutines on this thread's P run now and then while a side spins (more goroutines
// than Ps, as in tests); not at every poll, since Gosched takes the scheduler's global lock.
func yield(i int) {
	if i%1024 == 0 {
		runtime.Gosched()
	}
}

// publish makes j the current job and wakes the workers parked for one.
func (p *workers) publish(j *job) {
	p.cur.Store(j)
	for i := 1; i < p.n; i++ {
		if p.parked[i].CompareAndSwap(true, false) {
			p.wake[i] <- struct{}{}
		}
	}
}

// run calls task(0..parts-1), parts <= n, part 0 on the calling goroutine, and returns when all are done.
func (p *workers) run(parts int, task func(part int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts = min(parts, p.n)
	if parts <= 1 {
		task(0)
		return
	}
	p.gen++
	p.pending.Store(int32(parts - 1))
	p.publish(&job{gen: p.gen, parts: parts, task: task})
	task(0)
	await(func() bool { return p.pending.Load() == 0 }, &p.waiting, p.finished)
}

// rows splits [0, n) into parts contiguous ranges and runs f on each; work (multiply-adds, say) below
// serialWork runs on the caller alone, where waking a thread would cost more than it saves.
func (p *workers) rows(n, work int, f func(part, lo, hi int)) {
	parts := p.n
	if work < serialWork {
		parts = 1
	}
	parts = max(min(parts, n), 1)
	p.run(parts, func(part int) { f(part, n*part/parts, n*(part+1)/parts) })
}

const serialWork = 1 << 14

// scratchFor returns part's scratch, at least size long (its contents are stale).
func (p *workers) scratchFor(part, size int) []float64 {
	if len(p.scratch[part]) < size {
		p.scratch[part] = make([]float64, size+size/2)
	}
	return p.scratch[part][:size]
}

// close stops the goroutines; the pool must be idle.
func (p *workers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 1 {
		p.gen++
		p.publish(&job{gen: p.gen, parts: 0})
	}
	p.n = 1
}
