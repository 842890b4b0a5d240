package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// An untied token embedding kept in host memory gives exactly the logits of the one on the device.
func TestHostEmbeddingMatchesDevice(t *testing.T) {
	cfg := model.Config{Arch: "llama", Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 96, Vocab: 300,
		Context: 128, NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}}
	p := filepath.Join(t.TempDir(), "untied.gguf")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteGGUFModel(f, cfg, model.GGUFModelOptions{DType: model.F16}, model.RandomSource(4)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ck, err := model.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	b := openVulkan(t)
	host := engine.LoadOptions{HostEmbedding: func(t *model.Tensor) (engine.RowDecoder, error) {
		w, err := (&cpu.Backend{}).UploadWeight(t)
		if err != nil {
			return nil, err
		}
		return w.(*cpu.Weight), nil
	}}
	var logits [2][]float32
	for i, opt := range []engine.LoadOptions{{}, host} {
		w, err := engine.LoadWeightsWith(b, ck, opt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if (w.HostEmb != nil) != (i == 1) || (w.TokEmb != nil) != (i == 0) {
			t.Fatalf("load %d: host embedding %v, device embedding %v", i, w.HostEmb != nil, w.TokEmb != nil)
		}
		e, err := engine.NewEngine(b, cfg, w, engine.Options{BlockSize: 8, KVBlocks: 256, MaxRows: 16, KVType: engine.KVF32})
		if err != nil {
			t.Fatal(err)
		}
		s := e.NewSequence(engine.SamplerConfig{})
		if logits[i], err = e.Prefill(s, []int{1, 17, 250, 3, 99}); err != nil {
			t.Fatal(err)
		}
		e.Close()
	}
	for j := range logits[0] {
		if logits[0][j] != logits[1][j] {
			t.Fatalf("logit %d: device embedding %v, host embedding %v", j, logits[0][j], logits[1][j])
		}
	}
}
