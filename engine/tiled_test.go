package engine_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/gpu"
)

// Prompts run through the Vulkan backend's tiled matmul kernel (TiledMinRows 64, the threshold GPUs
// get, applied on whatever device runs the test) give the greedy tokens of the default kernels and the
// CPU backend's logits within 1e-4, on stories260K with prompts of 64 to 130 tokens (a prefill pass of
// more than 64 rows, and a ragged one).
func TestTiledPromptSameTokens(t *testing.T) {
	ck := openStories(t)
	r := rand.New(rand.NewPCG(9, 7))
	prompts := make([][]int, 3)
	for i, n := range []int{130, 64, 97} {
		prompts[i] = []int{1}
		for len(prompts[i]) < n {
			prompts[i] = append(prompts[i], 3+r.IntN(ck.Config.Vocab-3))
		}
	}
	opt := engine.Options{BlockSize: 16, MaxRows: 256, KVType: engine.KVF32}
	tiled := newEngine(t, openVulkanWith(t, gpu.Options{TiledMinRows: 64}), ck, opt)
	plain := newEngine(t, openVulkan(t), ck, opt)
	ref := newEngine(t, &cpu.Backend{}, ck, opt)
	for i, p := range prompts {
		st, sr := tiled.NewSequence(engine.SamplerConfig{}), ref.NewSequence(engine.SamplerConfig{})
		lt, err := tiled.Prefill(st, p)
		if err != nil {
			t.Fatal(err)
		}
		lr, err := ref.Prefill(sr, p)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxRelErr(lt, lr); e > 1e-4 {
			t.Fatalf("prompt %d (%d tokens): tiled prefill logits differ from the cpu: max rel err %.3g", i, len(p), e)
		}
		tiled.Release(st)
		ref.Release(sr)
	}
	got, want := greedy(t, tiled, prompts, 16, true), greedy(t, plain, prompts, 16, true)
	for i := range prompts {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Fatalf("prompt %d: tiled kernel gave %v, default kernels %v", i, got[i], want[i])
		}
	}
}
