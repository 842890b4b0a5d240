package gpu

import (
	"fmt"

	"kvc/engine"
	"kvc/model"
)

// The fused ops of engine.Backend (shaders/fused.variants): 8 dispatches per layer instead of 16. On
// lavapipe every dispatch has a fixed cost (15-60 us measured, whatever it computes); on a GPU a fused
// kernel also saves launches and a round trip of its intermediate through memory. Each fused kernel
// reduces every element as the unfused kernels do, so on one device the fused op gives the unfused
// sequence's bits (ops_fused_test.go checks it). Where a fused kernel does not apply, the wrapper
// records the unfused ops.

// MatMulAdd: out[i][r] += sum_c x[i][c] * W[r][c]. The matmul variants compiled with -DADD: the same
// kernel, reduction order and workgroup choice as MatMul, with the final store an add (one dispatch per
// weight chunk; chunks own disjoint rows, so they never add to the same element).
func (b *Backend) MatMulAdd(out, x engine.Buf, wt engine.Weight, n int) {
	b.matmul("MatMulAdd", "fused_add_", out, x, wt, n)
}

// mmVariant is a matmul module (without a fused prefix), its workgroup size and the weight rows one
// workgroup covers.
type mmVariant struct {
	name         string
	wg           uint32
	rowsPerGroup int
	tiled        bool // matmul_tiled.comp (see matmulGrid)
}

// groups is how many workgroups cover rows weight rows.
func (v mmVariant) groups(rows int) int { return (rows + v.rowsPerGroup - 1) / v.rowsPerGroup }

// matmulVariant is the matmul module MatMul runs for w and n: the same choice as MatMul's, so fused and
// unfused products of an element are reduced alike.
func (b *Backend) matmulVariant(w *Weight, n int) mmVariant {
	dt := dtypeShaderName[w.info.DType]
	if b.useTiled(w, n) {
		return mmVariant{name: "matmultiled_" + dt, wg: tiledWG, rowsPerGroup: tiledRows, tiled: true}
	}
	v := matmulVariants[0]
	if n > 1 {
		v = matmulVariants[1]
	}
	if b.useMatMulRows() {
		return mmVariant{name: "matmulrows_" + dt + w.rowsScaleSuffix() + v.suffix, wg: b.caps.SubgroupSize, rowsPerGroup: int(b.caps.SubgroupSize)}
	}
	return mmVariant{name: "matmul_" + dt + v.suffix, wg: b.matmulWG(), rowsPerGroup: v.rows}
}

// RopeKVWrite rotates q and k and stores k and v in one dispatch (shaders/fused_rope_kv.comp). An f16
// pool with rotate-half needs hd a multiple of 4 (two pairs fill two whole half-pair words); otherwise,
// and for an odd hd (which RoPE reports), the unfused ops run.
func (b *Backend) RopeKVWrite(pool engine.KVPool, q, k, v, slots, pos engine.Buf, n, qHeads, kvHeads int, rp engine.RopeParams) {
	p := b.kvPool("RopeKVWrite", pool)
	if p == nil || n <= 0 || kvHeads <= 0 || qHeads < 0 {
		return
	}
	rotateHalf := rp.Layout == model.RopeRotateHalf
	if p.hd%2 != 0 || (p.typ == engine.KVF16 && rotateHalf && p.hd%4 != 0) {
		b.RoPE(q, pos, n, qHeads, p.hd, rp)
		b.RoPE(k, pos, n, kvHeads, p.hd, rp)
		b.KVWrite(pool, k, v, slots, pos, n, kvHeads)
		return
	}
	kvBytes := int64(n) * int64(kvHeads) * int64(p.hd) * 4
	if !b.kvNeed("RopeKVWrite", "q", q, int64(n)*int64(qHeads)*int64(p.hd)*4) || !b.kvNeed("RopeKVWrite", "k", k, kvBytes) ||
		!b.kvNeed("RopeKVWrite", "v", v, kvBytes) || !b.kvNeed("RopeKVWrite", "slots", slots, int64(n)*int64(kvHeads)*4) ||
		!b.kvNeed("RopeKVWrite", "pos", pos, int64(n)*4) {
		return
	}
	tab := b.ropeTable(p.hd, rp)
	kn := kvKernel[ropeKVPush](b, "RopeKVWrite", p.variant("fused_rope_kv"), p, 6)
	if tab == nil || kn == nil {
		return
	}
	quads := (p.hd/2 + 1) / 2
	bind := append(p.poolBindings(), p.bufs(q, k, v, slots, pos)...)
	bind = append(bind, []Range{{Buf: tab}})
	push := ropeKVPush{kvPoolPush: p.poolPush(0), N: uint32(n), QHeads: uint32(qHeads), KVHeads: uint32(kvHeads), RotateHalf: b32(rotateHalf)}
	b.Dispatch(kn, groups2D(b, n*(qHeads+kvHeads)*quads, kvCopyWG), PushBytes(&push), bind...)
}

// MatMulSwiGLU: out = silu(x Gate^T) * (x Up^T) in one dispatch per chunk: the matmul variants compiled
// with -DGLU decode a gate row and the same up row per step and reduce each sum as MatMul does. gate and
// up must share dtype, scale layout and row chunks (the usual case: one shape, one checkpoint dtype);
// otherwise, or when the doubled tile does not fit in shared memory, the unfused ops run into out and
// scratch of n*rows floats.
func (b *Backend) MatMulSwiGLU(out, x engine.Buf, gate, up engine.Weight, n int) {
	g, u := b.weight("MatMulSwiGLU", gate), b.weight("MatMulSwiGLU", up)
	if g == nil || u == nil || n <= 0 {
		return
	}
	if g.info.Rows != u.info.Rows || g.info.Cols != u.info.Cols {
		b.Fail(fmt.Errorf("gpu: MatMulSwiGLU: gate %s is %dx%d, up %s is %dx%d", g.info.Name, g.info.Rows, g.info.Cols,
			u.info.Name, u.info.Rows, u.info.Cols))
		return
	}
	if !b.check("MatMulSwiGLU", "x", x, int64(n*g.info.Cols*4)) || !b.check("MatMulSwiGLU", "out", out, int64(n*g.info.Rows*4)) {
		return
	}
	v := b.matmulVariant(g, n)
	switch {
	case v.tiled:
		v.rowsPerGroup = tiledRows / 2 // the tile's rows are half gate, half up
	case !b.useMatMulRows():
		v.wg = b.gluWG()
	}
	if !sameLayout(g, u) || v.wg == 0 {
		b.matMulSwiGLUUnfused(out, x, gate, up, n)
		return
	}
	k := opKernel[matmulPush](b, "fused_glu_"+v.name, v.wg, 6)
	if k == nil {
		return
	}
	for i := range g.chunks {
		c, cu := &g.chunks[i], &u.chunks[i]
		push := g.matmulPush(c, n)
		b.Dispatch(k, b.matmulGrid(v, v.groups(c.rows), n), PushBytes(&push),
			[]Range{{Buf: c.data}}, []Range{c.scaleRange()}, []Range{Whole(x)}, []Range{Whole(out)},
			[]Range{{Buf: cu.data}}, []Range{cu.scaleRange()})
	}
}

// gluWG is matmul.comp's workgroup for -DGLU: matmulWG, halved while the doubled tile of partial sums
// (2R x NT x WG floats, the batch variant) exceeds shared memory; 0 when even 64 does not fit. The n1
// and nb variants use the same size, so a batch row still reduces as it does alone.
func (b *Backend) gluWG() uint32 {
	wg := b.matmulWG()
	for wg > 64 && 2*2*8*4*int(wg) > b.caps.MaxSharedMemory {
		wg /= 2
	}
	if 2*2*8*4*int(wg) > b.caps.MaxSharedMemory {
		return 0
	}
	return wg
}

// sameEncoding says whether one kernel variant decodes both weights with one push-constant layout:
// dtype, scale layout and row stride.
func sameEncoding(a, c *Weight) bool {
	return a.info.DType == c.info.DType && a.info.ScaleKind == c.info.ScaleKind && a.info.Group == c.info.Group &&
		a.rowBytes == c.rowBytes && a.rowDiv == c.rowDiv && a.colDiv == c.colDiv && a.scaleStride == c.scaleStride &&
		len(a.chunks) > 0 && len(c.chunks) > 0 && (a.chunks[0].scales == nil) == (c.chunks[0].scales == nil)
}

// sameLayout says whether two weights are stored alike: sameEncoding and the same row chunks.
func sameLayout(a, c *Weight) bool {
	if !sameEncoding(a, c) || len(a.chunks) != len(c.chunks) {
		return false
	}
	for i := range a.chunks {
		if a.chunks[i].rowBase != c.chunks[i].rowBase || a.chunks[i].rows != c.chunks[i].rows ||
			(a.chunks[i].scales == nil) != (c.chunks[i].scales == nil) {
			return false
		}
	}
	return true
}

// matMulSwiGLUUnfused runs MatMul, MatMul, SwiGLU with a scratch buffer for the up product.
func (b *Backend) matMulSwiGLUUnfused(out, x engine.Buf, gate, up engine.Weight, n int) {
	count := n * gate.Info().Rows
	tmp, err := b.Alloc(int64(count) * 4)
	if err != nil {
		b.Fail(fmt.Errorf("gpu: MatMulSwiGLU: scratch for the up product: %w", err))
		return
	}
	b.MatMul(out, x, gate, n)
	b.MatMul(tmp, x, up, n)
	b.SwiGLU(out, out, tmp, count)
	b.Free(tmp) // released once the recorded work that reads it is done
}

// MatMulQKV: the three projections in one dispatch (the matmul variants compiled with -DQKV): the
// workgroups of q's rows come first, then k's, then v's, each workgroup reducing its rows exactly as
// MatMul does. The weights must share dtype and layout and be one chunk each, k and v of one shape;
// otherwise the three MatMuls run.
func (b *Backend) MatMulQKV(q, k, v, x engine.Buf, wq, wk, wv engine.Weight, n int) {
	a, c, d := b.weight("MatMulQKV", wq), b.weight("MatMulQKV", wk), b.weight("MatMulQKV", wv)
	if a == nil || c == nil || d == nil || n <= 0 {
		return
	}
	if !sameEncoding(a, c) || !sameEncoding(a, d) || len(a.chunks) != 1 || len(c.chunks) != 1 || len(d.chunks) != 1 || c.info.Rows != d.info.Rows ||
		a.info.Cols != c.info.Cols || a.info.Cols != d.info.Cols {
		b.MatMul(q, x, wq, n)
		b.MatMul(k, x, wk, n)
		b.MatMul(v, x, wv, n)
		return
	}
	if !b.check("MatMulQKV", "x", x, int64(n*a.info.Cols*4)) || !b.check("MatMulQKV", "q", q, int64(n*a.info.Rows*4)) ||
		!b.check("MatMulQKV", "k", k, int64(n*c.info.Rows*4)) || !b.check("MatMulQKV", "v", v, int64(n*d.info.Rows*4)) {
		return
	}
	mv := b.matmulVariant(a, n)
	kn := opKernel[matmulQKVPush](b, "fused_qkv_"+mv.name, mv.wg, 10)
	if kn == nil {
		return
	}
	gq, gk := mv.groups(a.info.Rows), mv.groups(c.info.Rows)
	ca, cc, cd := &a.chunks[0], &c.chunks[0], &d.chunks[0]
	push := matmulQKVPush{matmulPush: a.matmulPush(ca, n), Rows2: uint32(c.info.Rows), GroupsQ: uint32(gq), GroupsK: uint32(gk)}
	b.Dispatch(kn, b.matmulGrid(mv, gq+2*gk, n), PushBytes(&push),
		[]Range{{Buf: ca.data}}, []Range{ca.scaleRange()}, []Range{Whole(x)}, []Range{Whole(q)},
		[]Range{{Buf: cc.data}}, []Range{cc.scaleRange()}, []Range{{Buf: cd.data}}, []Range{cd.scaleRange()},
		[]Range{Whole(k)}, []Range{Whole(v)})
}
