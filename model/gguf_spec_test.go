package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// TestGGUFLayoutFromSpec builds a GGUF v3 file by hand from the spec (not with WriteGGUF): dims in ggml
// order, offsets relative to the aligned data section, Q8_0 blocks of f16 scale + 32 int8.
func TestGGUFLayoutFromSpec(t *testing.T) {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	le(uint32(3))
	le(uint64(2)) // tensors
	le(uint64(3)) // kvs
	str("general.architecture")
	le(uint32(8))
	str("llama")
	str("general.alignment")
	le(uint32(4))
	le(uint32(64))
	str("flags")
	le(uint32(9)) // array
	le(uint32(7)) // of bool
	le(uint64(2))
	b.Write([]byte{1, 0})
	// a: F32 with ne = [3, 2] (3 columns, 2 rows) at offset 0; b: Q8_0 ne = [32, 1] at offset 64.
	str("a")
	le(uint32(2))
	le(uint64(3))
	le(uint64(2))
	le(uint32(0))
	le(uint64(0))
	str("b")
	le(uint32(2))
	le(uint64(32))
	le(uint64(1))
	le(uint32(8))
	le(uint64(64))
	for b.Len()%64 != 0 {
		b.WriteByte(0)
	}
	for i := 0; i < 6; i++ {
		le(math.Float32bits(float32(i) + 0.5))
	}
	b.Write(make([]byte, 64-24))
	le(uint16(0x3800)) // f16 0.5
	for i := 0; i < 32; i++ {
		b.WriteByte(byte(int8(i - 16)))
	}
	h, err := readGGUFHeader(&memBlob{b.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if h.align != 64 || h.dataStart%64 != 0 || len(h.tensors) != 2 {
		t.Fatalf("align %d data %d tensors %d", h.align, h.dataStart, len(h.tensors))
	}
	if f, ok := h.meta["flags"].([]any); !ok || f[0] != true || f[1] != false {
		t.Fatalf("bool array %#v", h.meta["flags"])
	}
	a, q := h.tensors[0], h.tensors[1]
	if !equalShape(a.shape, []int{2, 3}) || !equalShape(q.shape, []int{1, 32}) {
		t.Fatalf("shapes %v %v, want [2 3] and [1 32]", a.shape, q.shape)
	}
	blob := &memBlob{b.Bytes()}
	ta := viewTensor(blob, "a", "a", F32, a.shape, h.dataStart+int64(a.off))
	va, _ := ta.Float32()
	if va[4] != 4.5 {
		t.Fatalf("a[1][1] = %v, want 4.5", va[4])
	}
	tq := ggufQ8Tensor(blob, "b", q, h.dataStart+int64(q.off))
	vq, err := tq.Float32()
	if err != nil || vq[0] != -8 || vq[31] != 7.5 {
		t.Fatalf("q8_0 values %v %v (%v)", vq[0], vq[31], err)
	}
}
