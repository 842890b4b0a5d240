package cpu

import "sync"

// workers is the fast backend's persistent thread pool: n-1 goroutines started once, plus the caller,
// each taking one fixed part of every job (static partitioning: part i of parts). Jobs run one at a time.
type workers struct {
	n    int
	mu   sync.Mutex // one job at a time
	wake []chan struct{}
	wg   sync.WaitGroup
	task func(part int)

	// scratch is per-part memory the ops reuse between calls (attention's probabilities and sums).
	scratch [][]float64
}

func newWorkers(n int) *workers {
	p := &workers{n: max(n, 1)}
	p.scratch = make([][]float64, p.n)
	for i := 1; i < p.n; i++ {
		ch := make(chan struct{})
		p.wake = append(p.wake, ch)
		go p.loop(i, ch)
	}
	return p
}

func (p *workers) loop(part int, wake chan struct{}) {
	for range wake {
		p.task(part)
		p.wg.Done()
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
	p.task = task
	p.wg.Add(parts - 1)
	for i := 1; i < parts; i++ {
		p.wake[i-1] <- struct{}{}
	}
	task(0)
	p.wg.Wait()
	p.task = nil
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
	for _, ch := range p.wake {
		close(ch)
	}
	p.wake = nil
	p.n = 1
}
