package cpu

import (
	"testing"
	"unsafe"

	"kvc/model"
)

// FuzzUploadWeight: any tensor header with any byte and scale counts is either rejected with an error or
// accepted and then decodes every row; nothing panics.
func FuzzUploadWeight(f *testing.F) {
	f.Add(uint8(model.F32), uint8(0), 0, 3, 5, 60, 0)
	f.Add(uint8(model.Q8_0), uint8(0), 4, 2, 8, 16, 4)
	f.Add(uint8(model.F8E4M3), uint8(model.ScaleBlock), 0, 130, 129, 130*129, 4)
	f.Add(uint8(model.F8E4M3), uint8(model.ScaleChannel), 0, 2, 3, 6, 2)
	f.Add(uint8(model.BF16), uint8(0), 0, 1, 7, 14, 0)
	f.Add(uint8(model.I32), uint8(9), -1, -3, 1<<40, 0, 1)
	f.Fuzz(func(t *testing.T, dt, sk uint8, group, rows, cols, dataLen, scaleLen int) {
		if dataLen < 0 || dataLen > 1<<20 || scaleLen < 0 || scaleLen > 1<<16 {
			return
		}
		shape := []int{rows, cols}
		if rows == 1 {
			shape = []int{cols}
		}
		data := make([]byte, dataLen)
		for i := range data {
			data[i] = byte(i * 37)
		}
		var scales []float32
		if scaleLen > 0 {
			scales = make([]float32, scaleLen)
			for i := range scales {
				scales[i] = float32(i) + 0.5
			}
		}
		tn := model.TensorFromBytes("blk.0.ffn_up", model.DType(dt), shape, data, scales)
		tn.ScaleKind, tn.Group = model.ScaleKind(sk), group
		w, err := (&Backend{}).UploadWeight(tn)
		if err != nil {
			return
		}
		cw := w.(*Weight)
		row := make([]float32, cw.info.Cols)
		for r := 0; r < cw.info.Rows; r++ {
			cw.DecodeRow(r, row)
		}
	})
}

// hugeWords gives n zeroed, writable words whatever their size and alignment (the huge-page advice is
// only advice).
func TestHugeWords(t *testing.T) {
	for _, n := range []int{1, 7, 4097, 1<<20 + 3, 3 << 20} {
		w := hugeWords(n)
		if len(w) != n {
			t.Fatalf("hugeWords(%d): %d words", n, len(w))
		}
		for i := range w {
			if w[i] != 0 {
				t.Fatalf("hugeWords(%d): word %d = %d", n, i, w[i])
			}
			w[i] = uint32(i)
		}
	}
}

// The weight arena's pieces are zeroed, 64-byte aligned, of the asked length, and disjoint, across chunk
// boundaries and for tensors large enough to get their own allocation.
func TestWeightArena(t *testing.T) {
	var a weightArena
	sizes := []int{1, 7, 4097, 3 << 18, arenaChunkWords/2 + 5, arenaChunkWords/2 + 5, 16, arenaOwnWords, 1}
	var pieces [][]uint32
	for i, n := range sizes {
		w := a.words(n)
		if len(w) != n || cap(w) != n {
			t.Fatalf("words(%d): len %d cap %d", n, len(w), cap(w))
		}
		if p := uintptr(unsafe.Pointer(&w[0])); p%64 != 0 {
			t.Fatalf("words(%d) starts at %#x, not 64-byte aligned", n, p)
		}
		for j := range w {
			if w[j] != 0 {
				t.Fatalf("words(%d): word %d = %d", n, j, w[j])
			}
			w[j] = uint32(i + 1)
		}
		pieces = append(pieces, w)
	}
	for i, w := range pieces { // a piece written after another must not have overwritten it
		for j := range w {
			if w[j] != uint32(i+1) {
				t.Fatalf("piece %d (%d words): word %d = %d: pieces overlap", i, len(w), j, w[j])
			}
		}
	}
}
