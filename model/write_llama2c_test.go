package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path string, f func(w *os.File) error) string {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f(out); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openT(t *testing.T, path string) *Checkpoint {
	t.Helper()
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sameWeights compares every canonical tensor of a and b after decoding to f32 and bringing Q/K to
// interleaved order; tol is the allowed absolute difference relative to the tensor's max |value|.
func sameWeights(t *testing.T, a, b *Checkpoint, tol float64) {
	t.Helper()
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%s has %d tensors, %s has %d", a.Path, len(a.Tensors), b.Path, len(b.Tensors))
	}
	for _, ta := range a.Tensors {
		tb, err := b.Tensor(ta.Name)
		if err != nil {
			t.Fatal(err)
		}
		va, err := ta.Float32()
		if err != nil {
			t.Fatal(err)
		}
		vb, err := tb.Float32()
		if err != nil {
			t.Fatal(err)
		}
		va, _ = toLayout(a.Config, ta.Name, va, ta.Shape, RopeInterleaved)
		vb, _ = toLayout(b.Config, tb.Name, vb, tb.Shape, RopeInterleaved)
		var amax float64
		for _, x := range va {
			amax = math.Max(amax, math.Abs(float64(x)))
		}
		for i := range va {
			if d := math.Abs(float64(va[i] - vb[i])); d > tol*amax || math.IsNaN(d) {
				t.Fatalf("%s[%d]: %s has %v, %s has %v (tol %g of %g)", ta.Name, i, a.Path, va[i], b.Path, vb[i], tol, amax)
			}
		}
	}
}

func TestLlama2CRoundTrip(t *testing.T) {
	orig := openT(t, stories(t))
	dir := t.TempDir()
	raw, _ := os.ReadFile(orig.Path)
	// Legacy: byte-identical to the original outside the freq_cis tables.
	p0 := writeFile(t, filepath.Join(dir, "v0.bin"), func(f *os.File) error {
		return WriteLlama2C(f, orig.Config, 0, 0, CheckpointSource(orig))
	})
	got, _ := os.ReadFile(p0)
	if len(got) != len(raw) {
		t.Fatalf("legacy writer: %d bytes, original %d", len(got), len(raw))
	}
	freq := len(raw) - 2*512*4*4
	if !bytes.Equal(got[:freq], raw[:freq]) {
		t.Fatal("legacy writer: weights differ from stories260K.bin")
	}
	for i := freq; i < len(raw); i += 4 {
		a, b := f32frombits(le32(got[i:])), f32frombits(le32(raw[i:]))
		if math.Abs(float64(a-b)) > 1e-4 {
			t.Fatalf("freq_cis at byte %d: %v, original %v", i, a, b)
		}
	}
	p1 := writeFile(t, filepath.Join(dir, "v1.bin"), func(f *os.File) error {
		return WriteLlama2C(f, orig.Config, 1, 0, CheckpointSource(orig))
	})
	c1 := openT(t, p1)
	if c1.Format != "llama2c-v1" || c1.Config.Vocab != 512 || !c1.Config.Tied {
		t.Fatalf("v1: format %s config %+v", c1.Format, c1.Config)
	}
	sameWeights(t, orig, c1, 0)
	p2 := writeFile(t, filepath.Join(dir, "v2.bin"), func(f *os.File) error {
		return WriteLlama2C(f, orig.Config, 2, 4, CheckpointSource(orig))
	})
	c2 := openT(t, p2)
	if c2.Format != "llama2c-v2" {
		t.Fatalf("v2 format %s", c2.Format)
	}
	q, _ := c2.Tensor("blk.4.ffn_down")
	if q.DType != Q8_0 || q.Group != 4 {
		t.Fatalf("v2 ffn_down: %s group %d", q.DType, q.Group)
	}
	if s, err := q.Scales(); err != nil || len(s) != 64*172/4 {
		t.Fatalf("v2 scales: %d, %v", len(s), err)
	}
	sameWeights(t, orig, c2, 1.0/127)
}

func TestLlama2CUntiedAndBadInput(t *testing.T) {
	cfg := Config{Dim: 16, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, FFN: 24, Vocab: 40, Context: 32, RopeTheta: 10000, NormEps: 1e-5}
	dir := t.TempDir()
	for _, v := range []int{0, 1, 2} {
		p := writeFile(t, filepath.Join(dir, "u.bin"), func(f *os.File) error { return WriteLlama2C(f, cfg, v, 8, RandomSource(7)) })
		c := openT(t, p)
		if c.Config.Tied || !c.Has("output") {
			t.Fatalf("v%d: untied model read as tied", v)
		}
		out, _ := c.Tensor("output")
		want, _ := RandomSource(7)("output", []int{40, 16})
		got, err := out.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 0.26/127 {
				t.Fatalf("v%d output[%d] = %v, want %v", v, i, got[i], want[i])
			}
		}
		c.Close()
		// Truncation by one byte: a one-line error naming the file and the expected size.
		raw, _ := os.ReadFile(p)
		bad := filepath.Join(dir, "trunc.bin")
		os.WriteFile(bad, raw[:len(raw)-1], 0o644)
		if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "trunc.bin") || !strings.Contains(err.Error(), "bytes") {
			t.Fatalf("v%d truncated: %v", v, err)
		}
	}
	// Garbage header values.
	bad := filepath.Join(dir, "zero.bin")
	os.WriteFile(bad, make([]byte, 28), 0o644)
	if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "dim") {
		t.Fatalf("zero header: %v", err)
	}
	os.WriteFile(bad, []byte{1, 2, 3}, 0o644)
	if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("3-byte file: %v", err)
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// TestLlama2CV2LayoutFromSpec builds a v2 file byte by byte as export.py writes it and runq.c maps it
// (norms; then per tensor and layer: int8 values, f32 scales), independently of WriteLlama2C.
func TestLlama2CV2LayoutFromSpec(t *testing.T) {
	// tinyConfig's shape: dim 8, 2 layers, 2 heads, 1 kv head (kv dim 4), ffn 12, vocab 16.
	const gs = 4
	var buf bytes.Buffer
	w32 := func(v uint32) { var b [4]byte; binary.LittleEndian.PutUint32(b[:], v); buf.Write(b[:]) }
	w32(0x616b3432)
	w32(2)
	for _, v := range []int{8, 12, 2, 2, 1, 16, 32} {
		w32(uint32(v))
	}
	buf.WriteByte(0) // unshared classifier
	w32(gs)
	buf.Write(make([]byte, 256-buf.Len()))
	for i := 0; i < (2*2+1)*8; i++ {
		w32(math.Float32bits(float32(i)))
	}
	type blk struct {
		name       string
		rows, cols int
	}
	order := []blk{{"token_embd", 16, 8}}
	for _, m := range []blk{{"attn_q", 8, 8}, {"attn_k", 4, 8}, {"attn_v", 4, 8}, {"attn_output", 8, 8}, {"ffn_gate", 12, 8}, {"ffn_down", 8, 12}, {"ffn_up", 12, 8}} {
		for l := 0; l < 2; l++ {
			order = append(order, blk{LayerTensor(l, m.name), m.rows, m.cols})
		}
	}
	order = append(order, blk{"output", 16, 8})
	wantQ := map[string][]byte{}
	wantS := map[string][]float32{}
	for k, b := range order {
		q := make([]byte, b.rows*b.cols)
		for i := range q {
			q[i] = byte(k*31 + i)
		}
		s := make([]float32, len(q)/gs)
		for i := range s {
			s[i] = float32(k) + float32(i)/100
		}
		buf.Write(q)
		for _, x := range s {
			w32(math.Float32bits(x))
		}
		wantQ[b.name], wantS[b.name] = q, s
	}
	p := filepath.Join(t.TempDir(), "spec_v2.bin")
	os.WriteFile(p, buf.Bytes(), 0o644)
	c := openT(t, p)
	if c.Config.Tied || c.Format != "llama2c-v2" {
		t.Fatalf("format %s tied %v", c.Format, c.Config.Tied)
	}
	for _, b := range order {
		tn, err := c.Tensor(b.name)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := tn.Bytes()
		s, err := tn.Scales()
		if err != nil || !bytes.Equal(q, wantQ[b.name]) || len(s) != len(wantS[b.name]) {
			t.Fatalf("%s: values or scales differ (%v)", b.name, err)
		}
		for i := range s {
			if s[i] != wantS[b.name][i] {
				t.Fatalf("%s scale %d = %v, want %v", b.name, i, s[i], wantS[b.name][i])
			}
		}
	}
	n, _ := c.Tensor("blk.1.ffn_norm")
	if v, _ := n.Float32(); v[0] != 24 {
		t.Fatalf("blk.1.ffn_norm[0] = %v, want 24 (after 2 attn norms and 1 ffn norm of 8)", v[0])
	}
}
