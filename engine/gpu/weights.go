package gpu

import (
	"fmt"
	"math"

	"kvc/engine"
	"kvc/model"
)

// Weight is a weight on the device: row chunks, each its own buffer no larger than one binding may be,
// rows padded to 16 bytes so that every row starts on a 16-byte boundary; scales per chunk.
type Weight struct {
	info     engine.WeightInfo
	rowBytes int64 // padded row stride
	chunks   []weightChunk
	// scale of (local row r, col c) = scales[(r/rowDiv)*scaleStride + c/colDiv] (see weights.glsl)
	rowDiv, colDiv, scaleStride uint32
}

type weightChunk struct {
	rowBase, rows int
	data          *Buffer
	scales        *Buffer // nil for f32/f16/bf16 (the data buffer is bound in its place, never read)
}

func (w *Weight) Info() engine.WeightInfo { return w.info }

// Chunks is how many buffers the weight was split into.
func (w *Weight) Chunks() int { return len(w.chunks) }

// MaxWeightChunkBytes, when positive, caps a weight chunk below the device's maxStorageBufferRange (tests
// use it to exercise splitting on small tensors).
var MaxWeightChunkBytes int64

const noDiv = 1 << 31 // a divisor that maps every index to 0

// UploadWeight streams the tensor's bytes (and scales) into chunk buffers a few MiB at a time.
func (b *Backend) UploadWeight(t *model.Tensor) (engine.Weight, error) {
	data, scales, info, err := engine.WeightData(t)
	if err != nil {
		return nil, err
	}
	eb := int64(info.DType.ElemBytes())
	rawRow := int64(info.Cols) * eb
	w := &Weight{info: info, rowBytes: (rawRow + 15) &^ 15, rowDiv: noDiv, colDiv: noDiv}
	scaleRow := int64(0) // scale bytes per row, for the chunk size
	switch {
	case info.DType == model.Q8_0:
		w.rowDiv, w.colDiv, w.scaleStride = 1, uint32(info.Group), uint32(info.Cols/info.Group)
		scaleRow = int64(w.scaleStride) * 4
	case info.DType == model.F8E4M3 && info.ScaleKind == model.ScaleChannel:
		w.rowDiv, w.scaleStride = 1, 1
		scaleRow = 4
	case info.DType == model.F8E4M3 && info.ScaleKind == model.ScaleBlock:
		w.rowDiv, w.colDiv = engine.FP8BlockSize, engine.FP8BlockSize
		w.scaleStride = uint32((info.Cols + engine.FP8BlockSize - 1) / engine.FP8BlockSize)
		scaleRow = int64(w.scaleStride) * 4
	}
	if info.DType == model.F8E4M3 && (info.ScaleKind == model.ScaleNone || info.ScaleKind == model.ScaleTensor) {
		if scales == nil {
			scales = []float32{1}
		}
	}

	limit := b.caps.MaxStorageBufferRange
	if MaxWeightChunkBytes > 0 && MaxWeightChunkBytes < limit {
		limit = MaxWeightChunkBytes
	}
	perRow := max(w.rowBytes, scaleRow)
	chunkRows := int(limit / perRow)
	if chunkRows < info.Rows {
		chunkRows -= chunkRows % engine.FP8BlockSize // chunks start on 128-row blocks (fp8 block scales)
		if chunkRows == 0 {
			return nil, fmt.Errorf("upload weight %s: a row of %d bytes is too long to split into chunks of at most %d bytes on %s",
				t.Name, w.rowBytes, limit, b.info.Name)
		}
	}
	fail := func(err error) (engine.Weight, error) {
		w.free(b)
		return nil, fmt.Errorf("upload weight %s: %w", t.Name, err)
	}
	for r0 := 0; r0 < info.Rows; r0 += chunkRows {
		ch := weightChunk{rowBase: r0, rows: min(chunkRows, info.Rows-r0)}
		if ch.data, err = b.AllocBinding(int64(ch.rows) * w.rowBytes); err != nil {
			return fail(err)
		}
		w.chunks = append(w.chunks, ch)
		if err := b.writeRows(ch.data, data[int64(r0)*rawRow:int64(r0+ch.rows)*rawRow], rawRow, w.rowBytes); err != nil {
			return fail(err)
		}
		if scales == nil {
			continue
		}
		cs := scales // per tensor: one value
		switch {
		case w.rowDiv == 1:
			cs = scales[r0*int(w.scaleStride) : (r0+ch.rows)*int(w.scaleStride)]
		case w.rowDiv == engine.FP8BlockSize:
			b0, b1 := r0/engine.FP8BlockSize, (r0+ch.rows+engine.FP8BlockSize-1)/engine.FP8BlockSize
			cs = scales[b0*int(w.scaleStride) : b1*int(w.scaleStride)]
		}
		if w.chunks[len(w.chunks)-1].scales, err = b.AllocBinding(int64(4 * len(cs))); err != nil {
			return fail(err)
		}
		if err := b.Write(w.chunks[len(w.chunks)-1].scales, 0, f32Bytes(cs)); err != nil {
			return fail(err)
		}
	}
	return w, nil
}

// writeRows copies rows of rawRow bytes into buf at a stride of rowBytes (zero padding), in pieces of a
// few MiB so that no second copy of the tensor is ever held.
func (b *Backend) writeRows(buf *Buffer, src []byte, rawRow, rowBytes int64) error {
	const piece = 4 << 20
	if rawRow == rowBytes {
		for off := int64(0); off < int64(len(src)); off += piece {
			if err := b.Write(buf, off, src[off:min(off+piece, int64(len(src)))]); err != nil {
				return err
			}
		}
		return nil
	}
	rows := int64(len(src)) / rawRow
	per := max(1, piece/rowBytes)
	stage := make([]byte, min(rows, per)*rowBytes)
	for r0 := int64(0); r0 < rows; r0 += per {
		n := min(per, rows-r0)
		s := stage[:n*rowBytes]
		for r := int64(0); r < n; r++ {
			copy(s[r*rowBytes:], src[(r0+r)*rawRow:(r0+r+1)*rawRow])
		}
		if err := b.Write(buf, r0*rowBytes, s); err != nil {
			return err
		}
	}
	return nil
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return out
}

func (w *Weight) free(b *Backend) {
	for _, c := range w.chunks {
		if c.data != nil {
			b.Free(c.data)
		}
		if c.scales != nil {
			b.Free(c.scales)
		}
	}
	w.chunks = nil
}

// FreeWeight releases a weight's buffers.
func (b *Backend) FreeWeight(x engine.Weight) {
	if w, ok := x.(*Weight); ok {
		w.free(b)
	}
}

func (c *weightChunk) scaleRange() Range {
	if c.scales == nil {
		return Range{Buf: c.data}
	}
	return Range{Buf: c.scales}
}
