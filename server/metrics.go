package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kvc/engine"
)

// metrics are the server's Prometheus series, on a registry of its own (several servers in one test
// process do not mix). Scheduler totals are sampled after every step, on the scheduler goroutine.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec // HTTP requests by endpoint and status
	finishedReqs *prometheus.CounterVec // scheduled requests by finish reason
	promptTokens prometheus.Counter
	genTokens    prometheus.Counter
	ttft         prometheus.Histogram
	tpot         prometheus.Histogram
	e2e          prometheus.Histogram

	mu    sync.Mutex // the scheduler sample below
	snap  engine.SchedulerStats
	run   int
	used  int
	free  int
	queue func() int // the scheduler's Pending, once started
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kvc_http_requests_total",
		Help: "Generation requests received, by endpoint and HTTP status (499: the client went away before the response)."}, []string{"endpoint", "code"})
	m.finishedReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kvc_requests_finished_total",
		Help: "Requests the scheduler finished, by finish reason (stop, length, context, error, cancelled)."}, []string{"reason"})
	m.promptTokens = prometheus.NewCounter(prometheus.CounterOpts{Name: "kvc_prompt_tokens_total", Help: "Prompt tokens of the requests submitted to the scheduler."})
	m.genTokens = prometheus.NewCounter(prometheus.CounterOpts{Name: "kvc_generation_tokens_total", Help: "Tokens generated (finished and cancelled requests)."})
	lat := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kvc_time_to_first_token_seconds",
		Help: "From the request's arrival to its first generated token (queueing and prefill included).", Buckets: lat})
	m.tpot = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kvc_time_per_output_token_seconds",
		Help: "Between consecutive generated tokens of a request.", Buckets: lat})
	m.e2e = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kvc_request_duration_seconds",
		Help: "From admission to finish of the requests the scheduler ran.", Buckets: lat})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(m.requests, m.finishedReqs, m.promptTokens, m.genTokens, m.ttft, m.tpot, m.e2e,
		gauge("kvc_queue_depth", "Requests waiting for admission.", func() float64 {
			m.mu.Lock()
			q := m.queue
			m.mu.Unlock()
			if q == nil {
				return 0
			}
			return float64(q())
		}),
		gauge("kvc_running_requests", "Requests admitted to the running batch.", m.read(func() float64 { return float64(m.run) })),
		gauge("kvc_kv_blocks_used", "KV pool blocks in use.", m.read(func() float64 { return float64(m.used) })),
		gauge("kvc_kv_blocks_free", "KV pool blocks free.", m.read(func() float64 { return float64(m.free) })),
		counter("kvc_compression_rounds_total", "KV-Compress eviction rounds.", m.read(func() float64 { return float64(m.snap.CompressRounds) })),
		counter("kvc_evicted_kvs_total", "KVs evicted by compression.", m.read(func() float64 { return float64(m.snap.Compress.EvictedKVs) })),
		counter("kvc_preemptions_total", "Requests preempted (blocks released, recomputed later).", m.read(func() float64 { return float64(m.snap.Preemptions) })),
		counter("kvc_scheduler_steps_total", "Scheduler steps.", m.read(func() float64 { return float64(m.snap.Steps) })),
	)
	return m
}

func (m *metrics) read(f func() float64) func() float64 {
	return func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return f()
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// step samples the scheduler (on its goroutine).
func (m *metrics) step(running, used, free int, st engine.SchedulerStats) {
	m.mu.Lock()
	m.run, m.used, m.free, m.snap = running, used, free, st
	m.mu.Unlock()
}

func (m *metrics) setQueue(f func() int) {
	m.mu.Lock()
	m.queue = f
	m.mu.Unlock()
}

func (m *metrics) request(endpoint string, code int) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}

func (m *metrics) submitted(promptTokens int) { m.promptTokens.Add(float64(promptTokens)) }

func (m *metrics) finished(r engine.Result) {
	m.finishedReqs.WithLabelValues(r.FinishReason).Inc()
	m.genTokens.Add(float64(len(r.Tokens)))
	if r.Time > 0 {
		m.e2e.Observe(r.Time.Seconds())
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(mustJSON(v), '\n'))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the server's own response types are marshalled
	}
	return b
}
