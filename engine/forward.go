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
	// MetricAvg ranks KVs by their metric divided by the number of queries that added to it.
	MetricAvg bool
	// MetricBuffer v: queries closer than v positions after a KV add nothing to its metric (see
	// kvpages.MetricSource.Buffer); with MetricAvg the mean divides by the queries that did add.
	MetricBuffer int
	// MetricValueNorm ranks KVs by their metric times the L1 norm of their V row (kvpages.MetricSource.ValueNorm).
	MetricValueNorm bool
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
	tables                  *blockTables
	moves                   Buf // compaction move list
	pickIDs, pickVals       Buf // candidates picked on the device (Item.Pick)
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
	e := &Engine{B: b, Cfg: cfg, W: w, Opt: opt, scale: AttnScale(cfg), tables: newBlockTables(b),
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
	for _, b := range []Buf{e.moves, e.pickIDs, e.pickVals} {
		if b != nil {
			e.B.Free(b)
		}
	}
	e.tables.close()
}

// Item is one sequence's part of a forward pass: new tokens appended to its cache.
type Item struct {
	Seq        *kvpages.Seq
	Tokens     []int
	Logits     bool // return the logits of the last token
	AllLogits  bool // return the logits of every token (teacher-forced scoring); implies Logits
	WindowRows int  // prefill observation-window rows at the end of Tokens (0: none)
	// Pick > 0 (with Logits, without AllLogits): Pass returns the last token's Pick best candidates instead
	// of its logits (Sampler.DevicePick); 1 is the argmax. Chosen on the device, only they come back.
	Pick int
}

// Output is what a pass returns for one logits row: the logits, or (Item.Pick) the best candidates.
type Output struct {
	Logits []float32 // [vocab]; nil when the candidates were picked on the device
	IDs    []int32   // Pick best token ids, descending logit, lower id first on ties
	Vals   []float32 // their logits (nil for Pick 1)
}

// Forward appends each item's tokens to its cache and runs all of them through the model in one pass;
// it returns the logits the items asked for, in item order ([vocab] each): the last token's, or every
// token's with AllLogits. On kvpages.ErrNoBlocks nothing was appended. Items must not set Pick (see Pass).
func (e *Engine) Forward(items []Item) ([][]float32, error) {
	outs, err := e.Pass(items)
	if err != nil {
		return nil, err
	}
	logits := make([][]float32, len(outs))
	for i, o := range outs {
		if o.Logits == nil {
			return nil, fmt.Errorf("engine: Forward of an item with Pick %d: use Pass", len(o.IDs))
		}
		logits[i] = o.Logits
	}
	return logits, nil
}

// Pass is Forward returning, for items with Pick, only their best candidates. A pass where some row needs
// its logits returns logits for every row (one read-back either way).
//
// A pass is pack (host: the rows' ids, positions, cache slots and table offsets), upload (one Write per
// index buffer, the block-table deltas), run (the layers, recorded into the step's command buffer) and
// read (the one submission, and the logits or candidates back).
func (e *Engine) Pass(items []Item) ([]Output, error) {
	if err := e.check(items); err != nil {
		return nil, err
	}
	order := decodeFirst(items)
	appended := make([][]int32, len(items))
	for _, i := range order {
		s, err := items[i].Seq.Append(e.Pool, len(items[i].Tokens))
		if err != nil {
			return nil, err // cannot happen: counted in check
		}
		appended[i] = s
	}
	p := pack(items, order, appended, e.tables.sync(items), e.Cfg.Layers, e.Cfg.KVHeads)
	if err := e.upload(p); err != nil {
		return nil, err
	}
	if err := e.run(p); err != nil {
		return nil, err
	}
	return e.read(p)
}

// check validates a pass before anything is appended.
func (e *Engine) check(items []Item) error {
	cfg := e.Cfg
	rows, need := 0, 0
	for _, it := range items {
		if len(it.Tokens) == 0 {
			return fmt.Errorf("engine: forward item with no tokens")
		}
		rows += len(it.Tokens)
		need += it.Seq.BlocksNeeded(e.Pool, len(it.Tokens))
		if it.Seq.NextPos+len(it.Tokens) > cfg.Context {
			return fmt.Errorf("engine: sequence would reach %d tokens, past the model's context of %d", it.Seq.NextPos+len(it.Tokens), cfg.Context)
		}
		for _, t := range it.Tokens {
			if t < 0 || t >= cfg.Vocab {
				return fmt.Errorf("engine: token id %d outside the vocabulary of %d", t, cfg.Vocab)
			}
		}
	}
	if rows > e.Opt.MaxRows {
		return fmt.Errorf("engine: %d rows in one pass, more than the %d the engine was sized for", rows, e.Opt.MaxRows)
	}
	if need > e.Pool.Free() {
		return fmt.Errorf("%w: this pass needs %d new blocks, %d free", kvpages.ErrNoBlocks, need, e.Pool.Free())
	}
	return nil
}

// decodeFirst orders the items decode rows (one token, no window) first, so that the attention metric
// can be limited to the leading rows.
func decodeFirst(items []Item) []int {
	order := make([]int, 0, len(items))
	for i, it := range items {
		if len(it.Tokens) == 1 && it.WindowRows == 0 {
			order = append(order, i)
		}
	}
	for i, it := range items {
		if len(it.Tokens) != 1 || it.WindowRows != 0 {
			order = append(order, i)
		}
	}
	return order
}

// pass is what one forward pass gives the device, packed on the host.
type pass struct {
	rows       int
	decodeRows int       // leading single-token rows: the only ones that add to the decode metric
	ids, pos   []int32   // [row]
	slots      [][]int32 // [layer][row][kvHead]: global slot each row's K/V goes to
	heads      [][]int32 // [layer][row][kvHead][2]: {block-table offset, context length}
	win        [][]int32 // [layer][window seq][kvHead][4]: {table offset, context, first row, rows}
	nWin       int       // sequences with an observation window
	outRows    []int32   // rows whose logits come back, in item order
	outPick    []int     // per output row: candidates to pick on the device (0: the logits)
}

// pack lays out a pass: items in the given row order, appended[i] the slots Seq.Append gave item i
// ([layer][token][kvHead]), tableOff[i][hd] where item i's head hd starts in the block-table buffer. The
// items' sequences must already hold the appended tokens (Ctx counts them).
func pack(items []Item, order []int, appended, tableOff [][]int32, layers, kvHeads int) pass {
	L, H := layers, kvHeads
	rows := 0
	for _, it := range items {
		rows += len(it.Tokens)
	}
	p := pass{rows: rows, ids: make([]int32, rows), pos: make([]int32, rows),
		slots: make([][]int32, L), heads: make([][]int32, L), win: make([][]int32, L)}
	for l := 0; l < L; l++ {
		p.slots[l] = make([]int32, rows*H)
		p.heads[l] = make([]int32, rows*H*2)
	}
	first := make([]int, len(items))
	r := 0
	for _, i := range order {
		it := items[i]
		n := len(it.Tokens)
		if n == 1 && it.WindowRows == 0 {
			p.decodeRows++
		}
		first[i] = r
		p0 := it.Seq.NextPos - n
		for j, t := range it.Tokens {
			p.ids[r+j] = int32(t)
			p.pos[r+j] = int32(p0 + j)
		}
		for l := 0; l < L; l++ {
			copy(p.slots[l][r*H:(r+n)*H], appended[i][l*n*H:(l+1)*n*H])
		}
		r += n
	}
	for i, it := range items {
		for l := 0; l < L; l++ {
			for h := 0; h < H; h++ {
				hd := l*H + h
				off, ctx := tableOff[i][hd], int32(it.Seq.Ctx[hd])
				for j := range it.Tokens {
					row := first[i] + j
					p.heads[l][(row*H+h)*2] = off
					p.heads[l][(row*H+h)*2+1] = ctx
				}
				if it.WindowRows > 0 {
					w := min(it.WindowRows, len(it.Tokens))
					p.win[l] = append(p.win[l], off, ctx, int32(first[i]+len(it.Tokens)-w), int32(w))
				}
			}
		}
		if it.WindowRows > 0 {
			p.nWin++
		}
		if it.AllLogits {
			for j := range it.Tokens {
				p.outRows = append(p.outRows, int32(first[i]+j))
				p.outPick = append(p.outPick, 0)
			}
		} else if it.Logits {
			p.outRows = append(p.outRows, int32(first[i]+len(it.Tokens)-1))
			p.outPick = append(p.outPick, it.Pick)
		}
	}
	return p
}

// upload writes the pass's index buffers and the block-table deltas (recorded, not submitted).
func (e *Engine) upload(p pass) error {
	if err := e.tables.flush(); err != nil {
		return err
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
	}{{e.ids, p.ids}, {e.pos, p.pos}, {e.rowsIdx, p.outRows}} {
		if err := w(x.b, x.v); err != nil {
			return err
		}
	}
	for l := range p.slots {
		if err := w(e.slots[l], p.slots[l]); err != nil {
			return err
		}
		if err := w(e.heads[l], p.heads[l]); err != nil {
			return err
		}
		if err := w(e.win[l], p.win[l]); err != nil {
			return err
		}
	}
	if e.W.HostEmb != nil {
		return e.embedOnHost(p.ids)
	}
	return nil
}

// boundKV tells a device pool that can use it which blocks the next ops may touch (see KVBounder).
func (e *Engine) boundKV() {
	if kb, ok := e.KV.(KVBounder); ok {
		kb.SetBound(e.Pool.Bound())
	}
}

// run records the model over the pass's rows: embedding, then per layer attention and feed-forward, each
// adding into the residual stream x (as llama2.c's forward does, one row per token).
func (e *Engine) run(p pass) error {
	cfg, b := e.Cfg, e.B
	eps := float32(cfg.NormEps)
	rows := p.rows
	// Decode rows add to the metric (one row per sequence, so the adds are race-free); prefill rows do not.
	mode := MetricNone
	if p.decodeRows > 0 {
		mode = e.Opt.Metric
	}
	e.boundKV()
	if e.W.HostEmb == nil {
		b.Embed(e.x, e.W.TokEmb, e.ids, rows)
	}
	tables := e.tables.buf
	for l := 0; l < cfg.Layers; l++ {
		ly := &e.W.Layers[l]
		// attention: x += Wo attention(rope(Wq xn), rope(Wk xn) -> cache, Wv xn -> cache)
		b.RMSNorm(e.xb, e.x, ly.AttnNorm, rows, eps)
		b.MatMulQKV(e.q, e.k, e.v, e.xb, ly.Q, ly.K, ly.V, rows)
		b.RopeKVWrite(e.KV, e.q, e.k, e.v, e.slots[l], e.pos, rows, cfg.Heads, cfg.KVHeads, e.rope)
		ah := AttnHeads{Heads: e.heads[l], Tables: tables, Pos: e.pos, Rows: rows, MetricRows: p.decodeRows,
			MetricBuffer: e.Opt.MetricBuffer}
		ws := WindowSpec{Seqs: e.win[l], Tables: tables, Pos: e.pos, NSeqs: p.nWin,
			Squared: e.Opt.SquaredWindow, Pool7: e.Opt.Pool7, Buffer: e.Opt.MetricBuffer}
		if aw, ok := b.(AttentionWindower); ok && p.nWin > 0 {
			aw.AttentionWindow(e.att, e.q, e.KV, ah, ws, cfg.Heads, cfg.KVHeads, e.scale, mode)
		} else {
			b.Attention(e.att, e.q, e.KV, ah, cfg.Heads, cfg.KVHeads, e.scale, mode)
			if p.nWin > 0 {
				b.WindowMetric(e.q, e.KV, ws, cfg.Heads, cfg.KVHeads, e.scale)
			}
		}
		b.MatMulAdd(e.x, e.att, ly.O, rows)
		// feed-forward: x += Wdown (silu(Wgate xn) * Wup xn)
		b.RMSNorm(e.xb, e.x, ly.FFNNorm, rows, eps)
		b.MatMulSwiGLU(e.hb, e.xb, ly.Gate, ly.Up, rows)
		b.MatMulAdd(e.x, e.hb, ly.Down, rows)
	}
	nOut := len(p.outRows)
	if nOut > 0 {
		b.CopyRows(e.outRows, e.x, e.rowsIdx, nOut, cfg.Dim)
		b.RMSNorm(e.outRows, e.outRows, e.W.OutNorm, nOut, eps)
		b.MatMul(e.logits, e.outRows, e.W.Output, nOut)
	}
	return nil
}

// read submits the pass and returns its output rows: the candidates each picked when every row picks
// (at most MaxTopK and fewer than the vocabulary), else every row's logits.
func (e *Engine) read(p pass) ([]Output, error) {
	nOut, vocab := len(p.outRows), e.Cfg.Vocab
	if nOut == 0 {
		return nil, e.B.Sync()
	}
	k := 0
	for _, pk := range p.outPick {
		if pk <= 0 || pk > MaxTopK || pk >= vocab {
			k = 0
			break
		}
		k = max(k, pk)
	}
	if k > 0 {
		return e.readPicks(p, k)
	}
	raw := make([]byte, nOut*vocab*4)
	if err := e.B.Read(e.logits, 0, raw); err != nil {
		return nil, err
	}
	out := make([]Output, nOut)
	for i := range out {
		out[i].Logits = f32s(raw[i*vocab*4 : (i+1)*vocab*4])
	}
	return out, nil
}

// readPicks records the argmax (k 1) or the top k of every output row and reads back only those.
func (e *Engine) readPicks(p pass, k int) ([]Output, error) {
	nOut, vocab := len(p.outRows), e.Cfg.Vocab
	if err := e.ensurePicks(nOut * k); err != nil {
		return nil, err
	}
	ids := make([]byte, nOut*k*4)
	var vals []byte
	if k == 1 {
		e.B.Argmax(e.pickIDs, e.logits, nOut, vocab)
		if err := e.B.Read(e.pickIDs, 0, ids); err != nil {
			return nil, err
		}
	} else {
		e.B.TopK(e.pickIDs, e.pickVals, e.logits, nOut, vocab, k)
		vals = make([]byte, nOut*k*4)
		if err := readAll(e.B, []ReadReq{{Src: e.pickIDs, Dst: ids}, {Src: e.pickVals, Dst: vals}}); err != nil {
			return nil, err
		}
	}
	out := make([]Output, nOut)
	for i := range out {
		n := p.outPick[i]
		out[i].IDs = make([]int32, n)
		for j := range out[i].IDs {
			out[i].IDs[j] = int32(binary.LittleEndian.Uint32(ids[(i*k+j)*4:]))
		}
		if vals != nil {
			out[i].Vals = f32s(vals[i*k*4 : (i*k+n)*4])
		}
	}
	return out, nil
}

// ensurePicks sizes the candidate buffers for n (row, candidate) pairs.
func (e *Engine) ensurePicks(n int) error {
	if e.pickIDs != nil && e.pickIDs.Size() >= int64(n)*4 {
		return nil
	}
	for _, b := range []Buf{e.pickIDs, e.pickVals} {
		if b != nil {
			e.B.Free(b)
		}
	}
	var err error
	if e.pickIDs, err = e.B.Alloc(int64(n) * 4); err == nil {
		e.pickVals, err = e.B.Alloc(int64(n) * 4)
	}
	if err != nil {
		if e.pickIDs != nil {
			e.B.Free(e.pickIDs)
		}
		e.pickIDs, e.pickVals = nil, nil
		return fmt.Errorf("engine: sampling candidates buffer of %d entries: %w", n, err)
	}
	return nil
}

func f32s(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i*4:]))
	}
	return out
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
