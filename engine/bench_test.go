package engine_test

import (
	"math/rand/v2"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
)

// benchDecode measures decode steps of stories260K for a batch of sequences; it reports tokens/s.
func benchDecode(b *testing.B, be engine.Backend, batch int) {
	ck := openStories(b)
	e := newEngine(b, be, ck, engine.Options{BlockSize: 16, MaxRows: max(64, batch), KVType: engine.KVF32})
	prompts := randomPrompts(batch, ck.Config.Vocab, 9)
	seqs, next := prefillGreedy(b, e, prompts)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if seqs[0].KV.NextPos+1 >= ck.Config.Context { // start over before the context is full
			b.StopTimer()
			for j, s := range seqs {
				e.Release(s)
				seqs[j] = e.NewSequence(engine.SamplerConfig{})
				logits, _ := e.Prefill(seqs[j], prompts[j])
				next[j] = engine.Argmax(logits)
			}
			b.StartTimer()
		}
		out, err := e.Decode(seqs, next)
		if err != nil {
			b.Fatal(err)
		}
		for j := range next {
			next[j] = engine.Argmax(out[j])
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tok/s")
}

func BenchmarkDecodeStoriesCPU(b *testing.B)     { benchDecode(b, &cpu.Backend{}, 1) }
func BenchmarkDecodeStoriesVulkan(b *testing.B)  { benchDecode(b, openVulkan(b), 1) }
func BenchmarkDecodeStoriesVulkan8(b *testing.B) { benchDecode(b, openVulkan(b), 8) }

// benchPrefillMetric measures the prefill of a 500-token prompt (two chunks of 256 rows) of stories260K with
// the default policy's metric collection (every prompt row adds to the window metric, as kvc run
// --kv-budget does); no compression round. It reports prompt tokens/s.
//
//	go test ./engine -run - -bench PrefillMetric -benchtime 10x
func benchPrefillMetric(b *testing.B, be engine.Backend) {
	ck := openStories(b)
	opt := engine.Options{BlockSize: 16, MaxRows: 256, KVType: engine.KVF16}
	m, err := kvpages.PolicyKVCompress.MetricWith(kvpages.MetricDefault)
	if err != nil {
		b.Fatal(err)
	}
	opt.SetMetric(m, -1, true)
	e := newEngine(b, be, ck, opt)
	r := rand.New(rand.NewPCG(3, 7))
	prompt := []int{1}
	for len(prompt) < 500 {
		prompt = append(prompt, 3+r.IntN(ck.Config.Vocab-3))
	}
	run := func() {
		s := e.NewSequence(engine.SamplerConfig{})
		if _, err := e.Prefill(s, prompt); err != nil {
			b.Fatal(err)
		}
		e.Release(s)
	}
	run() // builds the pipelines
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.ReportMetric(float64(b.N*len(prompt))/b.Elapsed().Seconds(), "tok/s")
}

func BenchmarkPrefillMetricStoriesCPU(b *testing.B)    { benchPrefillMetric(b, &cpu.Backend{}) }
func BenchmarkPrefillMetricStoriesVulkan(b *testing.B) { benchPrefillMetric(b, openVulkan(b)) }
