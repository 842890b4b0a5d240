package engine_test

import (
	"fmt"
	"testing"

	"kvc/engine"
	"kvc/engine/gpu"
)

// Every prefill chunk and every decode step is exactly one queue submission, on mappable device memory
// and on memory the host cannot map (KVC_DEVICE_MEMORY=discrete: uploads and read-backs go through the
// staging ring), at batch 1 and 8; both memory modes give the same tokens.
func TestOneSubmissionPerStep(t *testing.T) {
	ck := openStories(t)
	prompts := randomPrompts(8, ck.Config.Vocab, 5)
	prompts[0] = append(prompts[0], make([]int, 20)...) // at least 3 chunks of 8 rows
	for i := 1; i < len(prompts[0]); i++ {
		prompts[0][i] = 3 + i
	}
	tokens := map[bool][][]int{}
	for _, discrete := range []bool{false, true} {
		t.Run(fmt.Sprintf("discrete=%v", discrete), func(t *testing.T) {
			b := openVulkanWith(t, gpu.Options{Discrete: discrete})
			if discrete && b.Caps().HostVisibleDeviceMemory {
				t.Fatal("Discrete left device memory mapped")
			}
			e := newEngine(t, b, ck, engine.Options{BlockSize: 16, MaxRows: 8})
			for _, batch := range []int{1, 8} {
				seqs := make([]*engine.Sequence, batch)
				next := make([]int, batch)
				for i := range seqs {
					seqs[i] = e.NewSequence(engine.SamplerConfig{})
					c0 := b.Counters()
					logits, err := e.Prefill(seqs[i], prompts[i])
					if err != nil {
						t.Fatal(err)
					}
					chunks := (len(prompts[i]) + 7) / 8
					if got := b.Counters().Submits - c0.Submits; got != int64(chunks) {
						t.Errorf("batch %d: prefill of %d tokens took %d submissions, want %d (one per chunk)", batch, len(prompts[i]), got, chunks)
					}
					next[i] = engine.Argmax(logits)
				}
				var out [][]int
				for step := 0; step < 4; step++ {
					c0 := b.Counters()
					logits, err := e.Decode(seqs, next)
					if err != nil {
						t.Fatal(err)
					}
					c := b.Counters()
					if got := c.Submits - c0.Submits; got != 1 {
						t.Errorf("batch %d step %d: %d submissions, want 1", batch, step, got)
					}
					if c.UploadBytes == c0.UploadBytes || c.ReadbackBytes == c0.ReadbackBytes || c.Dispatches == c0.Dispatches {
						t.Errorf("batch %d step %d: counters did not move: %+v -> %+v", batch, step, c0, c)
					}
					for i := range next {
						next[i] = engine.Argmax(logits[i])
					}
					out = append(out, append([]int(nil), next...))
				}
				tokens[discrete] = append(tokens[discrete], out...)
				for _, s := range seqs {
					e.Release(s)
				}
			}
		})
	}
	if fmt.Sprint(tokens[false]) != fmt.Sprint(tokens[true]) {
		t.Errorf("mappable memory gave %v, discrete %v", tokens[false], tokens[true])
	}
}
