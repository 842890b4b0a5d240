// kv_defs.glsl: constants and the push-constant fields of the paged KV pool (kv_pool.glsl), included before
// the shader's push-constant block. The layout:
//
// K and V are split into up to KV_ARENAS buffers ("arenas", each within maxStorageBufferRange): global slot
// s lives in arena s / kSlots at local slot s % kSlots, its row at element local*headDim. With KV_F16 a
// row is stored as packed half pairs (uint words, headDim even), which needs no 16-bit storage feature.
// Metric (f32), position (int32) and the per-slot scratch (f32, sStride per slot) are split the same way
// into up to META_ARENAS buffers each, with their own slots per arena (mSlots, sSlots).
//
// Bindings: 0 K[KV_ARENAS], 1 V[KV_ARENAS], 2 metric[META_ARENAS], 3 position[META_ARENAS],
// 4 scratch[META_ARENAS]; each shader declares only those it uses (KV_USE_*) and binds its own from 5.
// Arrays of buffers are indexed by constants only (switch), so no descriptor-indexing feature is needed
// even when invocations of one workgroup read different arenas.

#define KV_ARENAS 8
#define META_ARENAS 2
#define NEG_BIG (-1.0e30) // "minus infinity" without relying on inf arithmetic

#if KV_F16
#define KV_T uint
#else
#define KV_T float
#endif

// The pool's part of every KV shader's push constants.
#define KV_POOL_PUSH \
    uint bs;       /* slots per block */ \
    uint hd;       /* head dim */ \
    uint kSlots;   /* slots per K/V arena */ \
    uint mSlots;   /* slots per metric/position arena */ \
    uint sSlots;   /* slots per scratch arena */ \
    uint nSlots;   /* slots in the pool */ \
    uint sStride;  /* scratch floats per slot */ \
    uint tabLen;   /* entries in the op's block-table buffer (0 when it has none) */

