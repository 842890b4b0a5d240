package engine_test

import (
	"fmt"
	"math"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/kvpages"
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
			if err := b.ReadSlots(e.KV, blocks, m, p, nil); err != nil {
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
	if err := b.ReadSlots(e.KV, blocks, raw, pos, nil); err != nil {
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

// vatp ranks each KV by its per-query mean attention times the L1 norm of its V row: ReadHeadSlots gives
// exactly ReadSlots' raw metric times its norm over the queries that added, on every backend, and the
// backends agree with the CPU reference.
func testValueNormMetric(t *testing.T, b engine.Backend) {
	ck := openStories(t)
	src, err := kvpages.PolicyKVCompress.MetricWith(kvpages.MetricVATP)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		opt := engine.Options{BlockSize: 4, MaxRows: 64, KVType: typ}
		opt.SetMetric(src, -1, true)
		run := func(b engine.Backend) ([]kvpages.HeadSlots, []float32, []float32, *kvpages.Seq) {
			e := newEngine(t, b, ck, opt)
			s := e.NewSequence(engine.SamplerConfig{})
			if _, err := e.Prefill(s, []int{1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150}); err != nil {
				t.Fatal(err)
			}
			for _, tok := range []int{160, 170} { // decode rows add to the metric too
				if _, err := e.Forward([]engine.Item{{Seq: s.KV, Tokens: []int{tok}, Logits: true}}); err != nil {
					t.Fatal(err)
				}
			}
			blocks := s.KV.SlotBlocks()
			raw, norm := make([]float32, len(blocks)*opt.BlockSize), make([]float32, len(blocks)*opt.BlockSize)
			if err := b.ReadSlots(e.KV, blocks, raw, make([]int32, len(raw)), norm); err != nil {
				t.Fatal(err)
			}
			hs, err := e.ReadHeadSlots(s.KV)
			if err != nil {
				t.Fatal(err)
			}
			return hs, raw, norm, s.KV
		}
		hs, raw, norm, seq := run(b)
		ref, _, _, _ := run(&cpu.Backend{})
		next, i, norms := seq.NextPos, 0, map[float32]bool{}
		for hd, h := range hs {
			for j := range seq.Ctx[hd] {
				p := int(h.Pos[j])
				want := raw[i+j] * norm[i+j] / float32(max(next-p-src.Buffer, 1))
				if h.Metric[j] != want {
					t.Fatalf("kv %v head %d position %d: metric %v, want %v (raw %v, V norm %v)", typ, hd, p, h.Metric[j], want, raw[i+j], norm[i+j])
				}
				if r := ref[hd].Metric[j]; math.Abs(float64(h.Metric[j]-r)) > 1e-3*(math.Abs(float64(r))+1e-3) {
					t.Fatalf("kv %v head %d position %d: metric %v, CPU reference %v", typ, hd, p, h.Metric[j], r)
				}
				norms[norm[i+j]] = true
			}
			i += len(h.Metric)
		}
		if len(norms) < 10 {
			t.Fatalf("kv %v: only %d distinct V norms: the test would not see them ignored", typ, len(norms))
		}
	}
}

func TestValueNormMetricCPU(t *testing.T) { testValueNormMetric(t, &cpu.Backend{}) }
func TestValueNormMetricCPUFast(t *testing.T) {
	fast := cpu.New(2)
	defer fast.Close()
	testValueNormMetric(t, fast)
}
func TestValueNormMetricVulkan(t *testing.T) { testValueNormMetric(t, openVulkan(t)) }
