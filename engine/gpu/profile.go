package gpu

import (
	"fmt"
	"sort"
	"strings"

	"kvc/engine/vk"
)

// profiler writes a timestamp before and after each dispatch and accumulates GPU time per kernel name.
type profiler struct {
	on       bool
	pool     vk.QueryPool
	capacity uint32 // queries
	used     uint32
	labels   []string // per dispatch (query pair)
	periodNs float64
	mask     uint64 // timestampValidBits
	dropped  int
	times    map[string][]float64 // kernel name -> per-dispatch microseconds
	scratch  []uint64
}

const profileQueries = 8192

func tsMask(bits uint32) uint64 {
	if bits >= 64 || bits == 0 {
		return ^uint64(0)
	}
	return 1<<bits - 1
}

func (p *profiler) init(dev *vk.Device, periodNs float64, validBits uint32) error {
	pool, err := dev.CreateQueryPool(profileQueries)
	if err != nil {
		return err
	}
	p.on, p.pool, p.capacity, p.periodNs, p.mask = true, pool, profileQueries, periodNs, tsMask(validBits)
	p.times = map[string][]float64{}
	return nil
}

func (p *profiler) destroy(dev *vk.Device) {
	if p.on {
		dev.DestroyQueryPool(p.pool)
		p.on = false
	}
}

func (p *profiler) begin(dev *vk.Device, cmd vk.CommandBuffer) {
	if !p.on {
		return
	}
	dev.CmdResetQueries(cmd, p.pool, 0, p.capacity)
	p.used = 0
	p.labels = p.labels[:0]
}

// before returns the query index of the dispatch's first timestamp, or -1 when not profiling or full.
func (p *profiler) before(dev *vk.Device, cmd vk.CommandBuffer, label string) int {
	if !p.on {
		return -1
	}
	if p.used+2 > p.capacity {
		p.dropped++
		return -1
	}
	q := int(p.used)
	dev.CmdTimestamp(cmd, p.pool, uint32(q))
	p.used += 2
	p.labels = append(p.labels, label)
	return q
}

func (p *profiler) after(dev *vk.Device, cmd vk.CommandBuffer, q int) {
	if q >= 0 {
		dev.CmdTimestamp(cmd, p.pool, uint32(q+1))
	}
}

// collect reads the timestamps of the finished submission.
func (p *profiler) collect(dev *vk.Device) {
	if !p.on || p.used == 0 {
		return
	}
	if cap(p.scratch) < int(p.used) {
		p.scratch = make([]uint64, p.used)
	}
	ts := p.scratch[:p.used]
	if err := dev.QueryResults(p.pool, 0, ts); err != nil {
		return
	}
	for i, label := range p.labels {
		d := float64((ts[2*i+1]-ts[2*i])&p.mask) * p.periodNs / 1e3
		p.times[label] = append(p.times[label], d)
	}
	p.used = 0
	p.labels = p.labels[:0]
}

// ProfileEntry is one kernel's GPU time.
type ProfileEntry struct {
	Name     string
	Calls    int
	TotalMs  float64
	MedianUs float64
}

// Profile returns GPU time per kernel, largest total first (empty unless profiling).
func (b *Backend) Profile() []ProfileEntry {
	var out []ProfileEntry
	for name, ts := range b.prof.times {
		s := append([]float64(nil), ts...)
		sort.Float64s(s)
		tot := 0.0
		for _, v := range s {
			tot += v
		}
		out = append(out, ProfileEntry{Name: name, Calls: len(s), TotalMs: tot / 1e3, MedianUs: s[len(s)/2]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TotalMs > out[j].TotalMs })
	return out
}

// ProfileReport formats Profile as a table: kernel, calls, total ms, median us.
func (b *Backend) ProfileReport() string {
	if !b.prof.on {
		return "gpu: profiling is off (set KVC_PROFILE=1)\n"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-32s %8s %12s %12s\n", "kernel", "calls", "total ms", "median us")
	sum := 0.0
	for _, e := range b.Profile() {
		fmt.Fprintf(&sb, "%-32s %8d %12.3f %12.1f\n", e.Name, e.Calls, e.TotalMs, e.MedianUs)
		sum += e.TotalMs
	}
	fmt.Fprintf(&sb, "%-32s %8s %12.3f\n", "total", "", sum)
	if b.prof.dropped > 0 {
		fmt.Fprintf(&sb, "(%d dispatches not timed: more than %d in one submission)\n", b.prof.dropped, profileQueries/2)
	}
	return sb.String()
}
