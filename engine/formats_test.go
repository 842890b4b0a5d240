package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// The same stories260K weights written by the tests as Hugging Face safetensors (rotate-half Q/K rows) and
// as GGUF (interleaved) give exactly the llama2.c checkpoint's greedy tokens.
func TestSameGreedyTextAcrossFormats(t *testing.T) {
	src := openStories(t)
	dir := t.TempDir()
	hf := filepath.Join(dir, "hf")
	if err := model.WriteHF(hf, src.Config, model.HFOptions{DType: model.F32}, model.CheckpointSource(src)); err != nil {
		t.Fatal(err)
	}
	gg := filepath.Join(dir, "stories.gguf")
	f, err := os.Create(gg)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteGGUFModel(f, src.Config, model.GGUFModelOptions{DType: model.F32}, model.CheckpointSource(src)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	prompts := randomPrompts(3, src.Config.Vocab, 11)
	run := func(ck *model.Checkpoint) string {
		e := newEngine(t, &cpu.Backend{}, ck, engine.Options{BlockSize: 16, MaxRows: 64})
		return fmt.Sprint(greedy(t, e, prompts, 40, true))
	}
	want := run(src)
	for _, p := range []string{hf, gg} {
		ck, err := model.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if p == hf && ck.Config.RopeLayout != model.RopeRotateHalf {
			t.Fatalf("%s: rope layout %v, want rotate-half", p, ck.Config.RopeLayout)
		}
		if got := run(ck); got != want {
			t.Fatalf("%s (%s): greedy tokens differ from the llama2.c checkpoint:\n%s\nwant\n%s", p, ck.Format, got, want)
		}
		ck.Close()
	}
}

// Lower-precision copies of the model (f16, bf16, q8_0 GGUF; FP8 safetensors) load and mostly agree with the
// f32 model's next-token choice.
func TestQuantizedFormatsRun(t *testing.T) {
	src := openStories(t)
	dir := t.TempDir()
	var paths []string
	for _, dt := range []model.DType{model.F16, model.BF16, model.Q8_0} {
		p := filepath.Join(dir, dt.String()+".gguf")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := model.WriteGGUFModel(f, src.Config, model.GGUFModelOptions{DType: dt}, model.CheckpointSource(src)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	for _, kind := range []model.ScaleKind{model.ScaleTensor, model.ScaleChannel, model.ScaleBlock} {
		p := filepath.Join(dir, "fp8-"+kind.String())
		if err := model.WriteHF(p, src.Config, model.HFOptions{DType: model.F8E4M3, FP8Scale: kind}, model.CheckpointSource(src)); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	prompts := randomPrompts(4, src.Config.Vocab, 5)
	ref := greedy(t, newEngine(t, &cpu.Backend{}, src, engine.Options{BlockSize: 16, MaxRows: 64}), prompts, 1, true)
	for _, p := range paths {
		ck, err := model.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got := greedy(t, newEngine(t, &cpu.Backend{}, ck, engine.Options{BlockSize: 16, MaxRows: 64}), prompts, 1, true)
		same := 0
		for i := range got {
			if got[i][0] == ref[i][0] {
				same++
			}
		}
		if same < len(prompts)/2 {
			t.Fatalf("%s: only %d of %d first tokens agree with f32", filepath.Base(p), same, len(prompts))
		}
		ck.Close()
	}
}
