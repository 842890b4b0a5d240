package model

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteCheckpointAllFormats(t *testing.T) {
	orig := openT(t, stories(t))
	dir := t.TempDir()
	for _, tc := range []struct {
		format, name string
		dt           DType
		tol          float64
	}{
		{"llama2c", "a.bin", F32, 0}, {"llama2c-v1", "b.bin.zst", F32, 0}, {"llama2c-v2", "c.bin", F32, 1.0 / 120},
		{"gguf", "d.gguf.zst", F16, 1e-3}, {"safetensors", "e.safetensors", BF16, 8e-3}, {"hf", "f", F32, 0},
	} {
		p := filepath.Join(dir, tc.name)
		if err := WriteCheckpoint(p, tc.format, orig.Config, tc.dt, CheckpointSource(orig)); err != nil {
			t.Fatal(err)
		}
		c := openT(t, p)
		sameWeights(t, orig, c, tc.tol)
	}
	if err := WriteCheckpoint(filepath.Join(dir, "x"), "onnx", orig.Config, F32, CheckpointSource(orig)); err == nil {
		t.Fatal("unknown format accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Fatal("failed write left a file")
	}
}
