package gpu

import (
	"fmt"
	"math"
	"sync"

	"kvc/engine"
	"kvc/engine/vk"
	"kvc/model"
)

// The dense ops of engine.Backend on the Vulkan device (shaders/dense.variants). Every kernel decodes
// weights from their stored dtype through 32-bit words (shaders/weights.glsl), so no 8/16-bit storage or
// fp16 arithmetic feature is needed: a matmul invocation reads 8-16 bytes of a row per step already, and
// the measured cost on lavapipe was per-lane loads and masked branches, not load width. Variants are
// chosen by device type (matmul_rows.comp with one subgroup per workgroup on CPU devices, matmul.comp
// with four subgroups on GPUs), by weight dtype and scale layout, and by n (decode or batch; on GPUs
// matmul_tiled.comp from tiledMinRows rows on).

// Workgroup sizes (specialization constant 0 of each kernel). Tree reductions need powers of two.
const (
	wgRow   = 128 // rmsnorm, softmax, argmax: one workgroup per row
	wgElem  = 256
	wgTopK  = 256
	maxTopK = engine.MaxTopK // MAXK in topk.comp
)

// forceGPUWorkgroups makes the kernels take their GPU workgroup sizes on a CPU device too: tests run both
// choices on lavapipe.
var forceGPUWorkgroups bool

// matmulWG is the workgroup of matmul.comp (GPUs): four subgroups, a power of two in [64, 256], within
// the device's invocation and shared-memory limits (the batch variant keeps 2 rows x 8 tokens x WG
// partial sums).
func (b *Backend) matmulWG() uint32 {
	wg := uint32(64)
	for wg < 256 && wg < 4*b.caps.SubgroupSize {
		wg *= 2
	}
	for wg > 64 && (int(wg) > b.caps.MaxWorkGroupInvocations || 2*8*4*int(wg) > b.caps.MaxSharedMemory) {
		wg /= 2
	}
	return wg
}

// rowWG is the workgroup of the kernels that give a workgroup one row (rmsnorm, softmax, argmax) and of
// matmul_rows.comp: gpu on a GPU, one subgroup on a CPU device. lavapipe runs the subgroups of a
// workgroup one after another, so with several each reads a strided part of every row from memory; one
// subgroup streams the row (a 4096x4096 f32 matvec: 112 -> 48 CPU-ms, before matmul_rows took it to 35).
func (b *Backend) rowWG(gpu uint32) uint32 {
	if b.info.Type != vk.TypeCPU || forceGPUWorkgroups {
		return gpu
	}
	wg := uint32(1)
	for wg < b.caps.SubgroupSize && wg < gpu {
		wg *= 2
	}
	return wg
}

// rowsScaleSuffix names matmul_rows.comp's scale layout for this weight (see SCALE there); fp8 and q8_0
// chunks have 8 elements.
func (w *Weight) rowsScaleSuffix() string {
	if w.info.DType != model.F8E4M3 && w.info.DType != model.Q8_0 {
		return ""
	}
	switch shift := log2Exact(w.colDiv); {
	case shift == 31:
		return "_srow"
	case shift < 32 && 1<<shift >= 8:
		return "_sgrp"
	}
	return "_sel"
}

// useMatMulRows says whether MatMul runs matmul_rows.comp: on a CPU device whose workgroup of one
// subgroup (of at least 8 invocations, the most elements a chunk has) can broadcast within it.
func (b *Backend) useMatMulRows() bool {
	sg := b.caps.SubgroupSize
	return b.info.Type == vk.TypeCPU && !forceGPUWorkgroups && b.caps.SubgroupCompute &&
		b.caps.SubgroupOps&vk.SubgroupBallot != 0 && sg >= 8 && sg <= 256 && sg&(sg-1) == 0
}

// matmul variants: tokens per pass and rows per workgroup, as compiled in dense.variants.
var matmulVariants = [2]struct {
	suffix string
	rows   int
}{{"_n1", 4}, {"_nb", 2}}

var dtypeShaderName = map[model.DType]string{
	model.F32: "f32", model.F16: "f16", model.BF16: "bf16", model.F8E4M3: "fp8", model.Q8_0: "q8",
}

// check fails the backend (the error comes back from Sync) unless buf holds at least bytes.
func (b *Backend) check(op, what string, x engine.Buf, bytes int64) bool {
	if b.err != nil {
		return false
	}
	buf, ok := x.(*Buffer)
	if !ok || buf == nil {
		b.Fail(fmt.Errorf("gpu: %s: %s is a %T, not a gpu buffer", op, what, x))
		return false
	}
	if buf.size < bytes {
		b.Fail(fmt.Errorf("gpu: %s: %s has %d bytes, needs %d", op, what, buf.size, bytes))
		return false
	}
	return true
}

func (b *Backend) weight(op string, x engine.Weight) *Weight {
	w, ok := x.(*Weight)
	if !ok || w == nil {
		b.Fail(fmt.Errorf("gpu: %s: weight %T was not uploaded to this backend", op, x))
		return nil
	}
	if len(w.chunks) == 0 {
		b.Fail(fmt.Errorf("gpu: %s: weight %s was freed", op, w.info.Name))
		return nil
	}
	return w
}

// opKernel is the kernel of an op's SPIR-V module name: workgroup size wg (specialization constant 0),
// push-constant block P and bindings plain buffers.
func opKernel[P any](b *Backend, name string, wg uint32, bindings int) *Kernel {
	ones := make([]int, bindings)
	for i := range ones {
		ones[i] = 1
	}
	k, err := b.Kernel(name, []uint32{wg}, PushSize[P](), ones)
	if err != nil {
		b.Fail(err)
		return nil
	}
	return k
}

// Embed gathers rows ids[i] of the table (decoded, scaled); an id outside the table gives a NaN row.
func (b *Backend) Embed(out engine.Buf, table engine.Weight, ids engine.Buf, n int) {
	w := b.weight("Embed", table)
	if w == nil || n <= 0 || !b.check("Embed", "out", out, int64(n*w.info.Cols*4)) || !b.check("Embed", "ids", ids, int64(n*4)) {
		return
	}
	k := opKernel[embedPush](b, "embed", wgElem, 4)
	if k == nil {
		return
	}
	for i, c := range w.chunks {
		push := embedPush{N: uint32(n), Cols: uint32(w.info.Cols), RowBytes: uint32(w.rowBytes), RowBase: uint32(c.rowBase),
			Rows: uint32(c.rows), TotalRows: uint32(w.info.Rows), DType: uint32(w.info.DType), RowDiv: w.rowDiv,
			ColDiv: w.colDiv, ScaleStride: w.scaleStride, WriteInvalid: b32(i == 0)}
		b.Dispatch(k, b.Groups1D(n*w.info.Cols, wgElem), PushBytes(&push),
			[]Range{{Buf: c.data}}, []Range{c.scaleRange()}, []Range{Whole(ids)}, []Range{Whole(out)})
	}
}

// RMSNorm: out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, one workgroup per row.
func (b *Backend) RMSNorm(out, x engine.Buf, wt engine.Weight, n int, eps float32) {
	w := b.weight("RMSNorm", wt)
	if w == nil || n <= 0 {
		return
	}
	if w.info.Rows != 1 {
		b.Fail(fmt.Errorf("gpu: RMSNorm: weight %s has %d rows, want a vector", w.info.Name, w.info.Rows))
		return
	}
	d := int64(w.info.Cols)
	if !b.check("RMSNorm", "x", x, int64(n)*d*4) || !b.check("RMSNorm", "out", out, int64(n)*d*4) {
		return
	}
	k := opKernel[rmsnormPush](b, "rmsnorm", b.rowWG(wgRow), 4)
	if k == nil {
		return
	}
	c := &w.chunks[0]
	push := rmsnormPush{N: uint32(n), Dim: uint32(w.info.Cols), DType: uint32(w.info.DType), Eps: eps, ColDiv: w.colDiv}
	b.Dispatch(k, b.Groups1D(n, 1), PushBytes(&push),
		[]Range{{Buf: c.data}}, []Range{c.scaleRange()}, []Range{Whole(x)}, []Range{Whole(out)})
}

// MatMul: out[i][r] = sum_c x[i][c] * W[r][c]; one dispatch per weight chunk. matmul.comp on GPUs,
// matmul_rows.comp on CPU devices; n == 1 takes the decode variant, larger n the batch variant, and on a
// given device both reduce every element in the same order, so a batch row is bit-identical to the row
// alone. From tiledMinRows rows on, GPUs run matmul_tiled.comp, whose order is its own but again the same
// for every n it runs.
func (b *Backend) MatMul(out, x engine.Buf, wt engine.Weight, n int) {
	b.matmul("MatMul", "", out, x, wt, n)
}

// matmul records op (MatMul, or MatMulAdd with prefix "fused_add_"): the variant's module with the prefix,
// one dispatch per weight chunk.
func (b *Backend) matmul(op, prefix string, out, x engine.Buf, wt engine.Weight, n int) {
	w := b.weight(op, wt)
	if w == nil || n <= 0 {
		return
	}
	if !b.check(op, "x", x, int64(n*w.info.Cols*4)) || !b.check(op, "out", out, int64(n*w.info.Rows*4)) {
		return
	}
	v := b.matmulVariant(w, n)
	k := opKernel[matmulPush](b, prefix+v.name, v.wg, 4)
	if k == nil {
		return
	}
	for i := range w.chunks {
		c := &w.chunks[i]
		push := w.matmulPush(c, n)
		b.Dispatch(k, b.matmulGrid(v, v.groups(c.rows), n), PushBytes(&push),
			[]Range{{Buf: c.data}}, []Range{c.scaleRange()}, []Range{Whole(x)}, []Range{Whole(out)})
	}
}

// The tiled kernel (shaders/matmul_tiled.comp): 128 invocations compute 64 tokens x 64 weight rows
// through two shared [32][64] f32 slabs, activations and decoded weights.
//
// It is chosen from tiledMinRows rows on, on GPUs only. Below one full tile of 64 tokens most of each
// tile's arithmetic would be wasted, and the grid would have only rows/64 workgroups (64 for a 4096-row
// weight), too few to keep a large GPU's memory busy, while matmul.comp reads the weights once with
// rows/2 workgroups: a product over few tokens is bound by weight bandwidth, which is what matmul.comp is
// built for. From a full tile on, matmul.comp's cost grows with n (every 8 tokens re-read per 2 rows) and
// the tiled kernel's per-weight work is amortized over 64 tokens. Decode batches below 64 sequences so
// keep the bits each row gets alone. The threshold is a reasoned choice, not yet measured on a GPU
// (KVC_TILED_MIN_ROWS, Options.TiledMinRows move it). CPU devices never take it: lavapipe runs a
// workgroup's invocations one SIMD batch at a time and pays every barrier, and matmul_rows.comp streams
// rows already.
const (
	tiledMinRows   = 64
	tiledTokens    = 64              // TT
	tiledRows      = 64              // TR (GLU: 32 gate rows and the same up rows)
	tiledWG        = 128             // NTHR
	tiledSharedMem = 2 * 32 * 64 * 4 // xs and ws: BK x TT and BK x TR floats
)

// Tests: forceTiled runs the tiled kernel for every n on any device; tiledMaxTokenTiles, when positive,
// caps its grid's token tiles below the device's limit (so that the kernel's loop over tiles runs).
var (
	forceTiled         bool
	tiledMaxTokenTiles int
)

// tiledFrom is the smallest n that runs the tiled kernel on this backend, 0 for never.
func (b *Backend) tiledFrom() int {
	switch {
	case forceTiled:
		return 1
	case b.tiledMin < 0:
		return 0
	case b.tiledMin > 0:
		return b.tiledMin
	case b.info.Type != vk.TypeCPU || forceGPUWorkgroups:
		return tiledMinRows
	}
	return 0
}

// useTiled says whether a product over n rows of w runs the tiled kernel: from tiledFrom rows on, where
// the device allows its workgroup, its shared memory and its grid (otherwise matmul.comp runs).
func (b *Backend) useTiled(w *Weight, n int) bool {
	from := b.tiledFrom()
	c := b.caps
	return from > 0 && n >= from && tiledWG <= c.MaxWorkGroupInvocations && tiledWG <= int(c.MaxWorkGroupSize[0]) &&
		tiledSharedMem <= c.MaxSharedMemory && (w.info.Rows+tiledRows-1)/tiledRows <= int(c.MaxWorkGroupCount[0])
}

// matmulGrid is the dispatch grid of variant v over groups workgroups of rows and n tokens: one
// dimension for matmul.comp and matmul_rows.comp (they loop over the tokens); rows by token tiles for the
// tiled kernel (which loops over the token tiles past the device's grid limit).
func (b *Backend) matmulGrid(v mmVariant, groups, n int) [3]uint32 {
	if !v.tiled {
		return b.Groups1D(groups, 1)
	}
	tiles := min((n+tiledTokens-1)/tiledTokens, int(b.caps.MaxWorkGroupCount[1]))
	if tiledMaxTokenTiles > 0 {
		tiles = min(tiles, tiledMaxTokenTiles)
	}
	return [3]uint32{uint32(groups), uint32(tiles), 1}
}

// matmulPush is weights.glsl's push constants for chunk c of w and n tokens.
func (w *Weight) matmulPush(c *weightChunk, n int) matmulPush {
	return matmulPush{Rows: uint32(c.rows), Cols: uint32(w.info.Cols), N: uint32(n), RowWords: uint32(w.rowBytes / 4),
		OutStride: uint32(w.info.Rows), RowBase: uint32(c.rowBase), RowDiv: w.rowDiv, ColDiv: w.colDiv,
		ScaleStride: w.scaleStride, ColShift: log2Exact(w.colDiv)}
}

// log2Exact is log2(v) for a power of two, else 32.
func log2Exact(v uint32) uint32 {
	if v == 0 || v&(v-1) != 0 {
		return 32
	}
	n := uint32(0)
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// ropeTables caches, per backend and parameters, the frequency table rope.comp reads: per pair the
// 64-bit fixed-point fraction of a turn round(freq_i / 2pi * 2^64) as (low, high) words.
var ropeTables = struct {
	sync.Mutex
	m map[ropeKey]*Buffer
}{m: map[ropeKey]*Buffer{}}

type ropeKey struct {
	b       *Backend
	headDim int
	theta   float64
	scaling model.RopeScaling
	scaled  bool
}

// RopeTurns converts frequencies (radians per position) to the fixed-point turns rope.comp uses.
func RopeTurns(freqs []float64) []uint64 {
	out := make([]uint64, len(freqs))
	for i, f := range freqs {
		turns := f / (2 * math.Pi)
		turns -= math.Floor(turns)
		out[i] = uint64(math.Ldexp(turns, 64)) // < 2^64 unless turns rounds to 1 (then 0, the same angle)
	}
	return out
}

func (b *Backend) ropeTable(headDim int, p engine.RopeParams) *Buffer {
	key := ropeKey{b: b, headDim: headDim, theta: p.Theta}
	if p.Scaling != nil {
		key.scaling, key.scaled = *p.Scaling, true
	}
	ropeTables.Lock()
	defer ropeTables.Unlock()
	if t, ok := ropeTables.m[key]; ok && !t.freed {
		return t
	}
	turns := RopeTurns(engine.RopeFreqs(headDim, p))
	buf, err := b.AllocBinding(int64(8 * len(turns)))
	if err == nil {
		raw := make([]byte, 8*len(turns))
		for i, t := range turns {
			for j := 0; j < 8; j++ {
				raw[8*i+j] = byte(t >> (8 * j))
			}
		}
		err = b.Write(buf, 0, raw)
	}
	if err != nil {
		b.Fail(fmt.Errorf("gpu: RoPE frequency table: %w", err))
		return nil
	}
	ropeTables.m[key] = buf
	return buf
}

// RoPE rotates x [n][heads][headDim] in place at positions pos [n] (see rope.comp for the precision).
func (b *Backend) RoPE(x engine.Buf, pos engine.Buf, n, heads, headDim int, p engine.RopeParams) {
	if n <= 0 || heads <= 0 {
		return
	}
	if headDim <= 0 || headDim%2 != 0 {
		b.Fail(fmt.Errorf("gpu: RoPE: head dim %d must be positive and even", headDim))
		return
	}
	if !b.check("RoPE", "x", x, int64(n*heads*headDim*4)) || !b.check("RoPE", "pos", pos, int64(n*4)) {
		return
	}
	tab := b.ropeTable(headDim, p)
	k := opKernel[ropePush](b, "rope", wgElem, 3)
	if tab == nil || k == nil {
		return
	}
	push := ropePush{N: uint32(n), Heads: uint32(heads), HeadDim: uint32(headDim), RotateHalf: b32(p.Layout == model.RopeRotateHalf)}
	b.Dispatch(k, b.Groups1D(n*heads*headDim/2, wgElem), PushBytes(&push),
		[]Range{Whole(x)}, []Range{Whole(pos)}, []Range{{Buf: tab}})
}

func (b *Backend) elementwise(op, name string, out, a, c engine.Buf, count int) {
	if count <= 0 {
		return
	}
	for _, buf := range []engine.Buf{out, a, c} {
		if !b.check(op, "operand", buf, int64(count*4)) {
			return
		}
	}
	if k := opKernel[countPush](b, name, wgElem, 3); k != nil {
		b.Dispatch(k, b.Groups1D(count, wgElem), PushBytes(&countPush{Count: uint32(count)}), []Range{Whole(out)}, []Range{Whole(a)}, []Range{Whole(c)})
	}
}

// SwiGLU: out = silu(gate) * up.
func (b *Backend) SwiGLU(out, gate, up engine.Buf, count int) {
	b.elementwise("SwiGLU", "swiglu", out, gate, up, count)
}

// Add: out = a + b.
func (b *Backend) Add(out, a, c engine.Buf, count int) { b.elementwise("Add", "add", out, a, c, count) }

// Softmax of each row in place.
func (b *Backend) Softmax(x engine.Buf, rows, cols int) {
	if rows <= 0 || cols <= 0 || !b.check("Softmax", "x", x, int64(rows*cols*4)) {
		return
	}
	if k := opKernel[rowsPush](b, "softmax", b.rowWG(wgRow), 1); k != nil {
		b.Dispatch(k, b.Groups1D(rows, 1), PushBytes(&rowsPush{Rows: uint32(rows), Cols: uint32(cols)}), []Range{Whole(x)})
	}
}

// Argmax of each row, the lowest index on ties.
func (b *Backend) Argmax(out, x engine.Buf, rows, cols int) {
	if rows <= 0 || cols <= 0 || !b.check("Argmax", "x", x, int64(rows*cols*4)) || !b.check("Argmax", "out", out, int64(rows*4)) {
		return
	}
	if k := opKernel[rowsPush](b, "argmax", b.rowWG(wgRow), 2); k != nil {
		b.Dispatch(k, b.Groups1D(rows, 1), PushBytes(&rowsPush{Rows: uint32(rows), Cols: uint32(cols)}), []Range{Whole(out)}, []Range{Whole(x)})
	}
}

// TopK: the k (<= 256) largest of each row, descending, lower index first on ties.
func (b *Backend) TopK(idx, val, x engine.Buf, rows, cols, k int) {
	if rows <= 0 {
		return
	}
	if k < 1 || k > cols || k > maxTopK {
		b.Fail(fmt.Errorf("gpu: TopK: k %d must be in [1, min(cols %d, %d)]", k, cols, maxTopK))
		return
	}
	if !b.check("TopK", "x", x, int64(rows*cols*4)) || !b.check("TopK", "idx", idx, int64(rows*k*4)) || !b.check("TopK", "val", val, int64(rows*k*4)) {
		return
	}
	kpad := 1
	for kpad < k {
		kpad *= 2
	}
	if kn := opKernel[topkPush](b, "topk", wgTopK, 3); kn != nil {
		push := topkPush{Rows: uint32(rows), Cols: uint32(cols), K: uint32(k), KPad: uint32(kpad)}
		b.Dispatch(kn, b.Groups1D(rows, 1), PushBytes(&push), []Range{Whole(idx)}, []Range{Whole(val)}, []Range{Whole(x)})
	}
}
