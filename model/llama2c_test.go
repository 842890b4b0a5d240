package model

import (
	"encoding/binary"
	"math"
	"os"
	"strings"
	"testing"
)

const stories260K = "../../shared/models/stories260K/stories260K.bin"

func stories(t *testing.T) string {
	t.Helper()
	for _, p := range []string{stories260K, "/work/shared/models/stories260K/stories260K.bin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("stories260K.bin not found beside the checkout (../shared/models)")
	return ""
}

func f32s(t *testing.T, tn *Tensor) []float32 {
	t.Helper()
	b, err := tn.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func TestOpenStories260K(t *testing.T) {
	path := stories(t)
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := c.Config
	if cfg.Dim != 64 || cfg.Layers != 5 || cfg.Heads != 8 || cfg.KVHeads != 4 || cfg.Vocab != 512 || cfg.Context != 512 || cfg.FFN != 172 || cfg.HeadDim != 8 {
		t.Fatalf("config %+v", cfg)
	}
	if !cfg.Tied || cfg.RopeLayout != RopeInterleaved || cfg.BOS != 1 || len(cfg.EOS) != 1 || cfg.EOS[0] != 2 || c.Format != "llama2c" {
		t.Fatalf("config %+v format %s", cfg, c.Format)
	}
	if got, want := len(c.Tensors), 2+9*5; got != want {
		t.Fatalf("%d tensors, want %d", got, want)
	}
	// Independent read of the file: blk.2.attn_k is at 28 + 4*(vocab*dim + L*dim + L*dim*dim + 2*kv*dim).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 28 + 4*(512*64+5*64+5*64*64+2*32*64)
	k, err := c.Tensor("blk.2.attn_k")
	if err != nil {
		t.Fatal(err)
	}
	got := f32s(t, k)
	for i := range got {
		want := math.Float32frombits(binary.LittleEndian.Uint32(raw[off+4*i:]))
		if got[i] != want {
			t.Fatalf("blk.2.attn_k[%d] = %v, want %v", i, got[i], want)
		}
	}
	// rms_final is the last 64 floats before the 2*512*4 freq_cis floats at the end of the file.
	norm, _ := c.Tensor("output_norm")
	fin := f32s(t, norm)
	base := len(raw) - 4*(2*512*4) - 4*64
	for i := range fin {
		if want := math.Float32frombits(binary.LittleEndian.Uint32(raw[base+4*i:])); fin[i] != want {
			t.Fatalf("output_norm[%d] = %v, want %v", i, fin[i], want)
		}
	}
	if _, err := c.Tensor("output"); err == nil || !strings.Contains(err.Error(), "output") {
		t.Fatalf("tied checkpoint: Tensor(output) error = %v", err)
	}
}

func TestBytesAfterClose(t *testing.T) {
	c, err := Open(stories(t))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := c.Tensor("blk.0.attn_q")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Bytes(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Bytes after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
