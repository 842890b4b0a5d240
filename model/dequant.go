package model

import (
	"encoding/binary"
	"fmt"
)

// Float32 decodes a tensor to f32 with its scales applied (w = q * scale). It reads and allocates the
// whole tensor: meant for tests, tools and the CPU reference, not for loading large models.
func (t *Tensor) Float32() ([]float32, error) {
	raw, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	n := t.Elems()
	if int64(len(raw)) != t.DataBytes() {
		return nil, fmt.Errorf("%s: tensor %s: %d bytes, want %d", t.File, t.SourceName, len(raw), t.DataBytes())
	}
	out := make([]float32, n)
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = f32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case F16:
		for i := range out {
			out[i] = halfToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	case BF16:
		for i := range out {
			out[i] = bf16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	}
	sc, err := t.Scales()
	if err != nil {
		return nil, err
	}
	rows, cols := t.Rows(), t.Cols()
	switch t.DType {
	case Q8_0:
		if t.Group <= 0 || cols%t.Group != 0 || len(sc) != rows*cols/t.Group {
			return nil, fmt.Errorf("%s: tensor %s: %d scales for group %d of [%d, %d]", t.File, t.SourceName, len(sc), t.Group, rows, cols)
		}
		for i := range out {
			out[i] = float32(int8(raw[i])) * sc[i/t.Group]
		}
		return out, nil
	case F8E4M3:
		bc := (cols + 127) / 128
		want := map[ScaleKind]int{ScaleTensor: 1, ScaleChannel: rows, ScaleBlock: ((rows + 127) / 128) * bc}[t.ScaleKind]
		if want == 0 || len(sc) != want {
			return nil, fmt.Errorf("%s: tensor %s: %d %s scales, want %d", t.File, t.SourceName, len(sc), t.ScaleKind, want)
		}
		for r := 0; r < rows; r++ {
			for k := 0; k < cols; k++ {
				var s float32
				switch t.ScaleKind {
				case ScaleTensor:
					s = sc[0]
				case ScaleChannel:
					s = sc[r]
				case ScaleBlock:
					s = sc[(r/128)*bc+k/128]
				default:
					return nil, fmt.Errorf("%s: tensor %s: F8E4M3 without scales", t.File, t.SourceName)
				}
				out[r*cols+k] = fp8E4M3ToF32(raw[r*cols+k]) * s
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: tensor %s: cannot decode dtype %s", t.File, t.SourceName, t.DType)
}
