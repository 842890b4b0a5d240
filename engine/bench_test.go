package engine_test

import (
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
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
