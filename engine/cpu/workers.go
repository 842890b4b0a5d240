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
// one, for up to a budget (below) before parking on a channel.
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
	spin     []spinBudget // per part: the caller's (0) and each worker's polling budget
	pressure pressure

	// scratch is per-part memory the ops reuse between calls (attention's probabilities and sums).
	scratch [][]float64
}

// job is immutable once published, so a worker that takes no part in it reads it without a race.
type job struct {
	gen   uint64
	parts int // workers 1..parts-1 run task; 0: stop
	task  func(part int)
}

// How long an idle side polls before parking depends on the machine. On an idle one, a side that parks
// after 50 us wakes 50-100 us late for the next job (a wake-up on a virtual machine), its partner then
// waits as long and parks in turn, and a decode step loses a fifth of its time or more to that chain:
// polling through the whole gap avoids it. Where other threads wait for a CPU, a side that polls keeps a
// core from them and from its own partner, and parking soon is faster. So the pool samples the kernel's
// CPU pressure (cpuStall) every pressureEvery: while others waited for a CPU more than pressureBusy of
// the time, or where the kernel does not say, every side polls spinStart; otherwise each side adapts its
// own budget to the waits it parked for: one that ended within spinMax doubles the budget (polling would
// have covered it), a longer one (an idle pool) halves it, down to spinMin. KVC_CPU_SPIN (a Go duration,
// 0 to park at once) fixes the budget.
//
// Measured, 125M f16 decode step (ms), fixed budgets, same build, interleaved rounds: with the machine's
// other work niced below the benchmark, 50 us 12.98-14.81, 200 us 7.94-9.50, 500 us 8.21-9.06; load 7-9
// at equal priority, 50 us 13.0-14.7, 200 us 14.4-21.9, 500 us 21.9-23.3.
var spinFixed, spinIsFixed = spinSetting(os.Getenv("KVC_CPU_SPIN"))

const (
	spinMin       = 20 * time.Microsecond
	spinMax       = time.Millisecond
	spinStart     = 50 * time.Microsecond
	pressureEvery = 100 * time.Millisecond
	pressureBusy  = 0.2
)

// spinSetting parses KVC_CPU_SPIN: a duration >= 0 fixes the budget; anything else leaves it adaptive.
func spinSetting(env string) (time.Duration, bool) {
	if d, err := time.ParseDuration(env); err == nil && d >= 0 {
		return d, true
	}
	return 0, false
}

// spinBudget is one side's polling budget.
type spinBudget struct {
	d     time.Duration
	fixed bool // KVC_CPU_SPIN: no adapting
}

func newSpinBudget() spinBudget {
	if spinIsFixed {
		return spinBudget{spinFixed, true}
	}
	return spinBudget{spinStart, false}
}

// limit is how long to poll now: spinStart while the machine is busy, unless the budget is fixed.
func (b *spinBudget) limit(busy bool) time.Duration {
	if busy && !b.fixed {
		return spinStart
	}
	return b.d
}

// after adapts the budget to a wait of w that had to park.
func (b *spinBudget) after(w time.Duration) {
	switch {
	case b.fixed:
	case w < spinMax:
		b.d = min(spinMax, max(2*b.d, 2*w))
	default:
		b.d = max(spinMin, b.d/2)
	}
}

// pressure tracks whether other threads wait for a CPU, from the kernel's stall total sampled by run.
type pressure struct {
	busy  atomic.Bool // read by every side; true until a sample says otherwise
	at    time.Time   // the last sample (under the pool's mu)
	stall time.Duration
}

// sample updates busy when pressureEvery has passed since the last sample.
func (g *pressure) sample(now time.Time) {
	if now.Sub(g.at) < pressureEvery {
		return
	}
	stall, ok := cpuStall()
	if !ok || g.at.IsZero() || stall < g.stall {
		g.busy.Store(true) // no figures, or no earlier sample to compare with
	} else {
		g.busy.Store(float64(stall-g.stall) > pressureBusy*float64(now.Sub(g.at)))
	}
	g.at, g.stall = now, stall
}

func newWorkers(n int) *workers {
	p := &workers{n: max(n, 1), finished: make(chan struct{}, 1)}
	p.scratch = make([][]float64, p.n)
	p.parked = make([]atomic.Bool, p.n)
	p.wake = make([]chan struct{}, p.n)
	p.spin = make([]spinBudget, p.n)
	for i := range p.spin {
		p.spin[i] = newSpinBudget()
	}
	p.pressure.busy.Store(true)
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
	await(func() bool { j = p.cur.Load(); return j.gen != seen }, &p.parked[part], p.wake[part], &p.spin[part], &p.pressure.busy)
	return j
}

// await returns once ready() holds: it polls for the side's budget, then parks on wake with parked set.
// The side that makes ready() true takes parked back (CompareAndSwap) before sending one token on wake,
// so a waiter that finds ready() true after setting parked takes that token if the flag is already gone.
func await(ready func() bool, parked *atomic.Bool, wake <-chan struct{}, budget *spinBudget, busy *atomic.Bool) {
	start, slept := time.Now(), false
	limit := budget.limit(busy.Load())
	for i := 1; !ready(); i++ {
		if i%64 != 0 || slept {
			continue
		}
		if time.Since(start) < limit {
			yield(i)
			continue
		}
		parked.Store(true)
		if !ready() {
			<-wake
		} else if !parked.CompareAndSwap(true, false) {
			<-wake // the other side took the flag: take its token
		}
		slept = true // the token says ready() holds; the loop's test reads it again (next's job)
	}
	if slept && !busy.Load() {
		budget.after(time.Since(start))
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
	p.pressure.sample(time.Now())
	p.gen++
	p.pending.Store(int32(parts - 1))
	p.publish(&job{gen: p.gen, parts: parts, task: task})
	task(0)
	await(func() bool { return p.pending.Load() == 0 }, &p.waiting, p.finished, &p.spin[0], &p.pressure.busy)
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
