package cpu

import (
	"testing"

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
