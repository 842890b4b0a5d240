package gpu

import "unsafe"

// Push constants: one Go struct per GLSL push-constant block, its fields in the block's order and of the
// block's 32-bit types (uint32 for uint, int32 for int, float32 for float). TestPushBlocks checks every
// embedded module's block against its struct (offsets and types); Kernel refuses a push size that is not
// the module's block size.

// PushBytes returns p's bytes as its shader reads them (host byte order, what vkCmdPushConstants takes).
func PushBytes[P any](p *P) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// PushSize is the size of push-constant block P in bytes.
func PushSize[P any]() int {
	var p P
	return int(unsafe.Sizeof(p))
}

func b32(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

// countPush: add.comp, swiglu.comp, copy.comp.
type countPush struct{ Count uint32 }

// fillPush: fill.comp.
type fillPush struct{ Count, Value uint32 }

// rowsPush: softmax.comp, argmax.comp.
type rowsPush struct{ Rows, Cols uint32 }

// gatherPush: gather.comp.
type gatherPush struct{ N, Width uint32 }

// scatterPush: scatter.comp.
type scatterPush struct{ N uint32 }

// topkPush: topk.comp (KPad: the power of two >= K).
type topkPush struct{ Rows, Cols, K, KPad uint32 }

// embedPush: embed.comp.
type embedPush struct {
	N, Cols, RowBytes, RowBase, Rows, TotalRows, DType, RowDiv, ColDiv, ScaleStride, WriteInvalid uint32
}

// rmsnormPush: rmsnorm.comp.
type rmsnormPush struct {
	N, Dim, DType uint32
	Eps           float32
	ColDiv        uint32
}

// ropePush: rope.comp.
type ropePush struct{ N, Heads, HeadDim, RotateHalf uint32 }

// matmulPush: weights.glsl (matmul.comp, matmul_rows.comp, matmul_tiled.comp and their ADD and GLU variants).
type matmulPush struct {
	Rows, Cols, N, RowWords, OutStride, RowBase, RowDiv, ColDiv, ScaleStride, ColShift uint32
}

// matmulQKVPush: weights.glsl with -DQKV.
type matmulQKVPush struct {
	matmulPush
	Rows2, GroupsQ, GroupsK uint32
}

// kvPoolPush: KV_POOL_PUSH of kv_defs.glsl, the head of every KV kernel's block (see KVPool.poolPush).
type kvPoolPush struct {
	BlockSize, HeadDim, KSlots, MSlots, SSlots, NSlots, SStride, TabLen uint32
}

// kvWritePush: kv_write.comp.
type kvWritePush struct {
	kvPoolPush
	N, KVHeads uint32
}

// kvCountPush: copy_moves.comp (N moves).
type kvCountPush struct {
	kvPoolPush
	N uint32
}

// readSlotsPush: copy_moves_read_slots.comp (N blocks; Norms 1: the V row norms too).
type readSlotsPush struct {
	kvPoolPush
	N, Norms uint32
}

// ropeKVPush: fused_rope_kv.comp.
type ropeKVPush struct {
	kvPoolPush
	N, QHeads, KVHeads, RotateHalf uint32
}

// attentionPush: kv_attn.glsl (attention.comp, attention_rows.comp, attention_reduce.comp,
// attention_tiled.comp).
type attentionPush struct {
	kvPoolPush
	Rows, QHeads, KVHeads                         uint32
	Scale                                         float32
	Mode, SplitMax, PartMin, MetricRows, TiledMin uint32
	MetricBuffer                                  int32
	NWin                                          uint32 // AttentionWindow's windows (binding 11)
}

// windowPush: window_metric.comp.
type windowPush struct {
	kvPoolPush
	QHeads, KVHeads       uint32
	Scale                 float32
	Squared, Pool7, QRows uint32
	Buffer                int32
	Rows, MetricRows      uint32 // window_attention_lanes: the attention's rows, those adding a decode metric
	NWin                  uint32 // window_attention_lanes: entries of Seqs
	Chunks, PartMin       uint32 // window_metric_split: parts per head in the grid, fewest slots per part
}
