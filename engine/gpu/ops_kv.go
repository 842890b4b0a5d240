package gpu

import (
	"fmt"
	"runtime"
	"unsafe"

	"kvc/engine"
	"kvc/engine/vk"
)

// Limits compiled into the KV shaders (shaders/kv_defs.glsl, kv_attn.glsl, attention.comp).
const (
	kvMaxArenas  = 8   // KV_ARENAS: K and V buffers per pool
	kvMaxMeta    = 2   // META_ARENAS: metric, position and scratch buffers per pool
	kvMaxGroup   = 64  // MAX_GROUP: query heads per KV head with a metric mode
	kvMaxHeadDim = 256 // MAX_D
	kvAttnWG     = 128 // WG of attention, attention_reduce, window_metric
	kvCopyWG     = 64  // kv_write, copy_moves, read_slots
)

// Split-K (see shaders/kv_attn.glsl): a (row, KV head) with ctx slots is cut into
// clamp(ceil(ctx/PartMin), 1, SplitMax) partitions, combined by attention_reduce. The rule depends on ctx
// alone, and a partition's arithmetic does not depend on which workgroup computes it, so a row gives
// bit-identical results alone or in any batch. The host only chooses how many workgroups share a
// (row, KV head)'s partitions: SplitMax when the call has few (row, KV head) pairs (to fill the device;
// attention_reduce then combines them), else 1 (each workgroup loops over its partitions and combines
// them itself with the same code: no empty workgroups, no second dispatch). When the partial buffer would
// exceed the binding range (huge prefill chunks) the call runs unsplit, which is the one case whose
// results differ from the same rows run in smaller calls.
const (
	DefaultSplitMax = 8
	DefaultPartMin  = 512
	kvFillGroups    = 256 // (row, KV head) pairs below which partitions get their own workgroups
)

// Split window metric (window_metric.comp's WM_SPLIT): on GPUs, a WindowMetric call of fewer (KV head,
// sequence) pairs than FillGroups would leave most of the device idle, each workgroup walking every window
// row over its head's whole context (8 KV heads, one 8k-token prompt: 8 workgroups). The context of each
// head is then cut into up to ceil(FillGroups / pairs) parts (at most windowSplitMax, at least
// WindowPartMin slots each, the partial maxima and exp-sums within windowPartBytes), each part its own
// workgroup, in three dispatches. The parts change the metric's rounding only (the parts' softmax
// statistics are combined instead of one workgroup's), so a sequence's metric bits depend on the call's
// size here, unlike attention's split-K; with one part the single-workgroup kernel runs as before.
const (
	windowSplitMax       = 64
	DefaultWindowPartMin = 256       // two slots per invocation per sweep
	windowPartBytes      = 256 << 20 // partial (max, exp-sum) pairs
)

// windowChunks overrides the split window metric's parts per head in tests (0: the host's rule).
var windowChunks = 0

// Tiled prefill attention (shaders/attention_tiled.comp): on non-CPU devices, the rows of a prefill chunk
// (a run of at least TiledMin consecutive rows sharing a (row, KV head) entry of Heads, as the engine
// packs a chunk) that add no metric are computed by workgroups of 32 queries (rows x query heads of one KV
// head) that stage each K/V slot once for all of them; attention.comp keeps the other rows. A row's kernel
// depends only on its own run, so its bits do not depend on the rest of the call. 32 rows: below that a
// chunk's tiles are too few to fill a GPU without split-K, which the tiled kernel does not have. CPU
// devices keep attention_rows.comp (a workgroup barrier costs lavapipe a coroutine switch per lane group).
const (
	DefaultTiledMin = 32
	kvTiledQueries  = 32 // NQ of attention_tiled.comp
	kvTiledMaxStage = 32 // the most slots per stage (KT)
	kvTiledMinStage = 4  // below this the staging overhead outweighs the reuse: attention.comp instead
)

// attnTiledMin overrides KVPool.TiledMin in tests: 0 keeps the pool's, negative turns tiling off.
var attnTiledMin = 0

// KVPool is the paged KV cache on the device. K and V are split into arenas of kBlocks blocks (each
// buffer within maxStorageBufferRange), metric and position into arenas of mBlocks blocks; the shaders
// find the arena of a slot by division. Scratch (attention scores and window sums, per slot) and the
// split-K partials are allocated on first use.
type KVPool struct {
	b              *Backend
	blocks, bs, hd int
	typ            engine.KVType
	arenaBytes     int64
	kBlocks        int // blocks per K/V arena
	mBlocks        int // blocks per metric/position arena
	k, v           []*Buffer
	met, pos       []*Buffer
	scratch        []*Buffer
	sBlocks        int     // blocks per scratch arena
	sStride        int     // scratch floats per slot
	part           *Buffer // split-K partials; the split window metric's too
	dummy          *Buffer // bound to bindings a kernel declares but does not use
	bound          int     // SetBound: blocks below this are the only ones ops refer to (0: the whole pool)
	rsBlocks       *Buffer // ReadSlots: block list and gathered outputs
	rsMetric       *Buffer
	rsPos          *Buffer
	rsNorm         *Buffer

	names struct{ write, attention, window, copy string } // shader variants for the KV type

	// SplitMax and PartMin set split-K; calls with fewer than FillGroups (row, KV head) pairs give each
	// partition its own workgroup. Tests lower them to exercise every path at small sizes.
	SplitMax, PartMin, FillGroups int
	// WindowPartMin: the fewest slots per part of a split window metric.
	WindowPartMin int
	// TiledMin: rows sharing a head entry from which attention_tiled.comp takes them (0: never).
	TiledMin int
}

func (p *KVPool) Blocks() int         { return p.blocks }
func (p *KVPool) BlockSize() int      { return p.bs }
func (p *KVPool) HeadDim() int        { return p.hd }
func (p *KVPool) Type() engine.KVType { return p.typ }
func (p *KVPool) BlockBytes() int64 {
	return int64(p.bs) * (2*int64(p.hd)*p.elemBytes() + 8)
}
func (p *KVPool) elemBytes() int64 {
	if p.typ == engine.KVF16 {
		return 2
	}
	return 4
}

// Arenas is the number of K (and of V) buffers.
func (p *KVPool) Arenas() int { return len(p.k) }

// SetBound implements engine.KVBounder: the ops recorded from now on refer only to blocks below n. The
// kernels are then specialized to the arenas that hold those blocks (an arena switch costs every case on
// lavapipe, whose shaders run on the CPU: stories260K's attention took 1.5x as long with a 1 GiB pool's 4
// arenas as with 8 MiB's one), and blocks at or above n count as outside the pool (ignored).
func (p *KVPool) SetBound(n int) { p.bound = n }

// ArenasInUse is the number of K (and of V) arenas the kernels are specialized for now (see SetBound).
func (p *KVPool) ArenasInUse() int {
	kv, _, _ := p.arenasInUse()
	return kv
}

// inUse is the number of blocks the kernels must reach: the bound, or the whole pool without one.
func (p *KVPool) inUse() int {
	if p.bound <= 0 {
		return p.blocks
	}
	return min(p.bound, p.blocks)
}

// arenasInUse is how many K/V, metric/position and scratch arenas hold the blocks in use (at least one of each).
func (p *KVPool) arenasInUse() (kv, meta, scr int) {
	n := p.inUse()
	ceil := func(per int) int { return max((n+per-1)/per, 1) }
	kv, meta, scr = ceil(p.kBlocks), ceil(p.mBlocks), 1
	if p.sBlocks > 0 {
		scr = ceil(p.sBlocks)
	}
	return kv, meta, scr
}

// NewKVPool allocates the paged cache with arenas as large as the device's binding range allows.
func (b *Backend) NewKVPool(blocks, blockSize, headDim int, typ engine.KVType) (engine.KVPool, error) {
	return b.NewKVPoolArenas(blocks, blockSize, headDim, typ, b.caps.MaxStorageBufferRange)
}

// NewKVPoolArenas is NewKVPool with every buffer of the pool at most arenaBytes long (tests use it to
// spread a small pool over several arenas).
func (b *Backend) NewKVPoolArenas(blocks, blockSize, headDim int, typ engine.KVType, arenaBytes int64) (*KVPool, error) {
	if blocks <= 0 || blockSize <= 0 || headDim <= 0 {
		return nil, fmt.Errorf("gpu: KV pool needs positive blocks, block size and head dim, got %d, %d, %d",
			blocks, blockSize, headDim)
	}
	if typ != engine.KVF32 && typ != engine.KVF16 {
		return nil, fmt.Errorf("gpu: unknown KV type %d", typ)
	}
	if headDim > kvMaxHeadDim {
		return nil, fmt.Errorf("gpu: KV head dim %d exceeds the attention shader's %d", headDim, kvMaxHeadDim)
	}
	if typ == engine.KVF16 && headDim%2 != 0 {
		return nil, fmt.Errorf("gpu: an f16 KV pool stores half pairs: head dim %d must be even (use f32)", headDim)
	}
	arenaBytes = min(arenaBytes, b.caps.MaxStorageBufferRange)
	p := &KVPool{b: b, blocks: blocks, bs: blockSize, hd: headDim, typ: typ, arenaBytes: arenaBytes,
		SplitMax: DefaultSplitMax, PartMin: DefaultPartMin, FillGroups: kvFillGroups, TiledMin: DefaultTiledMin,
		WindowPartMin: DefaultWindowPartMin}
	if b.info.Type == vk.TypeCPU {
		// lavapipe: an idle workgroup still costs ~60 us (coroutine setup for its barriers), and a few
		// busy workgroups already fill the cores.
		p.FillGroups = runtime.NumCPU()
	}
	if int64(blocks)*int64(blockSize) >= 1<<31 {
		return nil, fmt.Errorf("gpu: KV pool of %d slots exceeds int32 slot ids", int64(blocks)*int64(blockSize))
	}
	kvBlock := int64(blockSize) * int64(headDim) * p.elemBytes()
	var err error
	if p.kBlocks, err = perArena("K/V", blocks, kvBlock, arenaBytes, kvMaxArenas); err != nil {
		return nil, err
	}
	if p.mBlocks, err = perArena("metric/position", blocks, int64(blockSize)*4, arenaBytes, kvMaxMeta); err != nil {
		return nil, err
	}
	fail := func(err error) (*KVPool, error) {
		p.free()
		return nil, err
	}
	// Nothing is cleared: a slot is read only after KVWrite or CopyMoves set it (attention, the window
	// metric and the read-back all stop at each head's context), and clearing gigabytes was most of a batch
	// command's start on lavapipe.
	alloc := func(list *[]*Buffer, per int, unit int64, what string) error {
		for first := 0; first < blocks; first += per {
			n := min(per, blocks-first)
			buf, err := b.AllocBinding(int64(n) * unit)
			if err != nil {
				return fmt.Errorf("gpu: KV pool %s arena %d: %w", what, len(*list), err)
			}
			*list = append(*list, buf)
		}
		return nil
	}
	if err := alloc(&p.k, p.kBlocks, kvBlock, "K"); err != nil {
		return fail(err)
	}
	if err := alloc(&p.v, p.kBlocks, kvBlock, "V"); err != nil {
		return fail(err)
	}
	if err := alloc(&p.met, p.mBlocks, int64(blockSize)*4, "metric"); err != nil {
		return fail(err)
	}
	if err := alloc(&p.pos, p.mBlocks, int64(blockSize)*4, "position"); err != nil {
		return fail(err)
	}
	p.names.write, p.names.attention = p.variant("kv_write"), p.variant("attention")
	p.names.window, p.names.copy = p.variant("window_metric"), p.variant("copy_moves")
	if p.dummy, err = b.AllocBuffer(16); err != nil {
		return fail(err)
	}
	if err := b.Err(); err != nil {
		return fail(err)
	}
	return p, nil
}

// perArena is how many blocks of unit bytes one arena holds, checking that max arenas hold them all.
func perArena(what string, blocks int, unit, arenaBytes int64, max int) (int, error) {
	per := arenaBytes / unit
	if per < 1 {
		return 0, fmt.Errorf("gpu: a KV block's %s (%d bytes) exceeds the binding range of %d bytes", what, unit, arenaBytes)
	}
	per = min(per, int64(blocks))
	if n := (int64(blocks) + per - 1) / per; n > int64(max) {
		return 0, fmt.Errorf("gpu: KV pool of %d blocks needs %d %s buffers of at most %d bytes; the shaders bind at most %d (use fewer blocks)",
			blocks, n, what, arenaBytes, max)
	}
	return int(per), nil
}

// free releases every buffer of the pool (after pending work that uses them).
func (p *KVPool) free() {
	for _, l := range [][]*Buffer{p.k, p.v, p.met, p.pos, p.scratch} {
		for _, buf := range l {
			p.b.Free(buf)
		}
	}
	for _, buf := range []*Buffer{p.part, p.dummy, p.rsBlocks, p.rsMetric, p.rsPos, p.rsNorm} {
		if buf != nil {
			p.b.Free(buf)
		}
	}
	p.k, p.v, p.met, p.pos, p.scratch = nil, nil, nil, nil, nil
}

// Release frees the pool's device memory.
func (p *KVPool) Release() { p.free() }

// ensureScratch makes room for stride floats per slot.
func (p *KVPool) ensureScratch(stride int) error {
	if stride <= p.sStride {
		return nil
	}
	per, err := perArena("scratch", p.blocks, int64(p.bs)*4*int64(stride), p.arenaBytes, kvMaxMeta)
	if err != nil {
		return err
	}
	for _, buf := range p.scratch {
		p.b.Free(buf)
	}
	p.scratch = nil
	for first := 0; first < p.blocks; first += per {
		buf, err := p.b.AllocBinding(int64(min(per, p.blocks-first)) * int64(p.bs) * 4 * int64(stride))
		if err != nil {
			return fmt.Errorf("gpu: KV scratch: %w", err)
		}
		p.scratch = append(p.scratch, buf)
	}
	p.sBlocks, p.sStride = per, stride
	return nil
}

// ensure grows *buf to at least n bytes (the old one is freed once pending work is done).
func (p *KVPool) ensure(buf **Buffer, n int64) error {
	if *buf != nil && (*buf).size >= n {
		return nil
	}
	if *buf != nil {
		p.b.Free(*buf)
		*buf = nil
	}
	nb, err := p.b.AllocBinding(max(n, 16))
	if err != nil {
		return err
	}
	*buf = nb
	return nil
}

// poolPush is KV_POOL_PUSH, the head of every KV kernel's push constants (tabLen: entries of the op's
// block-table buffer).
func (p *KVPool) poolPush(tabLen int64) kvPoolPush {
	sSlots := uint32(1)
	if p.sBlocks > 0 {
		sSlots = uint32(p.sBlocks * p.bs)
	}
	return kvPoolPush{BlockSize: uint32(p.bs), HeadDim: uint32(p.hd), KSlots: uint32(p.kBlocks * p.bs), MSlots: uint32(p.mBlocks * p.bs),
		SSlots: sSlots, NSlots: uint32(p.inUse() * p.bs), SStride: uint32(max(p.sStride, 1)), TabLen: uint32(min(tabLen, 1<<31))}
}

// arenas lists bufs padded to n ranges (unused entries repeat the first buffer; shaders never index them).
func arenas(bufs []*Buffer, n int, dummy *Buffer) []Range {
	out := make([]Range, n)
	for i := range out {
		switch {
		case i < len(bufs):
			out[i] = Range{Buf: bufs[i]}
		case len(bufs) > 0:
			out[i] = Range{Buf: bufs[0]}
		default:
			out[i] = Range{Buf: dummy}
		}
	}
	return out
}

// poolBindings are bindings 0-4 of every KV kernel: K, V, metric, position, scratch.
func (p *KVPool) poolBindings() [][]Range {
	return [][]Range{arenas(p.k, kvMaxArenas, p.dummy), arenas(p.v, kvMaxArenas, p.dummy),
		arenas(p.met, kvMaxMeta, p.dummy), arenas(p.pos, kvMaxMeta, p.dummy),
		arenas(p.scratch, kvMaxMeta, p.dummy)}
}

func (p *KVPool) variant(name string) string {
	if p.typ == engine.KVF16 {
		return name + "_f16"
	}
	return name + "_f32"
}

// DeviceBytes is the device memory the pool holds: the K, V, metric and position arenas plus the scratch
// (sStride floats per slot, from the first metric op) and the split-K partials and ReadSlots buffers.
func (p *KVPool) DeviceBytes() int64 {
	var n int64
	for _, l := range [][]*Buffer{p.k, p.v, p.met, p.pos, p.scratch} {
		for _, buf := range l {
			n += buf.size
		}
	}
	for _, buf := range []*Buffer{p.part, p.dummy, p.rsBlocks, p.rsMetric, p.rsPos, p.rsNorm} {
		if buf != nil {
			n += buf.size
		}
	}
	return n
}

func (b *Backend) kvPool(op string, pool engine.KVPool) *KVPool {
	p, ok := pool.(*KVPool)
	if !ok || p == nil {
		b.Fail(fmt.Errorf("gpu: %s: pool %T is not a Vulkan KV pool", op, pool))
		return nil
	}
	if p.b != b {
		b.Fail(fmt.Errorf("gpu: %s: the KV pool belongs to another device", op))
		return nil
	}
	if p.k == nil {
		b.Fail(fmt.Errorf("gpu: %s: the KV pool was released", op))
		return nil
	}
	return p
}

// kvCounts[extra] are the binding counts of a KV kernel: the pool's five bindings, then extra buffers.
var kvCounts = func() (c [8][]int) {
	for extra := range c {
		c[extra] = append([]int{kvMaxArenas, kvMaxArenas, kvMaxMeta, kvMaxMeta, kvMaxMeta}, make([]int, extra)...)
		for i := 5; i < len(c[extra]); i++ {
			c[extra][i] = 1
		}
	}
	return c
}()

// kvKernel builds a KV kernel with push-constant block P for the pool's arena counts (specialization
// constants 0-2 of kv_pool.glsl) and the kernel's own specialization constants from 3 on (more).
func kvKernel[P any](b *Backend, op, name string, p *KVPool, extra int, more ...uint32) *Kernel {
	var buf [8]uint32
	kv, meta, scr := p.arenasInUse()
	spec := append(buf[:0], uint32(kv), uint32(meta), uint32(scr))
	spec = append(spec, more...)
	k, err := b.Kernel(name, spec, PushSize[P](), kvCounts[extra])
	if err != nil {
		b.Fail(fmt.Errorf("gpu: %s: %w", op, err))
		return nil
	}
	return k
}

// bufs returns Whole ranges, substituting the pool's dummy for nil.
func (p *KVPool) bufs(xs ...engine.Buf) [][]Range {
	out := make([][]Range, len(xs))
	for i, x := range xs {
		if x == nil {
			out[i] = []Range{{Buf: p.dummy}}
		} else {
			out[i] = []Range{Whole(x)}
		}
	}
	return out
}

func groups2D(b *Backend, n, perGroup int) [3]uint32 { return b.Groups1D(n, perGroup) }

// kvNeed fails the backend unless x holds at least n bytes.
func (b *Backend) kvNeed(op, what string, x engine.Buf, n int64) bool {
	if x == nil {
		b.Fail(fmt.Errorf("gpu: %s: no %s buffer", op, what))
		return false
	}
	if x.Size() < n {
		b.Fail(fmt.Errorf("gpu: %s: %s holds %d bytes, the call needs %d", op, what, x.Size(), n))
		return false
	}
	return true
}

// KVWrite stores K and V rows into their slots, sets positions and clears metrics.
func (b *Backend) KVWrite(pool engine.KVPool, k, v, slots, pos engine.Buf, n, kvHeads int) {
	p := b.kvPool("KVWrite", pool)
	if p == nil || n <= 0 || kvHeads <= 0 {
		return
	}
	rowBytes := int64(n) * int64(kvHeads) * int64(p.hd) * 4
	if !b.kvNeed("KVWrite", "k", k, rowBytes) || !b.kvNeed("KVWrite", "v", v, rowBytes) ||
		!b.kvNeed("KVWrite", "slots", slots, int64(n)*int64(kvHeads)*4) || !b.kvNeed("KVWrite", "pos", pos, int64(n)*4) {
		return
	}
	kn := kvKernel[kvWritePush](b, "KVWrite", p.names.write, p, 5)
	if kn == nil {
		return
	}
	words := p.hd
	if p.typ == engine.KVF16 {
		words /= 2
	}
	bind := append(p.poolBindings(), p.bufs(k, v, slots, nil, pos)...)
	push := kvWritePush{kvPoolPush: p.poolPush(0), N: uint32(n), KVHeads: uint32(kvHeads)}
	b.Dispatch(kn, groups2D(b, n*kvHeads*words, kvCopyWG), PushBytes(&push), bind...)
}

// Attention is paged attention, one workgroup per (KV head, row[, partition]); see shaders/attention.comp,
// and shaders/attention_rows.comp, which CPU devices run instead (attentionRows): the same split rule,
// partials and combine, so both paths keep the metric semantics and batch invariance. On GPUs the rows of
// long prefill chunks go to shaders/attention_tiled.comp instead (attentionTiled; never rows that add a
// metric).
// Metric modes add in the same pass and assume one row per head table (decode); rows of one call sharing
// a table with a metric mode race on the per-slot scratch (a caller error; prefill chunks use
// MetricNone and WindowMetric).
func (b *Backend) Attention(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) {
	b.attention(out, q, pool, a, qHeads, kvHeads, scale, mode, nil)
}

// attention is Attention; with win (AttentionWindow) it leaves out the rows the fused window kernel
// computes (kv_window.glsl).
func (b *Backend) attention(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode, win *engine.WindowSpec) {
	p := b.kvPool("Attention", pool)
	if p == nil || a.Rows <= 0 {
		return
	}
	if kvHeads <= 0 || qHeads%kvHeads != 0 {
		b.Fail(fmt.Errorf("gpu: Attention: %d query heads are not a multiple of %d KV heads", qHeads, kvHeads))
		return
	}
	r := qHeads / kvHeads
	act := int64(a.Rows) * int64(qHeads) * int64(p.hd) * 4
	if !b.kvNeed("Attention", "q", q, act) || !b.kvNeed("Attention", "out", out, act) ||
		!b.kvNeed("Attention", "Heads", a.Heads, int64(a.Rows)*int64(kvHeads)*8) ||
		!b.kvNeed("Attention", "Pos", a.Pos, int64(a.Rows)*4) || !b.kvNeed("Attention", "Tables", a.Tables, 0) {
		return
	}
	if mode != engine.MetricNone {
		if r > kvMaxGroup {
			b.Fail(fmt.Errorf("gpu: Attention: metric over %d query heads per KV head exceeds the shader's %d", r, kvMaxGroup))
			return
		}
		if err := p.ensureScratch(max(r, 2)); err != nil {
			b.Fail(fmt.Errorf("gpu: Attention: %w", err))
			return
		}
	}
	split := max(p.SplitMax, 1)
	partBytes := int64(a.Rows) * int64(kvHeads) * int64(split) * int64(r) * int64(p.hd+2) * 4
	if partBytes > b.caps.MaxStorageBufferRange {
		split = 1
	}
	if split > 1 {
		if err := p.ensure(&p.part, partBytes); err != nil {
			b.Fail(fmt.Errorf("gpu: Attention: split-K partials: %w", err))
			return
		}
	}
	depth := 1
	if a.Rows*kvHeads < p.FillGroups {
		depth = split
	}
	var kn *Kernel
	if rows := b.attentionRows(p, r); rows != nil {
		kn = kvKernel[attentionPush](b, "Attention", p.variant("attention_rows"), p, 7, rows[:]...)
	} else {
		kn = kvKernel[attentionPush](b, "Attention", p.names.attention, p, 7)
	}
	red := kvKernel[attentionPush](b, "Attention", "attention_reduce", p, 7)
	if kn == nil || red == nil {
		return
	}
	var part engine.Buf
	if split > 1 {
		part = p.part
	}
	ap := attentionPush{kvPoolPush: p.poolPush(a.Tables.Size() / 4), Rows: uint32(a.Rows), QHeads: uint32(qHeads),
		KVHeads: uint32(kvHeads), Scale: scale, Mode: uint32(mode), SplitMax: uint32(split), PartMin: uint32(max(p.PartMin, 1)),
		MetricRows: uint32(a.MetricRowCount()), MetricBuffer: int32(a.MetricBuffer)}
	var seqs engine.Buf
	if win != nil {
		ap.NWin, seqs = uint32(win.NSeqs), win.Seqs
	}
	var tiled *Kernel
	var tiledGrid [3]uint32
	if spec, tmin := b.attentionTiled(p, r, kvHeads, a, mode); spec != nil {
		if tiled = kvKernel[attentionPush](b, "Attention", p.variant("attention_tiled"), p, 7, spec[:]...); tiled == nil {
			return
		}
		ap.TiledMin = uint32(tmin)
		hr, first := int(spec[0]), 0
		if mode != engine.MetricNone {
			first = a.MetricRowCount()
		}
		tr := kvTiledQueries / hr
		tiledGrid = [3]uint32{uint32(kvHeads * ((r + hr - 1) / hr)), uint32((a.Rows - first + tr - 1) / tr), 1}
	}
	push := PushBytes(&ap)
	bind := append(p.poolBindings(), p.bufs(q, out, a.Heads, a.Tables, a.Pos, part, seqs)...)
	// attention.comp and attention_reduce skip the rows attention_tiled.comp takes (kvTiledRow).
	b.Dispatch(kn, [3]uint32{uint32(kvHeads), uint32(a.Rows), uint32(depth)}, push, bind...)
	if depth > 1 { // with depth 1 each workgroup combined its own partitions
		b.Dispatch(red, [3]uint32{uint32(kvHeads), uint32(a.Rows), 1}, push, bind...)
	}
	if tiled != nil {
		b.Dispatch(tiled, tiledGrid, push, bind...)
	}
}

// attentionTiled returns the specialization constants 3-5 of attention_tiled.comp (query heads per
// workgroup, slots per stage, vec4s per staged row) and the run length from which rows are its, or nil when
// Attention runs attention.comp (or attention_rows.comp) alone: on CPU devices (unless GPU workgroups are
// forced), when the call has fewer rows without a metric than a run needs, or when no stage of at least
// kvTiledMinStage slots fits the device's shared memory. The stage size depends on the device and head
// only, never on the batch.
func (b *Backend) attentionTiled(p *KVPool, r, kvHeads int, a engine.AttnHeads, mode engine.MetricMode) (*[3]uint32, int) {
	tmin := p.TiledMin
	if attnTiledMin != 0 {
		tmin = attnTiledMin
	}
	rows := a.Rows
	if mode != engine.MetricNone {
		rows -= a.MetricRowCount()
	}
	if tmin <= 0 || b.info.Type == vk.TypeCPU && !forceGPUWorkgroups || rows < tmin ||
		b.caps.MaxWorkGroupInvocations < kvAttnWG {
		return nil, 0
	}
	hr := min(r, kvTiledQueries)
	ch, nv := 4, 1 // head dims and vec4s per 16-byte chunk (kv_chunk.glsl)
	if p.typ == engine.KVF16 {
		ch, nv = 8, 2
	}
	hd4 := (p.hd + ch - 1) / ch * nv
	for kt := kvTiledMaxStage; kt >= kvTiledMinStage; kt /= 2 {
		if tiledSharedBytes(kt, hd4) <= b.caps.MaxSharedMemory {
			return &[3]uint32{uint32(hr), uint32(kt), uint32(hd4)}, tmin
		}
	}
	return nil, 0
}

// tiledSharedBytes is attention_tiled.comp's shared memory at kt slots per stage and hd4 vec4s per row:
// the staged rows, the partial scores, the stage's slots and positions, the tile's row entries.
func tiledSharedBytes(kt, hd4 int) int {
	return kt*hd4*16 + 4*kt*kvTiledQueries*4 + kt*8 + kvTiledQueries*12
}

// attnRowsLayout overrides attention_rows.comp's layout choice in tests: rowsAuto, rowsLanes (every head
// width in lane layout, several windows when wide) or rowsTiles.
var attnRowsLayout = rowsAuto

const (
	rowsAuto = iota
	rowsLanes
	rowsTiles
)

// attentionRows returns the specialization constants 3-6 of attention_rows.comp (workgroup = subgroup
// size, query heads per pass, 16-byte output chunks per lane, tile layout) when Attention runs it: on a
// CPU device with subgroup arithmetic (one subgroup per workgroup, lanes merged by subgroupMax and
// subgroupAdd). Heads of one output window take the lane layout (a lane per slot, all dims); wider heads
// the tile layout (a lane per slot for scores, a lane per output chunk for V), which reads K once instead
// of once per window (lavapipe, head dim 128, 4 query heads per KV head: lane layout 1.55x slower than
// attention.comp). The choice depends on the device, head dim, KV type and group size only, never on the
// batch, so a row's bits do not depend on what else runs with it.
func (b *Backend) attentionRows(p *KVPool, r int) *[4]uint32 {
	sg := b.cpuLanes()
	if sg == 0 {
		return nil
	}
	ch, nv := 4, 1 // head dims and vec4s per 16-byte chunk
	if p.typ == engine.KVF16 {
		ch, nv = 8, 2
	}
	rp := min(r, 4)
	chunks := (p.hd + ch - 1) / ch
	const maxAcc = 32 // vec4 accumulators per lane (128 floats), so the state stays in registers
	nw := max(1, min(chunks, maxAcc/(nv*rp)))
	if attnRowsLayout == rowsLanes || attnRowsLayout == rowsAuto && nw >= chunks {
		return &[4]uint32{sg, uint32(rp), uint32(nw), 0}
	}
	kc := (chunks + int(sg) - 1) / int(sg)
	if rp*kc*nv > maxAcc {
		return nil
	}
	return &[4]uint32{sg, uint32(rp), uint32(kc), 1}
}

// cpuLanes is the subgroup size of the lane kernels (attention_rows, window_metric_lanes: one subgroup per
// workgroup, no workgroup barriers) on a CPU device with subgroup arithmetic; 0 where the GPU workgroups run.
func (b *Backend) cpuLanes() uint32 {
	sg := b.caps.SubgroupSize
	need := uint32(vk.SubgroupBasic | vk.SubgroupArithmetic)
	if b.info.Type != vk.TypeCPU || forceGPUWorkgroups || !b.caps.SubgroupCompute || b.caps.SubgroupOps&need != need ||
		sg < 4 || sg > 128 || sg&(sg-1) != 0 || int(sg) > b.caps.MaxWorkGroupInvocations {
		return 0
	}
	return sg
}

// WindowMetric adds the prefill observation-window metric; see shaders/window_metric.comp.
func (b *Backend) WindowMetric(q engine.Buf, pool engine.KVPool, w engine.WindowSpec, qHeads, kvHeads int, scale float32) {
	b.windowMetric(q, pool, w, qHeads, kvHeads, scale, nil)
}

// windowAttn is the attention half of a fused window call (window_attention_lanes): its output, heads and
// rows, and the FC specialization constant (16-byte chunks per head row).
type windowAttn struct {
	out, heads       engine.Buf
	rows, metricRows int
	fc               uint32
}

// AttentionWindow implements engine.AttentionWindower: Attention, then WindowMetric. On a CPU device with
// the lane kernels, window_attention_lanes computes the window rows' attention output in its metric pass
// (whose second sweep has each query's exact probabilities), and Attention skips those rows: the metric
// pass costs about what it did, and the window rows' own attention is saved. The rows it takes are chosen on
// the device (kv_window.glsl), as the host cannot read the layout: a row that adds a decode metric or does
// not read its window's head cache stays Attention's. It runs the two ops unfused where it does not apply:
// GPUs, whose window rows are attention_tiled.comp's (a flash-style tile pass: the exact probabilities
// would need a second sweep over the context anyway, which is the window metric's own cost), and head rows
// of more than windowAttnMaxChunks 16-byte chunks (the output accumulators of a pass's 4 rows x 4 heads
// would not stay in the lanes' registers).
func (b *Backend) AttentionWindow(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, w engine.WindowSpec, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) {
	b.attentionWindow(out, q, pool, a, w, qHeads, kvHeads, scale, mode)
}

// windowAttnMaxChunks is the most 16-byte chunks (f32: 4 dims, f16: 8) of a head row the fused kernel
// accumulates per query (32 dims: stories260K's 8 and the small models' 32 and below).
const windowAttnMaxChunks = 8

// attentionWindow is AttentionWindow; it reports whether the fused kernel ran.
func (b *Backend) attentionWindow(out, q engine.Buf, pool engine.KVPool, a engine.AttnHeads, w engine.WindowSpec, qHeads, kvHeads int,
	scale float32, mode engine.MetricMode) bool {
	p, _ := pool.(*KVPool)
	fc := uint32(0)
	if p != nil && p.hd > 0 {
		ch, nv := 4, 1
		if p.typ == engine.KVF16 {
			ch, nv = 8, 2
		}
		if c := (p.hd + ch - 1) / ch; c*nv <= windowAttnMaxChunks {
			fc = uint32(c)
		}
	}
	if p == nil || fc == 0 || b.cpuLanes() == 0 || w.NSeqs <= 0 || a.Rows <= 0 || w.Tables != a.Tables || w.Pos != a.Pos ||
		kvHeads <= 0 || qHeads%kvHeads != 0 {
		b.Attention(out, q, pool, a, qHeads, kvHeads, scale, mode)
		b.WindowMetric(q, pool, w, qHeads, kvHeads, scale)
		return false
	}
	if !b.kvNeed("AttentionWindow", "Seqs", w.Seqs, int64(w.NSeqs)*int64(kvHeads)*16) {
		return false
	}
	b.attention(out, q, pool, a, qHeads, kvHeads, scale, mode, &w)
	mr := 0
	if mode != engine.MetricNone {
		mr = a.MetricRowCount()
	}
	b.windowMetric(q, pool, w, qHeads, kvHeads, scale, &windowAttn{out: out, heads: a.Heads, rows: a.Rows, metricRows: mr, fc: fc})
	return true
}

// windowMetric is WindowMetric; with fa, window_attention_lanes also writes the window rows' attention.
func (b *Backend) windowMetric(q engine.Buf, pool engine.KVPool, w engine.WindowSpec, qHeads, kvHeads int, scale float32, fa *windowAttn) {
	p := b.kvPool("WindowMetric", pool)
	if p == nil || w.NSeqs <= 0 {
		return
	}
	if kvHeads <= 0 || qHeads%kvHeads != 0 {
		b.Fail(fmt.Errorf("gpu: WindowMetric: %d query heads are not a multiple of %d KV heads", qHeads, kvHeads))
		return
	}
	if !b.kvNeed("WindowMetric", "Seqs", w.Seqs, int64(w.NSeqs)*int64(kvHeads)*16) ||
		!b.kvNeed("WindowMetric", "q", q, 0) || !b.kvNeed("WindowMetric", "Pos", w.Pos, 0) ||
		!b.kvNeed("WindowMetric", "Tables", w.Tables, 0) {
		return
	}
	// Window rows index q and Pos; rows past either are skipped by the shader.
	qRows := min(q.Size()/(int64(qHeads)*int64(p.hd)*4), w.Pos.Size()/4)
	if err := p.ensureScratch(max(qHeads/kvHeads, 2)); err != nil {
		b.Fail(fmt.Errorf("gpu: WindowMetric: %w", err))
		return
	}
	var kn *Kernel
	push := windowPush{kvPoolPush: p.poolPush(w.Tables.Size() / 4), QHeads: uint32(qHeads), KVHeads: uint32(kvHeads), Scale: scale,
		Squared: b32(w.Squared), Pool7: b32(w.Pool7), QRows: uint32(qRows), Buffer: int32(w.Buffer)}
	var bind [][]Range
	rp := uint32(min(qHeads/kvHeads, 4)) // the lane kernels' query heads per pass (MAX_R)
	switch sg := b.cpuLanes(); {
	case fa != nil: // attentionWindow checked cpuLanes
		kn = kvKernel[windowPush](b, "AttentionWindow", p.variant("window_attention_lanes"), p, 6, sg, fa.fc, rp)
		push.Rows, push.MetricRows, push.NWin = uint32(fa.rows), uint32(fa.metricRows), uint32(w.NSeqs)
		bind = append(p.poolBindings(), p.bufs(q, fa.out, w.Seqs, w.Tables, w.Pos, fa.heads)...)
	case sg > 0:
		kn = kvKernel[windowPush](b, "WindowMetric", p.variant("window_metric_lanes"), p, 5, sg, 1, rp)
	default:
		kn = kvKernel[windowPush](b, "WindowMetric", p.names.window, p, 5)
	}
	if kn == nil {
		return
	}
	grid := [3]uint32{uint32(kvHeads), uint32(w.NSeqs), 1}
	if fa == nil && b.cpuLanes() == 0 {
		if chunks := b.windowChunks(p, kvHeads*w.NSeqs, int(min(qRows, 1<<31-1)), qHeads/kvHeads); chunks > 1 {
			b.windowMetricSplit(p, q, w, grid, chunks, push)
			return
		}
	}
	if bind == nil {
		bind = append(p.poolBindings(), p.bufs(q, nil, w.Seqs, w.Tables, w.Pos)...)
	}
	b.Dispatch(kn, grid, PushBytes(&push), bind...)
}

// windowChunks is the parts per head of a GPU window metric over pairs (KV head, sequence) pairs and qRows
// rows of r query heads per KV head (see windowSplitMax); 1: window_metric.comp's one workgroup per pair.
func (b *Backend) windowChunks(p *KVPool, pairs, qRows, r int) int {
	n := windowChunks
	if n == 0 {
		if pairs >= p.FillGroups {
			return 1
		}
		n = min(windowSplitMax, (p.FillGroups+pairs-1)/max(pairs, 1))
	}
	perPart := int64(max(pairs, 1)) * int64(max(qRows, 1)) * int64(r) * 8
	return max(1, min(n, int(min(windowPartBytes, b.caps.MaxStorageBufferRange)/perPart)))
}

// windowMetricSplit records the split window metric: grid's (KV head, sequence) pairs times chunks parts,
// partial statistics (phase 1), probabilities into the scratch (2), pooling into the metric (3).
func (b *Backend) windowMetricSplit(p *KVPool, q engine.Buf, w engine.WindowSpec, grid [3]uint32, chunks int, push windowPush) {
	r := int64(push.QHeads / push.KVHeads)
	if err := p.ensure(&p.part, int64(grid[0])*int64(grid[1])*int64(push.QRows)*int64(chunks)*r*8); err != nil {
		b.Fail(fmt.Errorf("gpu: WindowMetric: partials: %w", err))
		return
	}
	push.Chunks, push.PartMin = uint32(chunks), uint32(max(p.WindowPartMin, 1))
	bind := append(p.poolBindings(), p.bufs(q, p.part, w.Seqs, w.Tables, w.Pos)...)
	grid[2] = uint32(chunks)
	for phase := uint32(1); phase <= 3; phase++ {
		kn := kvKernel[windowPush](b, "WindowMetric", p.variant("window_metric_split"), p, 5, phase)
		if kn == nil {
			return
		}
		b.Dispatch(kn, grid, PushBytes(&push), bind...)
	}
}

// CopyMoves copies K, V, metric and position of moves[i][0] into moves[i][1].
func (b *Backend) CopyMoves(pool engine.KVPool, moves engine.Buf, n int) {
	p := b.kvPool("CopyMoves", pool)
	if p == nil || n <= 0 {
		return
	}
	if !b.kvNeed("CopyMoves", "moves", moves, int64(n)*8) {
		return
	}
	kn := kvKernel[kvCountPush](b, "CopyMoves", p.names.copy, p, 1)
	if kn == nil {
		return
	}
	words := p.hd
	if p.typ == engine.KVF16 {
		words /= 2
	}
	bind := append(p.poolBindings(), p.bufs(moves)...)
	b.Dispatch(kn, groups2D(b, n*words, kvCopyWG), PushBytes(&kvCountPush{kvPoolPush: p.poolPush(0), N: uint32(n)}), bind...)
}

// ReadSlots gathers the metric and position of the listed blocks (and with vnorm their V row norms) on
// the device and reads them back.
func (b *Backend) ReadSlots(pool engine.KVPool, blocks []int32, metric []float32, pos []int32, vnorm []float32) error {
	p, ok := pool.(*KVPool)
	if !ok || p == nil || p.b != b || p.k == nil {
		return fmt.Errorf("gpu: ReadSlots: pool %T is not a live KV pool of this device", pool)
	}
	n := len(blocks) * p.bs
	if len(metric) < n || len(pos) < n {
		return fmt.Errorf("gpu: ReadSlots: %d blocks need %d metric and position entries, got %d and %d",
			len(blocks), n, len(metric), len(pos))
	}
	if vnorm != nil && len(vnorm) < n {
		return fmt.Errorf("gpu: ReadSlots: %d blocks need %d value norm entries, got %d", len(blocks), n, len(vnorm))
	}
	if len(blocks) == 0 {
		return nil
	}
	for _, blk := range blocks {
		if blk < 0 || int(blk) >= p.blocks {
			return fmt.Errorf("gpu: ReadSlots: block id %d outside the pool of %d blocks", blk, p.blocks)
		}
	}
	need := []struct {
		buf **Buffer
		n   int64
	}{{&p.rsBlocks, int64(len(blocks)) * 4}, {&p.rsMetric, int64(n) * 4}, {&p.rsPos, int64(n) * 4}}
	if vnorm != nil {
		need = append(need, need[1])
		need[3].buf = &p.rsNorm
	}
	for _, e := range need {
		if err := p.ensure(e.buf, e.n); err != nil {
			return fmt.Errorf("gpu: ReadSlots: %w", err)
		}
	}
	if err := b.Write(p.rsBlocks, 0, kvI32Bytes(blocks)); err != nil {
		return err
	}
	kn := kvKernel[readSlotsPush](b, "ReadSlots", p.variant("copy_moves_read_slots"), p, 4)
	if kn == nil {
		return b.Sync()
	}
	push := readSlotsPush{kvPoolPush: p.poolPush(0), N: uint32(len(blocks))}
	var norm engine.Buf // nil: the pool's dummy, never written
	reqs := []engine.ReadReq{{Src: p.rsMetric, Dst: kvF32Bytes(metric[:n])}, {Src: p.rsPos, Dst: kvI32Bytes(pos[:n])}}
	if vnorm != nil {
		push.Norms, norm = 1, p.rsNorm
		reqs = append(reqs, engine.ReadReq{Src: p.rsNorm, Dst: kvF32Bytes(vnorm[:n])})
	}
	bind := append(p.poolBindings(), p.bufs(p.rsBlocks, p.rsMetric, p.rsPos, norm)...)
	b.Dispatch(kn, groups2D(b, n, kvCopyWG), PushBytes(&push), bind...)
	// All come back in the submission that gathers them (several Reads would be several on unmapped memory).
	return b.ReadAll(reqs)
}

func kvI32Bytes(x []int32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

func kvF32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}
