package cpu

import (
	"math"
	"sync"
	"unsafe"

	"kvc/engine"
	"kvc/model"
)

// ceilDiv is a/b rounded up.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Weight is a weight on the CPU backend: a copy of the stored bytes (4-byte aligned, so f32 weights are
// used in place) and the f32 scales, decoded row by row when an op needs them.
type Weight struct {
	info   engine.WeightInfo
	words  []uint32
	data   []byte
	scales []float32
}

func (w *Weight) Info() engine.WeightInfo { return w.info }

// UploadWeight copies the tensor's stored bytes and scales (the reader's bytes may be a file mapping).
func (c *Backend) UploadWeight(t *model.Tensor) (engine.Weight, error) {
	data, scales, info, err := engine.WeightData(t)
	if err != nil {
		return nil, err
	}
	w := &Weight{info: info, words: c.arena.words((len(data) + 3) / 4), scales: append([]float32(nil), scales...)}
	w.data = unsafe.Slice((*byte)(unsafe.Pointer(&w.words[0])), len(data))
	copy(w.data, data)
	return w, nil
}

// weightArena hands out the weights' memory from chunks advised as huge pages as a whole. Advising each
// tensor alone (hugeWords) reaches only the 2 MiB pages inside it: a 125M model's Q, K, V and O (0.4-1.2
// MB each, a fifth of a decode step's bytes) and both ends of every larger tensor stayed on 4 KiB pages.
type weightArena struct {
	mu  sync.Mutex
	cur []uint32 // the current chunk's unused words
}

const (
	arenaChunkWords = 32 << 20 / 4 // 32 MiB chunks
	arenaOwnWords   = 8 << 20 / 4  // a tensor of 8 MiB or more gets its own allocation (wastes no chunk tail)
)

// words returns n zeroed words that start 64-byte aligned (a cache line: the kernels' rows start there).
func (a *weightArena) words(n int) []uint32 {
	if n >= arenaOwnWords {
		return hugeWords(n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if n > len(a.cur) {
		a.cur = hugeWords(arenaChunkWords)
	}
	w := a.cur[:n:n]
	a.cur = a.cur[min((n+15)&^15, len(a.cur)):]
	return w
}

var (
	lutOnce sync.Once
	f16LUT  []float32 // every half code
	fp8LUT  [256]float32
)

func luts() {
	lutOnce.Do(func() {
		f16LUT = make([]float32, 1<<16)
		for i := range f16LUT {
			f16LUT[i] = model.F16ToF32(uint16(i))
		}
		for i := range fp8LUT {
			fp8LUT[i] = model.FP8E4M3ToF32(uint8(i))
		}
	})
}

// f32Row returns row r of an f32 weight without copying.
func (w *Weight) f32Row(r int) []float32 {
	n := w.info.Cols
	all := unsafe.Slice((*float32)(unsafe.Pointer(&w.words[0])), w.info.Rows*n)
	return all[r*n : (r+1)*n]
}

// scale returns the scale of element (r, c): fp8 by ScaleKind, q8_0 by group.
func (w *Weight) scale(r, c int) float32 {
	switch {
	case w.info.DType == model.Q8_0:
		return w.scales[r*(w.info.Cols/w.info.Group)+c/w.info.Group]
	case w.info.ScaleKind == model.ScaleTensor:
		return w.scales[0]
	case w.info.ScaleKind == model.ScaleChannel:
		return w.scales[r]
	case w.info.ScaleKind == model.ScaleBlock:
		return w.scales[(r/engine.FP8BlockSize)*ceilDiv(w.info.Cols, engine.FP8BlockSize)+c/engine.FP8BlockSize]
	}
	return 1
}

// DecodeRow writes row r as f32 into dst[:Cols]: the stored value, times its scale for fp8 and q8_0
// (one f32 multiply per element).
func (w *Weight) DecodeRow(r int, dst []float32) {
	n := w.info.Cols
	dst = dst[:n]
	switch w.info.DType {
	case model.F32:
		copy(dst, w.f32Row(r))
	case model.F16, model.BF16:
		b := w.data[2*r*n : 2*(r+1)*n]
		if w.info.DType == model.BF16 {
			for i := range dst {
				dst[i] = model.BF16ToF32(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
			}
			return
		}
		luts()
		for i := range dst {
			dst[i] = f16LUT[uint16(b[2*i])|uint16(b[2*i+1])<<8]
		}
	case model.F8E4M3:
		luts()
		b := w.data[r*n : (r+1)*n]
		if w.info.ScaleKind == model.ScaleBlock {
			for c0 := 0; c0 < n; c0 += engine.FP8BlockSize {
				s := w.scale(r, c0)
				for i := c0; i < min(n, c0+engine.FP8BlockSize); i++ {
					dst[i] = fp8LUT[b[i]] * s
				}
			}
			return
		}
		s := w.scale(r, 0)
		for i := range dst {
			dst[i] = fp8LUT[b[i]] * s
		}
	case model.Q8_0:
		b := w.data[r*n : (r+1)*n]
		g := w.info.Group
		for c0 := 0; c0 < n; c0 += g {
			s := w.scale(r, c0)
			for i := c0; i < c0+g; i++ {
				dst[i] = float32(int8(b[i])) * s
			}
		}
	}
}

// EncodeTensor stores f32 values (rows x cols, row-major) as a tensor of dtype dt: the fixture builder of
// the op tests of both backends and of synthetic models. fp8 scales are absmax/448 over each scale's
// region (ScaleNone: scale 1), q8_0 uses model.QuantizeQ8_0. shape is [cols] when vector is set.
func EncodeTensor(name string, dt model.DType, rows, cols int, vector bool, sk model.ScaleKind, group int, v []float32) *model.Tensor {
	shape := []int{rows, cols}
	if vector {
		shape = []int{cols}
	}
	var data []byte
	var scales []float32
	switch dt {
	case model.F32:
		data = make([]byte, 4*len(v))
		for i, x := range v {
			putU32(data[4*i:], math.Float32bits(x))
		}
	case model.F16, model.BF16:
		data = make([]byte, 2*len(v))
		for i, x := range v {
			h := model.F32ToF16(x)
			if dt == model.BF16 {
				h = model.F32ToBF16(x)
			}
			data[2*i], data[2*i+1] = byte(h), byte(h>>8)
		}
	case model.Q8_0:
		q, s := model.QuantizeQ8_0(v, group)
		data = unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), len(q))
		scales = s
	case model.F8E4M3:
		info := engine.WeightInfo{DType: dt, Rows: rows, Cols: cols, ScaleKind: sk}
		w := &Weight{info: info, scales: make([]float32, engine.ScaleCount(info))}
		region := func(r, c int) int { // which scale covers (r, c)
			switch sk {
			case model.ScaleChannel:
				return r
			case model.ScaleBlock:
				return (r/engine.FP8BlockSize)*ceilDiv(cols, engine.FP8BlockSize) + c/engine.FP8BlockSize
			}
			return 0
		}
		if sk != model.ScaleNone {
			for i, x := range v {
				k := region(i/cols, i%cols)
				w.scales[k] = max(w.scales[k], float32(math.Abs(float64(x)))/448)
			}
		}
		data = make([]byte, len(v))
		for i, x := range v {
			s := w.scale(i/cols, i%cols)
			if s != 0 {
				x /= s
			}
			data[i] = model.F32ToFP8E4M3(x)
		}
		if sk != model.ScaleNone {
			scales = w.scales
		}
	}
	t := model.TensorFromBytes(name, dt, shape, data, scales)
	t.ScaleKind, t.Group = sk, group
	return t
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
