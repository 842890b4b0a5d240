package model

import "fmt"

// ropeRowSources maps each output row to its input row when converting a Q or K weight between RoPE layouts.
// Within each head of headDim rows, interleaved row 2i+j is rotate-half row j*headDim/2+i (j in {0, 1}); this
// is the permutation HF->GGUF converters apply, and its inverse.
func ropeRowSources(heads, headDim int, from, to RopeLayout) []int {
	src := make([]int, heads*headDim)
	half := headDim / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for j := 0; j < 2; j++ {
				inter := h*headDim + 2*i + j
				rot := h*headDim + j*half + i
				switch {
				case from == to:
					src[inter] = inter
				case from == RopeRotateHalf:
					src[inter] = rot
				default: // interleaved -> rotate-half
					src[rot] = inter
				}
			}
		}
	}
	return src
}

// PermuteRopeRows reorders the rows of a Q or K weight (or of anything with one entry per output row,
// e.g. per-channel scales, rowBytes = 4) between RoPE layouts (see ropeRowSources). data holds
// heads*headDim rows of rowBytes bytes; a new slice is returned.
func PermuteRopeRows(data []byte, heads, headDim, rowBytes int, from, to RopeLayout) ([]byte, error) {
	if heads <= 0 || headDim <= 0 || headDim%2 != 0 || rowBytes <= 0 || len(data) != heads*headDim*rowBytes {
		return nil, fmt.Errorf("permute rope rows: %d bytes is not %d heads x %d rows (even) x %d bytes", len(data), heads, headDim, rowBytes)
	}
	out := make([]byte, len(data))
	for dst, src := range ropeRowSources(heads, headDim, from, to) {
		copy(out[dst*rowBytes:(dst+1)*rowBytes], data[src*rowBytes:(src+1)*rowBytes])
	}
	return out, nil
}

// PermuteRopeF32 is PermuteRopeRows on a float32 [heads*headDim, cols] matrix.
func PermuteRopeF32(w []float32, heads, headDim, cols int, from, to RopeLayout) ([]float32, error) {
	if heads <= 0 || headDim <= 0 || headDim%2 != 0 || cols <= 0 || len(w) != heads*headDim*cols {
		return nil, fmt.Errorf("permute rope rows: %d values is not %d heads x %d rows (even) x %d", len(w), heads, headDim, cols)
	}
	out := make([]float32, len(w))
	for dst, src := range ropeRowSources(heads, headDim, from, to) {
		copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
	}
	return out, nil
}
