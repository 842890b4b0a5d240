package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"kvc/kvpages"
	"kvc/model"
)

// Options configure an Engine.
type Options struct {
	BlockSize int    // slots per KV block (default 16)
	KVBlocks  int    // physical blocks in the pool
	KVType    KVType // how K and V are stored
	MaxRows   int    // most tokens one forward pass processes (prefill chunk + decode rows); default 256
	Metric    MetricMode
	Window    int  // prefill observation window w (0: no window metric)
	Pool7     bool // max-pool the window metric
	// PromptMetric: every prompt query adds its attention into the metric (H2O), instead of a window.
	PromptMetric bool
	// SquaredWindow: the prefill metric adds p^2 (L2) rather than p (L1).
	SquaredWindow bool
	// MetricAvg ranks KVs by their metric divided by the number of queries that have seen them.
	MetricAvg bool
	// MinKVBlocks and MinRows, when set, let NewEngine fall back when the device is out of memory: the KV
	// pool is halved down to MinKVBlocks, then the rows per pass down to MinRows (see Engine.Notes).
	MinKVBlocks, MinRows int
}

// Engine runs forward passes of one model over a paged KV cache on one backend.
type Engine struct {
	B     Backend
	Cfg   model.Config
	W     *Weights
	Opt   Options
	KV    KVPool
	Pool  *kvpages.Pool
	scale float32
	rope  RopeParams

	// device scratch, sized for MaxRows rows
	x, xb, q, k, v, att, hb Buf
	logits, outRows         Buf
	ids, pos, rowsIdx       Buf
	slots, heads, win       []Buf // per layer
	tables                  Buf
	tableCap                int // int32 entries tables can hold
	moves                   Buf // compaction move list
	moveCap                 int
	maxOut                  int // logit rows
	// Notes says what NewEngine gave up to fit the device (a smaller pool or fewer rows per pass).
	Notes []string
}

// KVBlockBytes is the device bytes of one block: K and V of BlockSize slots, a metric and a position each.
func KVBlockBytes(headDim, blockSize int, t KVType) int64 {
	el := int64(4)
	if t == KVF16 {
		el = 2
	}
	return int64(blockSize) * (2*int64(headDim)*el + 8)
}

// ScratchBytes is the device memory NewEngine allocates beside the KV pool (activations for MaxRows rows,
// logits, indices, per-layer tables), not counting the block-table buffer that grows with the cache.
func ScratchBytes(cfg model.Config, maxRows int) int64 {
	n := int64(maxRows)
	qd, kvd := int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim)
	dim, ffn := int64(cfg.Dim), int64(cfg.FFN)
	act := n * 4 * (dim + max(dim, qd) + qd + 2*kvd + qd + ffn)
	out := n * 4 * (int64(cfg.Vocab) + dim + 1)
	idx := n*4*2 + int64(cfg.Layers)*n*int64(cfg.KVHeads)*4*(1+2+4)
	return act + out + idx
}

// NewEngine allocates the KV pool and scratch buffers for a loaded model.
func NewEngine(b Backend, cfg model.Config, w *Weights, opt Options) (*Engine, error) {
	if opt.BlockSize <= 0 {
		opt.BlockSize = 16
	}
	if opt.MaxRows <= 0 {
		opt.MaxRows = 256
	}
	if opt.KVBlocks <= 0 {
		return nil, fmt.Errorf("engine: the KV pool needs at least one block")
	}
	e := &Engine{B: b, Cfg: cfg, W: w, Opt: opt, scale: AttnScale(cfg),
		rope: RopeParams{Layout: cfg.RopeLayout, Theta: cfg.RopeTheta, Scaling: cfg.RopeScaling}}
	var err error
	for {
		if e.KV, err = b.NewKVPool(e.Opt.KVBlocks, opt.BlockSize, cfg.HeadDim, opt.KVType); err == nil {
			break
		}
		if !errors.Is(err, ErrOutOfMemory) || opt.MinKVBlocks <= 0 || e.Opt.KVBlocks <= opt.MinKVBlocks {
			return nil, fmt.Errorf("engine: KV pool of %d blocks: %w", e.Opt.KVBlocks, err)
		}
		if err := b.Sync(); err != nil { // release the failed attempt's buffers
			return nil, fmt.Errorf("engine: KV pool of %d blocks: %w", e.Opt.KVBlocks, err)
		}
		e.Opt.KVBlocks = max(e.Opt.KVBlocks/2, opt.MinKVBlocks)
		e.Notes = append(e.Notes, fmt.Sprintf("out of device memory for the KV pool: using %d blocks", e.Opt.KVBlocks))
	}
	if e.Pool, err = kvpages.NewPool(e.Opt.KVBlocks, opt.BlockSize); err != nil {
		return nil, err
	}
	for {
		if err = e.allocScratch(); err == nil {
			break
		}
		e.freeScratch()
		if !errors.Is(err, ErrOutOfMemory) || opt.MinRows <= 0 || e.Opt.MaxRows <= opt.MinRows {
			e.Close()
			return nil, fmt.Errorf("engine: scratch buffers for %d rows: %w", e.Opt.MaxRows, err)
		}
		if err := b.Sync(); err != nil {
			e.Close()
			return nil, fmt.Errorf("engine: scratch buffers for %d rows: %w", e.Opt.MaxRows, err)
		}
		e.Opt.MaxRows = max(e.Opt.MaxRows/2, opt.MinRows)
		e.Notes = append(e.Notes, fmt.Sprintf("out of device memory for the scratch buffers: %d rows per pass", e.Opt.MaxRows))
	}
	// Run the pool's initialisation now, so that it counts as loading rather than as the first prompt.
	if err := b.Sync(); err != nil {
		return nil, fmt.Errorf("engine: initialising the KV pool: %w", err)
	}
	return e, nil
}

// allocScratch allocates the activation buffers for e.Opt.MaxRows rows.
func (e *Engine) allocScratch() error {
	b, cfg, n := e.B, e.Cfg, e.Opt.MaxRows
	e.maxOut = n
	qd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	var err error
	alloc := func(dst *Buf, bytes int) {
		if err == nil {
			*dst, err = b.Alloc(int64(bytes))
		}
	}
	alloc(&e.x, n*cfg.Dim*4)
	alloc(&e.xb, n*max(cfg.Dim, qd)*4)
	alloc(&e.q, n*qd*4)
	alloc(&e.k, n*kvd*4)
	alloc(&e.v, n*kvd*4)
	alloc(&e.att, n*qd*4)
	alloc(&e.hb, n*cfg.FFN*4)
	alloc(&e.logits, e.maxOut*cfg.Vocab*4)
	alloc(&e.outRows, e.maxOut*cfg.Dim*4)
	alloc(&e.ids, n*4)
	alloc(&e.pos, n*4)
	alloc(&e.rowsIdx, e.maxOut*4)
	e.slots = make([]Buf, cfg.Layers)
	e.heads = make([]Buf, cfg.Layers)
	e.win = make([]Buf, cfg.Layers)
	for l := 0; l < cfg.Layers; l++ {
		alloc(&e.slots[l], n*cfg.KVHeads*4)
		alloc(&e.heads[l], n*cfg.KVHeads*2*4)
		alloc(&e.win[l], n*cfg.KVHeads*4*4)
	}
	return err
}

// freeScratch frees the activation buffers (after a failed allocScratch).
func (e *Engine) freeScratch() {
	for _, p := range []*Buf{&e.x, &e.xb, &e.q, &e.k, &e.v, &e.att, &e.hb, &e.logits, &e.outRows, &e.ids, &e.pos, &e.rowsIdx} {
		if *p != nil {
			e.B.Free(*p)
			*p = nil
		}
	}
	for _, l := range [][]Buf{e.slots, e.heads, e.win} {
		for i, b := range l {
			if b != nil {
				e.B.Free(b)
				l[i] = nil
			}
		}
	}
}

// Close frees the engine's device memory (weights stay with the backend).
func (e *Engine) Close() {
	e.freeScratch()
	for _, b := range []Buf{e.tables, e.moves} {
		if b != nil {
			e.B.Free(b)
		}
	}
}

// Item is one sequence's part of a forward pass: new tokens appended to its cache.
type Item struct {
	Seq        *kvpages.Seq
	Tokens     []int
	Logits     bool // return the logits of the last token
	AllLogits  bool // return the logits of every token (teacher-forced scoring); implies Logits
	WindowRows int  // prefill observation-window rows at the end of Tokens (0: none)
}

// Forward appends each item's tokens to its cache and runs all of them through the model in one pass;
// it returns the logits the items asked for, in item order ([vocab] each): the last token's, or every
// token's with AllLogits. On
// kvpages.ErrNoBlocks nothing was appended.
func (e *Engine) Forward(items []Item) ([][]float32, error) {
	cfg := e.Cfg
	rows := 0
	need := 0
	nOut := 0
	for _, it := range items {
		if len(it.Tokens) == 0 {
			return nil, fmt.Errorf("engine: forward item with no tokens")
		}
		rows += len(it.Tokens)
		need += it.Seq.BlocksNeeded(e.Pool, len(it.Tokens))
		if it.AllLogits {
			nOut += len(it.Tokens)
		} else if it.Logits {
			nOut++
		}
		if it.Seq.NextPos+len(it.Tokens) > cfg.Context {
			return nil, fmt.Errorf("engine: sequence would reach %d tokens, past the model's context of %d", it.Seq.NextPos+len(it.Tokens), cfg.Context)
		}
		for _, t := range it.Tokens {
			if t < 0 || t >= cfg.Vocab {
				return nil, fmt.Errorf("engine: token id %d outside the vocabulary of %d", t, cfg.Vocab)
			}
		}
	}
	if rows > e.Opt.MaxRows {
		return nil, fmt.Errorf("engine: %d rows in one pass, more than the %d the engine was sized for", rows, e.Opt.MaxRows)
	}
	if need > e.Pool.Free() {
		return nil, fmt.Errorf("%w: this pass needs %d new blocks, %d free", kvpages.ErrNoBlocks, need, e.Pool.Free())
	}

	L, H := cfg.Layers, cfg.KVHeads
	ids := make([]int32, rows)
	pos := make([]int32, rows)
	slots := make([][]int32, L) // [l][row][h]
	for l := range slots {
		slots[l] = make([]int32, rows*H)
	}
	// Decode rows (one token, no window) come first, so the attention metric can be limited to them.
	order := make([]int, 0, len(items))
	for i, it := range items {
		if len(it.Tokens) == 1 && it.WindowRows == 0 {
			order = append(order, i)
		}
	}
	decodeRows := len(order)
	for i, it := range items {
		if len(it.Tokens) != 1 || it.WindowRows != 0 {
			order = append(order, i)
		}
	}
	r := 0
	firstRow := make([]int, len(items))
	for _, i := range order {
		it := items[i]
		firstRow[i] = r
		p0 := it.Seq.NextPos
		s, err := it.Seq.Append(e.Pool, len(it.Tokens))
		if err != nil {
			return nil, err // cannot happen: counted above
		}
		n := len(it.Tokens)
		for j, t := range it.Tokens {
			ids[r+j] = int32(t)
			pos[r+j] = int32(p0 + j)
		}
		for l := 0; l < L; l++ {
			copy(slots[l][r*H:(r+n)*H], s[l*n*H:(l+1)*n*H])
		}
		r += n
	}
	outRows := make([]int32, 0, nOut)
	for i, it := range items {
		if it.AllLogits {
			for j := range it.Tokens {
				outRows = append(outRows, int32(firstRow[i]+j))
			}
		} else if it.Logits {
			outRows = append(outRows, int32(firstRow[i]+len(it.Tokens)-1))
		}
	}

	// Block tables of every item, all layers, concatenated; per (layer, row, head): {offset, ctx}.
	var tables []int32
	heads := make([][]int32, L)
	for l := range heads {
		heads[l] = make([]int32, rows*H*2)
	}
	win := make([][]int32, L)
	nWin := 0
	for i, it := range items {
		for l := 0; l < L; l++ {
			for h := 0; h < H; h++ {
				hd := l*H + h
				off := int32(len(tables))
				tables = append(tables, it.Seq.Tables[hd]...)
				for j := range it.Tokens {
					row := firstRow[i] + j
					heads[l][(row*H+h)*2] = off
					heads[l][(row*H+h)*2+1] = int32(it.Seq.Ctx[hd])
				}
				if it.WindowRows > 0 {
					w := min(it.WindowRows, len(it.Tokens))
					win[l] = append(win[l], off, int32(it.Seq.Ctx[hd]), int32(firstRow[i]+len(it.Tokens)-w), int32(w))
				}
			}
		}
		if it.WindowRows > 0 {
			nWin++
		}
	}

	if err := e.upload(ids, pos, slots, heads, win, tables, outRows); err != nil {
		return nil, err
	}

	// Decode rows add to the metric (one row per sequence, so the adds are race-free); prefill rows do not.
	mode := MetricNone
	if decodeRows > 0 {
		mode = e.Opt.Metric
	}
	b := e.B
	eps := float32(cfg.NormEps)
	if e.W.HostEmb != nil {
		if err := e.embedOnHost(ids); err != nil {
			return nil, err
		}
	} else {
		b.Embed(e.x, e.W.TokEmb, e.ids, rows)
	}
	for l := 0; l < L; l++ {
		ly := &e.W.Layers[l]
		b.RMSNorm(e.xb, e.x, ly.AttnNorm, rows, eps)
		b.MatMulQKV(e.q, e.k, e.v, e.xb, ly.Q, ly.K, ly.V, rows)
		b.RopeKVWrite(e.KV, e.q, e.k, e.v, e.slots[l], e.pos, rows, cfg.Heads, cfg.KVHeads, e.rope)
		b.Attention(e.att, e.q, e.KV, AttnHeads{Heads: e.heads[l], Tables: e.tables, Pos: e.pos, Rows: rows, MetricRows: decodeRows},
			cfg.Heads, cfg.KVHeads, e.scale, mode)
		if nWin > 0 {
			b.WindowMetric(e.q, e.KV, WindowSpec{Seqs: e.win[l], Tables: e.tables, Pos: e.pos, NSeqs: nWin,
				Squared: e.Opt.SquaredWindow, Pool7: e.Opt.Pool7}, cfg.Heads, cfg.KVHeads, e.scale)
		}
		b.MatMulAdd(e.x, e.att, ly.O, rows)
		b.RMSNorm(e.xb, e.x, ly.FFNNorm, rows, eps)
		b.MatMulSwiGLU(e.hb, e.xb, ly.Gate, ly.Up, rows)
		b.MatMulAdd(e.x, e.hb, ly.Down, rows)
	}
	if nOut == 0 {
		return nil, b.Sync()
	}
	b.CopyRows(e.outRows, e.x, e.rowsIdx, nOut, cfg.Dim)
	b.RMSNorm(e.outRows, e.outRows, e.W.OutNorm, nOut, eps)
	b.MatMul(e.logits, e.outRows, e.W.Output, nOut)
	raw := make([]byte, nOut*cfg.Vocab*4)
	if err := b.Read(e.logits, 0, raw); err != nil {
		return nil, err
	}
	out := make([][]float32, nOut)
	for i := range out {
		out[i] = make([]float32, cfg.Vocab)
		for j := range out[i] {
			out[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[(i*cfg.Vocab+j)*4:]))
		}
	}
	return out, nil
}

func (e *Engine) upload(ids, pos []int32, slots, heads, win [][]int32, tables, outRows []int32) error {
	if len(tables) > e.tableCap {
		if e.tables != nil {
			e.B.Free(e.tables)
		}
		c := max(len(tables)*2, 1024)
		t, err := e.B.Alloc(int64(c) * 4)
		if err != nil {
			return fmt.Errorf("engine: block table buffer of %d entries: %w", c, err)
		}
		e.tables, e.tableCap = t, c
	}
	w := func(dst Buf, v []int32) error {
		if len(v) == 0 {
			return nil
		}
		return e.B.Write(dst, 0, i32bytes(v))
	}
	for _, x := range []struct {
		b Buf
		v []int32
	}{{e.ids, ids}, {e.pos, pos}, {e.tables, tables}, {e.rowsIdx, outRows}} {
		if err := w(x.b, x.v); err != nil {
			return err
		}
	}
	for l := range slots {
		if err := w(e.slots[l], slots[l]); err != nil {
			return err
		}
		if err := w(e.heads[l], heads[l]); err != nil {
			return err
		}
		if err := w(e.win[l], win[l]); err != nil {
			return err
		}
	}
	return nil
}

// embedOnHost decodes the embedding rows of ids from host memory and writes them into x.
func (e *Engine) embedOnHost(ids []int32) error {
	dim := e.Cfg.Dim
	row := make([]float32, dim)
	buf := make([]byte, len(ids)*dim*4)
	for i, id := range ids {
		e.W.HostEmb.DecodeRow(int(id), row)
		for j, v := range row {
			binary.LittleEndian.PutUint32(buf[(i*dim+j)*4:], math.Float32bits(v))
		}
	}
	return e.B.Write(e.x, 0, buf)
}

func i32bytes(v []int32) []byte {
	out := make([]byte, len(v)*4)
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[i*4:], uint32(x))
	}
	return out
}
