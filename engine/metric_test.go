package engine_test

import (
	"fmt"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
)

// In a pass that mixes a decode row with a prefill chunk, the decode row adds exactly the metric it adds in
// a pass of its own, and the prefill chunk adds none.
func testMixedPassMetric(t *testing.T, b engine.Backend) {
	ck := openStories(t)
	opt := engine.Options{BlockSize: 4, MaxRows: 64, Metric: engine.MetricSquared, KVType: engine.KVF32}
	run := func(mixed bool) ([]float32, []float32) {
		e := newEngine(t, b, ck, opt)
		a, c := e.NewSequence(engine.SamplerConfig{}), e.NewSequence(engine.SamplerConfig{})
		if _, err := e.Prefill(a, []int{1, 40, 50, 60, 70, 80}); err != nil {
			t.Fatal(err)
		}
		items := []engine.Item{{Seq: c.KV, Tokens: []int{1, 90, 91, 92, 93, 94, 95}, Logits: true}, {Seq: a.KV, Tokens: []int{100}, Logits: true}}
		if mixed {
			if _, err := e.Forward(items); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, it := range items {
				if _, err := e.Forward([]engine.Item{it}); err != nil {
					t.Fatal(err)
				}
			}
		}
		read := func(s *engine.Sequence) []float32 {
			blocks := s.KV.SlotBlocks()
			m := make([]float32, len(blocks)*opt.BlockSize)
			p := make([]int32, len(m))
			if err := b.ReadSlots(e.KV, blocks, m, p); err != nil {
				t.Fatal(err)
			}
			return m
		}
		return read(a), read(c)
	}
	aAlone, cAlone := run(false)
	aMixed, cMixed := run(true)
	if fmt.Sprint(aAlone) != fmt.Sprint(aMixed) {
		t.Fatalf("decode row's metric differs in a mixed pass:\n%v\n%v", aMixed, aAlone)
	}
	sum := float32(0)
	for _, v := range aMixed {
		sum += v
	}
	if sum == 0 {
		t.Fatalf("the decode row added no metric")
	}
	for i, v := range cMixed {
		if v != 0 || cAlone[i] != 0 {
			t.Fatalf("prefill chunk slot %d got metric %v (alone %v)", i, v, cAlone[i])
		}
	}
}

func TestMixedPassMetricCPU(t *testing.T)    { testMixedPassMetric(t, &cpu.Backend{}) }
func TestMixedPassMetricVulkan(t *testing.T) { testMixedPassMetric(t, openVulkan(t)) }

// With a metric buffer of v, a query adds nothing to the v-1 slots before it (nor to its own), and the
// per-query mean divides each slot's metric by the queries that did add: those at least v positions later.
func TestMetricBufferMean(t *testing.T) {
	ck := openStories(t)
	const v = 3
	b := &cpu.Backend{}
	opt := engine.Options{BlockSize: 4, MaxRows: 64, Metric: engine.MetricPlain, PromptMetric: true, MetricAvg: true,
		MetricBuffer: v, KVType: engine.KVF32}
	e := newEngine(t, b, ck, opt)
	s := e.NewSequence(engine.SamplerConfig{})
	if _, err := e.Prefill(s, []int{1, 40, 50, 60, 70, 80, 90}); err != nil {
		t.Fatal(err)
	}
	blocks := s.KV.SlotBlocks()
	raw := make([]float32, len(blocks)*opt.BlockSize)
	pos := make([]int32, len(raw))
	if err := b.ReadSlots(e.KV, blocks, raw, pos); err != nil {
		t.Fatal(err)
	}
	hs, err := e.ReadHeadSlots(s.KV)
	if err != nil {
		t.Fatal(err)
	}
	next := s.KV.NextPos
	i := 0
	for hd, h := range hs {
		for j := range s.KV.Ctx[hd] {
			p, m := int(h.Pos[j]), raw[i+j]
			if inBuffer := p > next-1-v; inBuffer != (m == 0) {
				t.Errorf("head %d position %d of %d: raw metric %v", hd, p, next, m)
			}
			if want := m / float32(max(next-p-v, 1)); h.Metric[j] != want {
				t.Errorf("head %d position %d: mean %v, want %v (%v over %d queries)", hd, p, h.Metric[j], want, m, next-p-v)
			}
		}
		i += len(h.Metric)
	}
}
