package model

import (
	"path/filepath"
	"testing"
)

// BenchmarkOpen70BHeaders opens a header-only Llama-3.1-70B-FP8-shaped folder (15 sparse shards).
func BenchmarkOpen70BHeaders(b *testing.B) {
	cfg := Config{Dim: 8192, Layers: 80, Heads: 64, KVHeads: 8, HeadDim: 128, FFN: 28672, Vocab: 128256, Context: 131072,
		NormEps: 1e-5, RopeTheta: 500000, RopeLayout: RopeRotateHalf, BOS: 128000, EOS: []int{128001}}
	dir := filepath.Join(b.TempDir(), "70b")
	if err := WriteHF(dir, cfg, HFOptions{DType: F8E4M3, InputScales: true, ShardBytes: 5e9, Sparse: true}, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkZstdRead reads every tensor of a compressed 8 MB f16 GGUF in file order.
func BenchmarkZstdRead(b *testing.B) {
	cfg := Config{Dim: 256, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 64, FFN: 768, Vocab: 4096, Context: 256, NormEps: 1e-5, RopeTheta: 10000}
	p := filepath.Join(b.TempDir(), "m.gguf.zst")
	if err := WriteCheckpoint(p, "gguf", cfg, F16, RandomSource(1)); err != nil {
		b.Fatal(err)
	}
	var total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		total = 0
		for _, t := range c.Tensors {
			v, err := t.Bytes()
			if err != nil {
				b.Fatal(err)
			}
			total += int64(len(v))
		}
		c.Close()
	}
	b.SetBytes(total)
}
