package engine_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/gpu"
	"kvc/engine/vk/vktest"
	"kvc/model"
)

// storiesPath is the real stories260K checkpoint in ../shared/models (never committed).
func storiesPath(t testing.TB) string {
	p := filepath.Join("..", "..", "shared", "models", "stories260K", "stories260K.bin")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stories260K not found at %s: %v", p, err)
	}
	return p
}

func openStories(t testing.TB) *model.Checkpoint {
	ck, err := model.Open(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func newEngine(t testing.TB, b engine.Backend, ck *model.Checkpoint, opt engine.Options) *engine.Engine {
	w, err := engine.LoadWeights(b, ck, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opt.KVBlocks == 0 {
		opt.KVBlocks = 16384
	}
	e, err := engine.NewEngine(b, ck.Config, w, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func maxRelErr(got, want []float32) float64 {
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	worst := 0.0
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i]))/scale)
	}
	return worst
}

// The paged engine on the CPU backend gives the dense reference's logits, for several block sizes, a
// prefill split into chunks, and decode steps past block boundaries.
func TestPagedForwardMatchesDense(t *testing.T) {
	ck := openStories(t)
	prompt := []int{1, 403, 407, 261, 378, 324, 266, 297, 259, 360, 281, 402, 275, 426}
	for _, bs := range []int{1, 4, 16, 32} {
		t.Run(fmt.Sprintf("block%d", bs), func(t *testing.T) {
			testPagedForwardMatchesDense(t, &cpu.Backend{}, ck, prompt, bs)
		})
		t.Run(fmt.Sprintf("fast/block%d", bs), func(t *testing.T) {
			fast := cpu.New(2)
			defer fast.Close()
			testPagedForwardMatchesDense(t, fast, ck, prompt, bs)
		})
	}
}

func testPagedForwardMatchesDense(t *testing.T, b engine.Backend, ck *model.Checkpoint, prompt []int, bs int) {
	e := newEngine(t, b, ck, engine.Options{BlockSize: bs, MaxRows: 5})
	d := newDense(t, ck)
	s := e.NewSequence(engine.SamplerConfig{})
	got, err := e.Prefill(s, prompt)
	if err != nil {
		t.Fatal(err)
	}
	var want []float32
	for _, tok := range prompt {
		want = d.step(tok)
	}
	if r := maxRelErr(got, want); r > 1e-4 {
		t.Fatalf("prefill logits differ from the dense reference: max rel err %.3g", r)
	}
	tok := engine.Argmax(got)
	for i := 0; i < 40; i++ {
		out, err := e.Decode([]*engine.Sequence{s}, []int{tok})
		if err != nil {
			t.Fatal(err)
		}
		want = d.step(tok)
		if r := maxRelErr(out[0], want); r > 1e-4 {
			t.Fatalf("decode step %d: logits differ from the dense reference: max rel err %.3g", i, r)
		}
		tok = engine.Argmax(want)
	}
}

// greedy generates n tokens for each prompt, either as one batch or one sequence at a time.
func greedy(t testing.TB, e *engine.Engine, prompts [][]int, n int, batched bool) [][]int {
	out := make([][]int, len(prompts))
	run := func(idx []int) {
		seqs := make([]*engine.Sequence, len(idx))
		next := make([]int, len(idx))
		for j, i := range idx {
			seqs[j] = e.NewSequence(engine.SamplerConfig{})
			logits, err := e.Prefill(seqs[j], prompts[i])
			if err != nil {
				t.Fatal(err)
			}
			next[j] = engine.Argmax(logits)
		}
		for step := 0; step < n; step++ {
			for j, i := range idx {
				out[i] = append(out[i], next[j])
			}
			logits, err := e.Decode(seqs, next)
			if err != nil {
				t.Fatal(err)
			}
			for j := range idx {
				next[j] = engine.Argmax(logits[j])
			}
		}
		for _, s := range seqs {
			e.Release(s)
		}
	}
	if batched {
		idx := make([]int, len(prompts))
		for i := range idx {
			idx[i] = i
		}
		run(idx)
	} else {
		for i := range prompts {
			run([]int{i})
		}
	}
	return out
}

// prefillGreedy starts one greedy sequence per prompt and returns them with each one's first token.
func prefillGreedy(t testing.TB, e *engine.Engine, prompts [][]int) ([]*engine.Sequence, []int) {
	t.Helper()
	seqs := make([]*engine.Sequence, len(prompts))
	next := make([]int, len(prompts))
	for i := range seqs {
		seqs[i] = e.NewSequence(engine.SamplerConfig{})
		logits, err := e.Prefill(seqs[i], prompts[i])
		if err != nil {
			t.Fatal(err)
		}
		next[i] = engine.Argmax(logits)
	}
	return seqs, next
}

func randomPrompts(n, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 7))
	ps := make([][]int, n)
	for i := range ps {
		ps[i] = []int{1}
		for j := r.IntN(20); j >= 0; j-- {
			ps[i] = append(ps[i], 3+r.IntN(vocab-3))
		}
	}
	return ps
}

// 8 prompts of different lengths decoded as one batch give exactly the tokens each gives alone, whatever
// the block size (paging must not change the math).
func testBatchEqualsAlone(t *testing.T, b engine.Backend) {
	ck := openStories(t)
	prompts := randomPrompts(8, ck.Config.Vocab, 3)
	alone := greedy(t, newEngine(t, b, ck, engine.Options{BlockSize: 16, MaxRows: 64}), prompts, 16, false)
	for _, bs := range []int{1, 4, 16, 32} {
		e := newEngine(t, b, ck, engine.Options{BlockSize: bs, MaxRows: 64})
		batch := greedy(t, e, prompts, 16, true)
		for i := range prompts {
			if fmt.Sprint(alone[i]) != fmt.Sprint(batch[i]) {
				t.Fatalf("block %d, prompt %d: batch gave %v, alone (block 16) %v", bs, i, batch[i], alone[i])
			}
		}
		if e.Pool.InUse() != 0 {
			t.Fatalf("block %d: %d blocks still in use after every sequence was released", bs, e.Pool.InUse())
		}
	}
}

func TestBatchEqualsAloneCPU(t *testing.T) { testBatchEqualsAlone(t, &cpu.Backend{}) }

// openVulkan opens the test's Vulkan device (see vktest.Open); it is closed at cleanup.
func openVulkan(t testing.TB) *gpu.Backend {
	t.Helper()
	return openVulkanWith(t, gpu.Options{})
}

// openVulkanWith is openVulkan with options.
func openVulkanWith(t testing.TB, opts gpu.Options) *gpu.Backend {
	t.Helper()
	return vktest.Open(t, func(index int) (*gpu.Backend, error) {
		if index < 0 {
			return gpu.OpenBest(opts)
		}
		return gpu.Open(index, opts)
	}, gpu.ErrNoVulkan)
}

func TestBatchEqualsAloneVulkan(t *testing.T) { testBatchEqualsAlone(t, openVulkan(t)) }

func TestBatchEqualsAloneCPUFast(t *testing.T) {
	fast := cpu.New(2)
	defer fast.Close()
	testBatchEqualsAlone(t, fast)
}

// On the Vulkan device, the forward pass gives the CPU backend's logits within 1e-4 (f32 weights), through
// a chunked prefill and decode steps.
func TestVulkanLogitsMatchCPU(t *testing.T) {
	ck := openStories(t)
	prompt := []int{1, 403, 407, 261, 378, 324, 266, 297, 259, 360, 281, 402, 275, 426}
	opt := engine.Options{BlockSize: 16, MaxRows: 8, KVType: engine.KVF32}
	eg := newEngine(t, openVulkan(t), ck, opt)
	ec := newEngine(t, &cpu.Backend{}, ck, opt)
	sg, sc := eg.NewSequence(engine.SamplerConfig{}), ec.NewSequence(engine.SamplerConfig{})
	lg, err := eg.Prefill(sg, prompt)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := ec.Prefill(sc, prompt)
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 30; step++ {
		if r := maxRelErr(lg, lc); r > 1e-4 {
			t.Fatalf("step %d: vulkan logits differ from cpu: max rel err %.3g", step, r)
		}
		tok := engine.Argmax(lc)
		og, err := eg.Decode([]*engine.Sequence{sg}, []int{tok})
		if err != nil {
			t.Fatal(err)
		}
		oc, err := ec.Decode([]*engine.Sequence{sc}, []int{tok})
		if err != nil {
			t.Fatal(err)
		}
		lg, lc = og[0], oc[0]
	}
}
