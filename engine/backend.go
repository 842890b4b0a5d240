// Package engine runs llama-family models on a Backend: the Vulkan device (engine/gpu) or the plain-Go CPU
// reference (engine/cpu). Every op below has exactly one meaning, shared by both backends; the CPU backend is
// the oracle the shaders are tested against.
package engine

import (
	"errors"

	"kvc/model"
)

// Buf is backend memory. Activations are f32, indices int32, little-endian, row-major.
type Buf interface {
	Size() int64 // bytes
}

// Weight is a weight matrix (or vector: Rows == 1) uploaded in its stored dtype with its scales.
// Backends may split it internally (e.g. by rows, to respect binding-range limits).
type Weight interface {
	Info() WeightInfo
}

// WeightInfo describes a Weight: out = Rows, in = Cols.
type WeightInfo struct {
	Name      string
	DType     model.DType
	Rows      int
	Cols      int
	ScaleKind model.ScaleKind // F8E4M3
	Group     int             // Q8_0
}

// KVType is how the paged cache stores K and V.
type KVType int

const (
	KVF32 KVType = iota
	KVF16
)

// KVPool is the physical block pool of the paged KV cache on a backend: Blocks blocks of BlockSize slots,
// each slot holding K[HeadDim], V[HeadDim], a float32 metric and an int32 token position. A global slot id
// is block*BlockSize + offset. Backends may split it into several buffers.
type KVPool interface {
	Blocks() int
	BlockSize() int
	HeadDim() int
	Type() KVType
	BlockBytes() int64 // K + V + metric + position of one block
}

// KVBounder is implemented by pools whose kernels can be specialized to the blocks in use. SetBound(n)
// promises that the ops recorded after it refer only to blocks below n (until the next SetBound); blocks
// at or above n may then be treated as outside the pool. The engine passes kvpages.Pool.Bound, which
// lowest-first allocation keeps at the blocks held rather than the pool's size, so that the per-step cost
// does not grow with --kv-mem.
type KVBounder interface{ SetBound(blocks int) }

// RopeParams selects the rotation. Llama-3.1 scaling applies when Scaling != nil.
type RopeParams struct {
	Layout  model.RopeLayout
	Theta   float64
	Scaling *model.RopeScaling
}

// AttnHeads describes, for a set of query rows, where each (query row, KV head) finds its cache.
// Heads is int32 [nRows][kvHeads][2] = {offset into Tables, context length}; Tables holds block ids.
// Pos is int32 [nRows]: each query's token position. A query sees the slots of its head whose stored
// position is <= its own (so a prefill chunk is causal while all its K/V are already written).
// With a metric mode, only rows [0, MetricRows) add to the metric (the decode rows of a pass that also
// holds prefill chunks); MetricRows 0 means every row.
type AttnHeads struct {
	Heads      Buf
	Tables     Buf
	Pos        Buf
	Rows       int
	MetricRows int
	// MetricBuffer v: a query adds to the metric of a slot only when the slot's position is at least v
	// below its own (KV-Compress's metric-collection buffer); 0: every visible slot.
	MetricBuffer int
}

// MetricRowCount is how many leading rows add to the metric.
func (a AttnHeads) MetricRowCount() int {
	if a.MetricRows <= 0 || a.MetricRows > a.Rows {
		return a.Rows
	}
	return a.MetricRows
}

// MetricMode says what an attention call adds to the pool's per-slot metric.
type MetricMode int

const (
	MetricNone MetricMode = iota
	// MetricSquared adds, for each query row, sum over the r query heads of its KV group of p^2 into each
	// slot it attended (decode-time accumulation, kv-compress.md §1.1 eq. 20).
	MetricSquared
	// MetricPlain adds sum over the group of p (L1 variant).
	MetricPlain
)

// WindowSpec asks for the prefill observation-window metric of one or more sequences: for each sequence
// and KV head, each query head h of the group gets s_h[j] = sum over the sequence's window query rows of
// f(p[h, j]) (f = square, or identity for L1); if Pool7 s_h is max-pooled over the head's logical slot
// order (kernel 7, stride 1, padding 3); then sum_h s_h[j] is added into metric[slot j].
// Seqs is int32 [nSeqs][kvHeads][4] = {offset into Tables, context length, first window row, window rows}.
// Window rows index Q (and Pos of the AttnHeads used with the same Q).
type WindowSpec struct {
	Seqs    Buf
	Tables  Buf
	Pos     Buf
	NSeqs   int
	Squared bool
	Pool7   bool
	Buffer  int // as AttnHeads.MetricBuffer: a row adds only to slots at least Buffer positions below it
}

// ErrOutOfMemory is wrapped by a backend's allocation errors when the device has no memory left for
// them, so that callers can fall back to less (a smaller KV pool, fewer rows per pass).
var ErrOutOfMemory = errors.New("out of device memory")

// Backend is a compute device. Ops are recorded in order; a CPU backend executes them at once, a GPU
// backend records them into one command buffer that Sync submits. Read implies Sync.
type Backend interface {
	Name() string
	Alloc(bytes int64) (Buf, error)
	Free(b Buf)
	Write(dst Buf, off int64, src []byte) error
	Read(src Buf, off int64, dst []byte) error
	Sync() error
	Close() error

	// UploadWeight copies a checkpoint tensor to the device in its stored dtype.
	UploadWeight(t *model.Tensor) (Weight, error)
	// NewKVPool allocates the paged cache. A slot is undefined until KVWrite (or CopyMoves) sets it; only
	// slots within a head's context are ever read.
	NewKVPool(blocks, blockSize, headDim int, typ KVType) (KVPool, error)

	// Embed: out[i][:] = dequant(table row ids[i]), i < n. out f32 [n][table.Cols].
	Embed(out Buf, table Weight, ids Buf, n int)
	// RMSNorm: out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w, rows of dim = w.Cols; out may equal x.
	RMSNorm(out, x Buf, w Weight, n int, eps float32)
	// MatMul: out[i][r] = sum_c x[i][c] * W[r][c], out f32 [n][w.Rows], x f32 [n][w.Cols].
	// Each output element's reduction order must not depend on n: a batch gives each row's exact result.
	// A backend may switch to a kernel of another order for batches of many rows (the Vulkan backend's
	// tiled kernel on GPUs, from 64 rows) if that order again does not depend on n.
	MatMul(out, x Buf, w Weight, n int)
	// RoPE rotates x f32 [n][heads][headDim] in place at positions pos int32 [n].
	RoPE(x Buf, pos Buf, n, heads, headDim int, p RopeParams)
	// SwiGLU: out[i] = silu(gate[i]) * up[i], count elements; out may equal gate.
	SwiGLU(out, gate, up Buf, count int)
	// Add: out[i] = a[i] + b[i], count elements; out may equal a.
	Add(out, a, b Buf, count int)
	// Softmax over each row of x f32 [rows][cols], in place.
	Softmax(x Buf, rows, cols int)
	// Argmax: out int32 [rows] = index of the largest value of each row (lowest index on ties).
	Argmax(out, x Buf, rows, cols int)
	// CopyRows gathers rows: dst[i][:] = src[rows[i]][:], f32 rows of width elements, i < n.
	CopyRows(dst, src, rows Buf, n, width int)
	// ScatterI32: dst int32[pairs[i][0]] = pairs[i][1], pairs int32 [n][2] with distinct indices.
	ScatterI32(dst, pairs Buf, n int)
	// CopyBytes: dst[dstOff, +n) = src[srcOff, +n), bytes, ordered with the other ops (a device-side copy on
	// a GPU); within one buffer the two ranges must not overlap.
	CopyBytes(dst Buf, dstOff int64, src Buf, srcOff, n int64)
	// TopK: the k (<= MaxTopK) largest of each row, descending (lower index first on ties): idx int32
	// [rows][k], val f32.
	TopK(idx, val, x Buf, rows, cols, k int)

	// KVWrite stores k, v f32 [n][kvHeads][headDim] into slots int32 [n][kvHeads] (global slot ids), sets
	// each written slot's position to pos[i] and its metric to 0.
	KVWrite(pool KVPool, k, v, slots, pos Buf, n, kvHeads int)
	// Attention: out f32 [rows][qHeads][headDim] = softmax(q k^T * scale) v over each row's paged cache,
	// query head h reading KV head h / (qHeads/kvHeads). mode adds into the slots' metric (see MetricMode).
	Attention(out, q Buf, pool KVPool, a AttnHeads, qHeads, kvHeads int, scale float32, mode MetricMode)
	// WindowMetric adds the prefill observation-window metric (see WindowSpec) for q f32 [*][qHeads][headDim].
	WindowMetric(q Buf, pool KVPool, w WindowSpec, qHeads, kvHeads int, scale float32)
	// CopyMoves copies K, V, metric and position from slot moves[i][0] to slot moves[i][1], int32 [n][2].
	// No destination is a source of the same call.
	CopyMoves(pool KVPool, moves Buf, n int)
	// ReadSlots copies metric (f32) and position (int32) of the given blocks to the host, block by block;
	// with vnorm non-nil also each slot's V row L1 norm sum_e |v_e| (f32, as stored: f16 rows widened),
	// accumulated in element order.
	ReadSlots(pool KVPool, blocks []int32, metric []float32, pos []int32, vnorm []float32) error

	// Fused ops: each gives the result of the op sequence it names (the forward pass records fewer
	// dispatches); a backend may run that sequence itself where its fused kernel does not apply.

	// MatMulAdd: out[i][r] += sum_c x[i][c] * W[r][c] (MatMul's sum, then one add), out f32 [n][w.Rows],
	// x f32 [n][w.Cols]; out must not overlap x. Same reduction order rule as MatMul.
	MatMulAdd(out, x Buf, w Weight, n int)
	// RopeKVWrite: RoPE(q, pos, n, qHeads, hd, p), RoPE(k, pos, n, kvHeads, hd, p), then
	// KVWrite(pool, k, v, slots, pos, n, kvHeads), hd = pool.HeadDim(): q and k are rotated in place.
	RopeKVWrite(pool KVPool, q, k, v, slots, pos Buf, n, qHeads, kvHeads int, p RopeParams)
	// MatMulSwiGLU: MatMul(g, x, gate, n), MatMul(u, x, up, n), then out = SwiGLU(g, u): out f32
	// [n][gate.Rows], x f32 [n][gate.Cols]; gate and up have the same shape; out must not overlap x.
	MatMulSwiGLU(out, x Buf, gate, up Weight, n int)
	// MatMulQKV: MatMul(q, x, wq, n), MatMul(k, x, wk, n), MatMul(v, x, wv, n); the three weights have
	// the same Cols; q, k and v must not overlap x or each other.
	MatMulQKV(q, k, v, x Buf, wq, wk, wv Weight, n int)
}

// Optional capabilities: a Backend may also implement these; callers find them with a type assertion.

// DeviceMemory is a backend with memory of its own (a Vulkan device), as opposed to the host backend that
// shares the machine's memory. MemoryAvailable is what is left of the heap kvc allocates from, in bytes: the
// budget for weights, scratch and the KV cache.
type DeviceMemory interface {
	MemoryAvailable() int64
}

// AttentionWindower is a backend with a fused Attention-then-WindowMetric op over the same q and cache:
// AttentionWindow(out, q, pool, a, w, ...) = Attention(out, q, pool, a, ...), WindowMetric(q, pool, w, ...).
// The CPU backend adds a window row's probabilities while its attention has them, rather than computing
// them a second time.
type AttentionWindower interface {
	AttentionWindow(out, q Buf, pool KVPool, a AttnHeads, w WindowSpec, qHeads, kvHeads int, scale float32, mode MetricMode)
}

// Profiler is a backend that can time its ops: ProfileReport is a table of time per kernel (or a line
// saying profiling is off).
type Profiler interface {
	ProfileReport() string
}

// Counters are a backend's running totals of queue submissions, recorded dispatches and bytes moved
// between host and device (kvc bench decode reports their change per step).
type Counters struct {
	Submits       int64
	Dispatches    int64
	UploadBytes   int64 // written by the host (Write)
	ReadbackBytes int64 // read by the host (Read, ReadSlots)
}

// MaxTopK is the largest k a Backend's TopK takes.
const MaxTopK = 256

// ReadReq is one range to read back: len(Dst) bytes of Src at Off.
type ReadReq struct {
	Src Buf
	Off int64
	Dst []byte
}

// BatchReader is a Backend that reads several ranges back after one submission (Read each would submit
// once per range on memory the host cannot map).
type BatchReader interface {
	ReadAll(reqs []ReadReq) error
}

// readAll reads reqs back, in one submission where the backend can.
func readAll(b Backend, reqs []ReadReq) error {
	if br, ok := b.(BatchReader); ok {
		return br.ReadAll(reqs)
	}
	for _, r := range reqs {
		if err := b.Read(r.Src, r.Off, r.Dst); err != nil {
			return err
		}
	}
	return nil
}

// Counting is a Backend that keeps Counters.
type Counting interface {
	Counters() Counters
}

// KVBlockIO is a backend whose KV pool blocks can be copied whole to and from the host (session files).
// A block's bytes, BlockBytes() in all, are K [BlockSize][HeadDim] then V [BlockSize][HeadDim] in the
// pool's KVType (little-endian f32 or IEEE half), then the metric f32 [BlockSize] and the position int32
// [BlockSize]: the same on every backend, so a session saved on one device loads on another.
type KVBlockIO interface {
	ReadKVBlocks(pool KVPool, blocks []int32, dst []byte) error
	WriteKVBlocks(pool KVPool, blocks []int32, src []byte) error
}
