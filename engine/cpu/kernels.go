package cpu

import (
	"os"
	"unsafe"

	"kvc/engine"
	"kvc/model"
)

// The fast backend's row kernels: sum_c x[c] * W[r][c] read straight from the stored dtype, by assembly
// where the CPU has it (AVX2 on amd64: kernels_amd64.s; NEON on arm64: kernels_arm64.s), else by the
// pure-Go loops below. Each architecture's file maps the asm* names used here to its kernels (every dtype
// has them on both). A q8_0 group's (or an fp8 scale region's) products are summed first and then
// multiplied by its scale. The order of every sum depends only on the weight's shape, never on the batch
// or the thread count, as engine.Backend requires. The reference kernels (DecodeRow, dot) stay the oracle
// both are tested against.

// useAsm selects the assembly kernels; KVC_CPU_NOASM=1 forces the pure-Go ones.
var useAsm = haveAsm && os.Getenv("KVC_CPU_NOASM") == ""

// useAVX512 adds the eight-input kernels; KVC_CPU_NOAVX512=1 keeps the AVX2 ones.
var useAVX512 = useAsm && haveAVX512 && os.Getenv("KVC_CPU_NOAVX512") == ""

// Kernels says which kernels the fast backend runs on this machine.
func Kernels() string { return rowKernels() + q8ActKernels() }

func rowKernels() string {
	if useAVX512 {
		return asmName + ", avx512 (8-input)"
	}
	if useAsm {
		return asmName
	}
	if haveAsm {
		return "pure Go (KVC_CPU_NOASM set)"
	}
	return "pure Go"
}

// rowDot returns sum_c x[c] * W[r][c] for x of at least Cols elements.
func (w *Weight) rowDot(x []float32, r int) float32 {
	if useAsm {
		return w.rowDotAsm(x, r)
	}
	return w.rowDotGo(x, r)
}

// f16Row returns row r of an f16 or bf16 weight as its 16-bit codes.
func (w *Weight) u16Row(r int) []uint16 {
	n := w.info.Cols
	all := unsafe.Slice((*uint16)(unsafe.Pointer(&w.words[0])), w.info.Rows*n)
	return all[r*n : (r+1)*n]
}

// fp8Scales returns the scales of row r's regions and the region width (the whole row unless
// ScaleBlock); ScaleNone gives the scale 1.
func (w *Weight) fp8Scales(r int) ([]float32, int) {
	switch w.info.ScaleKind {
	case model.ScaleTensor:
		return w.scales[:1], w.info.Cols
	case model.ScaleChannel:
		return w.scales[r : r+1], w.info.Cols
	case model.ScaleBlock:
		nb := ceilDiv(w.info.Cols, engine.FP8BlockSize)
		return w.scales[(r/engine.FP8BlockSize)*nb : (r/engine.FP8BlockSize+1)*nb], engine.FP8BlockSize
	}
	return one[:], w.info.Cols
}

var one = [1]float32{1}

func (w *Weight) rowDotAsm(x []float32, r int) float32 {
	n := w.info.Cols
	x = x[:n]
	n8 := n &^ 7
	var s float32
	switch w.info.DType {
	case model.F32:
		row := w.f32Row(r)
		s = asmDotF32(&x[0], &row[0], n8)
		for i := n8; i < n; i++ {
			s += x[i] * row[i]
		}
	case model.F16:
		row := w.u16Row(r)
		s = asmDotF16(&x[0], &row[0], n8)
		luts()
		for i := n8; i < n; i++ {
			s += x[i] * f16LUT[row[i]]
		}
	case model.BF16:
		row := w.u16Row(r)
		s = asmDotBF16(&x[0], &row[0], n8)
		for i := n8; i < n; i++ {
			s += x[i] * model.BF16ToF32(row[i])
		}
	case model.Q8_0:
		g := w.info.Group
		if g%8 != 0 {
			return w.rowDotGo(x, r)
		}
		ng := n / g
		row := w.data[r*n : (r+1)*n]
		s = asmDotQ8(&x[0], (*int8)(unsafe.Pointer(&row[0])), &w.scales[r*ng], ng, g)
	case model.F8E4M3:
		row, scales, ng, g := w.fp8Regions(r)
		if ng > 0 {
			s = asmDotFP8(&x[0], &row[0], &scales[0], ng, g)
		}
		s = fp8Tail(x, row, scales, ng, g, s)
	}
	return s
}

// fp8Regions returns row r of an fp8 weight with its scales, and how the assembly kernels take it: ng
// regions of g elements (g a multiple of 8; a row with one scale is one region of its whole chunks of 8).
func (w *Weight) fp8Regions(r int) (row []byte, scales []float32, ng, g int) {
	n := w.info.Cols
	scales, g = w.fp8Scales(r)
	if g == n {
		g = n &^ 7
	}
	if g > 0 {
		ng = n / g
	}
	return w.data[r*n : (r+1)*n], scales, ng, g
}

// fp8Tail adds to s what the kernels left of an fp8 row: the elements after ng regions of g, summed in
// order and multiplied by their region's scale.
func fp8Tail(x []float32, row []byte, scales []float32, ng, g int, s float32) float32 {
	if done := ng * g; done < len(row) {
		luts()
		var t float32
		for i := done; i < len(row); i++ {
			t += x[i] * fp8LUT[row[i]]
		}
		s += t * scales[min(ng, len(scales)-1)]
	}
	return s
}

// rowDotGo is the pure-Go kernel: four interleaved partial sums per row (per scale group for q8_0 and
// fp8), as the reference dot.
func (w *Weight) rowDotGo(x []float32, r int) float32 {
	n := w.info.Cols
	x = x[:n]
	switch w.info.DType {
	case model.F32:
		return dot(x, w.f32Row(r))
	case model.F16:
		luts()
		row := w.u16Row(r)
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			s0 += x[i] * f16LUT[row[i]]
			s1 += x[i+1] * f16LUT[row[i+1]]
			s2 += x[i+2] * f16LUT[row[i+2]]
			s3 += x[i+3] * f16LUT[row[i+3]]
		}
		s := (s0 + s1) + (s2 + s3)
		for ; i < n; i++ {
			s += x[i] * f16LUT[row[i]]
		}
		return s
	case model.BF16:
		row := w.u16Row(r)
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= n; i += 4 {
			s0 += x[i] * model.BF16ToF32(row[i])
			s1 += x[i+1] * model.BF16ToF32(row[i+1])
			s2 += x[i+2] * model.BF16ToF32(row[i+2])
			s3 += x[i+3] * model.BF16ToF32(row[i+3])
		}
		s := (s0 + s1) + (s2 + s3)
		for ; i < n; i++ {
			s += x[i] * model.BF16ToF32(row[i])
		}
		return s
	case model.Q8_0:
		g := w.info.Group
		row := w.data[r*n : (r+1)*n]
		sc := w.scales[r*(n/g) : (r+1)*(n/g)]
		var s float32
		for k, scale := range sc {
			s += groupDotQ8(x[k*g:(k+1)*g], row[k*g:(k+1)*g]) * scale
		}
		return s
	case model.F8E4M3:
		luts()
		scales, g := w.fp8Scales(r)
		row := w.data[r*n : (r+1)*n]
		var s float32
		for k, scale := range scales {
			lo, hi := k*g, min(n, (k+1)*g)
			var s0, s1, s2, s3 float32
			i := lo
			for ; i+4 <= hi; i += 4 {
				s0 += x[i] * fp8LUT[row[i]]
				s1 += x[i+1] * fp8LUT[row[i+1]]
				s2 += x[i+2] * fp8LUT[row[i+2]]
				s3 += x[i+3] * fp8LUT[row[i+3]]
			}
			t := (s0 + s1) + (s2 + s3)
			for ; i < hi; i++ {
				t += x[i] * fp8LUT[row[i]]
			}
			s += t * scale
		}
		return s
	}
	panic("cpu: rowDot: dtype " + w.info.DType.String())
}

func groupDotQ8(x []float32, q []byte) float32 {
	q = q[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * float32(int8(q[i]))
		s1 += x[i+1] * float32(int8(q[i+1]))
		s2 += x[i+2] * float32(int8(q[i+2]))
		s3 += x[i+3] * float32(int8(q[i+3]))
	}
	s := (s0 + s1) + (s2 + s3)
	for ; i < len(x); i++ {
		s += x[i] * float32(int8(q[i]))
	}
	return s
}

// rowDots sets out[i] = rowDot(x[i*Cols:], r) for i < n, with the same bits: eight inputs per kernel
// call where AVX-512VL is there, then four, where the dtype has those kernels (the weight row is
// then read and converted once for the eight or four).
func (w *Weight) rowDots(x []float32, n, r int, out []float32) {
	cols := w.info.Cols
	i := 0
	switch dt := w.info.DType; {
	case !useAsm || n < 4:
	case dt == model.F32 || dt == model.F16 || dt == model.BF16:
		n8, stride := cols&^7, uintptr(cols*4)
		for ; useAVX512 && i+8 <= n; i += 8 {
			w.dots8(x[i*cols:], r, r+1, 0, n8, 0, nil, &out[i])
		}
		for ; i+4 <= n; i += 4 {
			o := (*[4]float32)(out[i : i+4])
			switch xp := &x[i*cols]; dt {
			case model.F32:
				asmDot4F32(xp, stride, &w.f32Row(r)[0], n8, o)
			case model.F16:
				asmDot4F16(xp, stride, &w.u16Row(r)[0], n8, o)
			case model.BF16:
				asmDot4BF16(xp, stride, &w.u16Row(r)[0], n8, o)
			}
		}
		if n8 < cols {
			for k := range i {
				out[k] = w.rowTail(x[k*cols:(k+1)*cols], r, n8, out[k])
			}
		}
	case dt == model.F8E4M3:
		row, scales, ng, g := w.fp8Regions(r)
		stride := uintptr(cols * 4)
		for ; useAVX512 && i+8 <= n; i += 8 {
			asmDot8FP8(&x[i*cols], stride, &row[0], 0, &scales[0], ng, g, nil, 0, (*[8]float32)(out[i:i+8]))
		}
		for ; i+4 <= n; i += 4 {
			asmDot4FP8(&x[i*cols], stride, &row[0], &scales[0], ng, g, (*[4]float32)(out[i:i+4]))
		}
		for k := range i {
			out[k] = fp8Tail(x[k*cols:(k+1)*cols], row, scales, ng, g, out[k])
		}
	case dt == model.Q8_0 && w.info.Group%8 == 0:
		g := w.info.Group
		ng, stride := cols/g, uintptr(cols*4)
		row, sc := (*int8)(unsafe.Pointer(&w.data[r*cols])), &w.scales[r*ng]
		for ; useAVX512 && i+8 <= n; i += 8 {
			asmDot8Q8(&x[i*cols], stride, row, sc, ng, g, 1, &out[i])
		}
		for ; i+4 <= n; i += 4 {
			asmDot4Q8(&x[i*cols], stride, row, sc, ng, g, (*[4]float32)(out[i:i+4]))
		}
	}
	for ; i < n; i++ {
		out[i] = w.rowDot(x[i*cols:(i+1)*cols], r)
	}
}

// rowRange sets out[r-r0] = rowDot(x, r) for r0 <= r < r1, with the same bits, by the row kernels that
// stream whole rows: four rows a quarter of the range apart per call (four long sequential streams, eight
// FMA chains), the rows left over by the one-row range kernel; false where the dtype has no such kernels
// (fp8), the rows are not whole chunks of 8 (each would end in a Go tail), or the assembly is off.
func (w *Weight) rowRange(x []float32, r0, r1 int, out []float32) bool {
	cols := w.info.Cols
	dt := w.info.DType
	if !useAsm || dt == model.F8E4M3 || r0 >= r1 || cols%8 != 0 || dt == model.Q8_0 && w.info.Group%8 != 0 {
		return false
	}
	x, out = x[:cols], out[:r1-r0]
	q := (r1 - r0) / 4
	var o [4]float32
	for j := range q {
		r := r0 + j
		switch dt {
		case model.F32:
			asmDot4F32(&w.f32Row(r)[0], uintptr(q*cols*4), &x[0], cols, &o) // the dot product is symmetric in x and w
		case model.F16:
			asmRows4F16(&x[0], &w.u16Row(r)[0], uintptr(q*cols*2), cols, &o)
		case model.BF16:
			asmRows4BF16(&x[0], &w.u16Row(r)[0], uintptr(q*cols*2), cols, &o)
		case model.Q8_0:
			ng := cols / w.info.Group
			asmRows4Q8(&x[0], (*int8)(unsafe.Pointer(&w.data[r*cols])), uintptr(q*cols), &w.scales[r*ng], uintptr(q*ng*4), ng, w.info.Group, &o)
		default:
			return false
		}
		out[j], out[q+j], out[2*q+j], out[3*q+j] = o[0], o[1], o[2], o[3]
	}
	r0 += 4 * q
	if r0 == r1 {
		return true
	}
	out = out[4*q:]
	switch dt {
	case model.F32:
		asmRowsF32(&x[0], &w.f32Row(r0)[0], cols, r1-r0, &out[0])
	case model.F16:
		asmRowsF16(&x[0], &w.u16Row(r0)[0], cols, r1-r0, &out[0])
	case model.BF16:
		asmRowsBF16(&x[0], &w.u16Row(r0)[0], cols, r1-r0, &out[0])
	case model.Q8_0:
		g := w.info.Group
		ng := cols / g
		asmRowsQ8(&x[0], (*int8)(unsafe.Pointer(&w.data[r0*cols])), &w.scales[r0*ng], ng, g, r1-r0, &out[0])
	}
	return true
}

// rowRange8 sets d[r-r0][k] = rowDot(x[k*Cols:], r) for k < 8 and r0 <= r < r1 <= r0+rowBlock, with the
// same bits, by the eight-input kernels: f32, f16, bf16 and fp8 a tile of tileCols columns at a time for
// all the rows (acc keeps their accumulators between tiles); false where there are none (no AVX-512VL,
// a q8_0 group that is not a multiple of 8, rows that are not whole chunks of 8).
func (w *Weight) rowRange8(x []float32, r0, r1 int, d *[rowBlock][8]float32, acc *tileAcc) bool {
	cols := w.info.Cols
	if !useAVX512 || r0 >= r1 || cols%8 != 0 {
		return false
	}
	x = x[:8*cols]
	o := &d[0][0]
	switch w.info.DType {
	case model.F32, model.F16, model.BF16:
		w.tiles8(x, r0, r1, tileCols, acc, o)
	case model.F8E4M3:
		w.fp8Tiles8(x, r0, r1, tileCols, acc, d)
	case model.Q8_0:
		g := w.info.Group
		if g%8 != 0 {
			return false
		}
		ng := cols / g
		asmDot8Q8(&x[0], uintptr(cols*4), (*int8)(unsafe.Pointer(&w.data[r0*cols])), &w.scales[r0*ng], ng, g, r1-r0, o)
	default:
		return false
	}
	return true
}

// tileCols is how many columns of eight inputs the f32/f16/bf16 eight-input kernels take per pass over
// a block's rows: 24 KiB of inputs, which stay in a 48 KiB L1 while the rows stream by (the 3072
// columns of a 125M model's down projection, 96 KiB, did not). A multiple of 16, so each accumulator
// half keeps its chunks.
const tileCols = 768

// tileAcc holds a block's accumulators between column tiles: 8 inputs x 16 lanes per row, fp8 8 x (16 +
// 8) (a scale region's partial sums and the row's accumulators).
type tileAcc [rowBlock * 8 * 24]float32

// The eight-input kernels' flags: load the accumulators from acc (a later tile), save them there
// instead of reducing (not the last tile); fp8's: the first scale region goes on from partial sums saved
// at acc (accCont), the last one stops unfinished and saves them there (accOpen, with accSave).
const (
	accLoad = 1
	accSave = 2
	accCont = 4
	accOpen = 8
)

// tileFlags are the flags of the tile [c0, c1) of a row part [0, end): load after the first, save before the last.
func tileFlags(c0, c1, end int) int {
	flags := 0
	if c0 > 0 {
		flags |= accLoad
	}
	if c1 < end {
		flags |= accSave
	}
	return flags
}

// fp8Tiles8 is tiles8 for fp8 (rows of whole chunks of 8): one kernel call per row and tile, the tile
// a whole number of scale regions where a row has several (block scales), else a part of its one region.
func (w *Weight) fp8Tiles8(x []float32, r0, r1, tile int, acc *tileAcc, d *[rowBlock][8]float32) {
	cols := w.info.Cols
	stride := uintptr(cols * 4)
	_, _, ng, g := w.fp8Regions(r0)
	end := ng * g // the kernels' part of each row; the rest is fp8Tail's
	if ng > 1 {
		tile = max(tile/g, 1) * g
	}
	for c0 := 0; c0 < end; c0 += tile {
		c1 := min(c0+tile, end)
		flags := tileFlags(c0, c1, end)
		groups, group := (c1-c0)/g, g
		if ng == 1 { // one region over the tiles
			groups, group = 1, c1-c0
			if c0 > 0 {
				flags |= accCont
			}
			if c1 < end {
				flags |= accOpen
			}
		}
		for r := r0; r < r1; r++ {
			row, scales, _, _ := w.fp8Regions(r)
			asmDot8FP8(&x[c0], stride, &row[c0], uintptr(cols), &scales[c0/g], groups, group, &acc[(r-r0)*8*24], flags, &d[r-r0])
		}
	}
	for r := r0; r < r1; r++ {
		row, scales, _, _ := w.fp8Regions(r)
		if end == 0 {
			d[r-r0] = [8]float32{}
		}
		for k := range 8 {
			d[r-r0][k] = fp8Tail(x[k*cols:(k+1)*cols], row, scales, ng, g, d[r-r0][k])
		}
	}
}

// tiles8 runs the eight-input kernel over rows [r0, r1) a tile of tile columns (a multiple of 16) at a
// time, the accumulators kept in acc between tiles.
func (w *Weight) tiles8(x []float32, r0, r1, tile int, acc *tileAcc, out *float32) {
	cols := w.info.Cols
	for c0 := 0; c0 < cols; c0 += tile {
		c1 := min(c0+tile, cols)
		w.dots8(x, r0, r1, c0, c1, tileFlags(c0, c1, cols), acc, out)
	}
}

// dots8 runs the f32, f16 or bf16 eight-input kernel over columns [c0, c1) of rows [r0, r1) with the
// inputs x[k*Cols+c0:] (k < 8); out gets row r's eight sums at 8*(r-r0) unless flags has accSave.
func (w *Weight) dots8(x []float32, r0, r1, c0, c1, flags int, acc *tileAcc, out *float32) {
	cols := w.info.Cols
	var a *float32
	if acc != nil {
		a = &acc[0]
	}
	xp, stride, n, rows := &x[c0], uintptr(cols*4), c1-c0, r1-r0
	switch w.info.DType {
	case model.F32:
		asmDot8F32(xp, stride, &w.f32Row(r0)[c0], uintptr(cols*4), n, rows, a, flags, out)
	case model.F16:
		asmDot8F16(xp, stride, &w.u16Row(r0)[c0], uintptr(cols*2), n, rows, a, flags, out)
	case model.BF16:
		asmDot8BF16(xp, stride, &w.u16Row(r0)[c0], uintptr(cols*2), n, rows, a, flags, out)
	}
}

// rowTail adds x[c] * W[r][c] for c from n8 (where the vector kernels stopped) to Cols to s, in order,
// as rowDotAsm does after its kernel.
func (w *Weight) rowTail(x []float32, r, n8 int, s float32) float32 {
	switch w.info.DType {
	case model.F32:
		row := w.f32Row(r)
		for j := n8; j < len(row); j++ {
			s += x[j] * row[j]
		}
	case model.F16:
		luts()
		row := w.u16Row(r)
		for j := n8; j < len(row); j++ {
			s += x[j] * f16LUT[row[j]]
		}
	case model.BF16:
		row := w.u16Row(r)
		for j := n8; j < len(row); j++ {
			s += x[j] * model.BF16ToF32(row[j])
		}
	}
	return s
}
