// kv_pool.glsl: the pool's buffers and accessors (layout in kv_defs.glsl). Include after the push-constant
// block `pc`, which must start with KV_POOL_PUSH; define KV_USE_K/V/META/SCRATCH first, and
// KV_K_READONLY (K and V) / KV_POS_READONLY where the shader only reads them, so that the runtime's
// hazard tracking sees them as reads.
//
// Arena selection: arrays of buffers are indexed by constants only (no descriptor-indexing feature). The
// number of arenas in use is a specialization constant, so a one-arena pool compiles to plain accesses and
// unused cases fold away: a switch whose selector the compiler cannot prove uniform costs every case on
// SIMD-on-CPU drivers such as lavapipe.
layout(constant_id = 0) const uint KV_N = 8;   // K/V arenas in use (1..KV_ARENAS)
layout(constant_id = 1) const uint META_N = 2; // metric/position arenas in use (1..META_ARENAS)
layout(constant_id = 2) const uint SCR_N = 2;  // scratch arenas in use (1..META_ARENAS)

// KV_SWITCH(a, S) runs statement macro S(x) for arena x == a.
#define KV_CASE_(S, x) case x: if (x < KV_N) { S(x) } break;
#define KV_SWITCH(a, S) if (KV_N == 1u) { S(0) } else { switch (a) { \
    KV_CASE_(S, 0) KV_CASE_(S, 1) KV_CASE_(S, 2) KV_CASE_(S, 3) \
    KV_CASE_(S, 4) KV_CASE_(S, 5) KV_CASE_(S, 6) KV_CASE_(S, 7) } }
#define META_CASE_(S, x) case x: if (x < META_N) { S(x) } break;
#define META_SWITCH(a, S) if (META_N == 1u) { S(0) } else { switch (a) { META_CASE_(S, 0) META_CASE_(S, 1) } }
#define SCR_CASE_(S, x) case x: if (x < SCR_N) { S(x) } break;
#define SCR_SWITCH(a, S) if (SCR_N == 1u) { S(0) } else { switch (a) { SCR_CASE_(S, 0) SCR_CASE_(S, 1) } }

#ifdef KV_USE_K
#ifdef KV_K_READONLY
layout(std430, binding = 0) readonly buffer KArena { KV_T d[]; } K[KV_ARENAS];
#else
layout(std430, binding = 0) buffer KArena { KV_T d[]; } K[KV_ARENAS];
#endif
// kWord: raw word w of arena a (for copies).
KV_T kWord(uint a, uint w) {
#define S(x) return K[x].d[w];
    KV_SWITCH(a, S)
#undef S
    return KV_T(0);
}
#ifndef KV_K_READONLY
void kWordStore(uint a, uint w, KV_T v) {
#define S(x) K[x].d[w] = v;
    KV_SWITCH(a, S)
#undef S
}
#endif
#endif

#ifdef KV_USE_V
#ifdef KV_K_READONLY
layout(std430, binding = 1) readonly buffer VArena { KV_T d[]; } V[KV_ARENAS];
#else
layout(std430, binding = 1) buffer VArena { KV_T d[]; } V[KV_ARENAS];
#endif
KV_T vWord(uint a, uint w) {
#define S(x) return V[x].d[w];
    KV_SWITCH(a, S)
#undef S
    return KV_T(0);
}
#ifndef KV_K_READONLY
void vWordStore(uint a, uint w, KV_T v) {
#define S(x) V[x].d[w] = v;
    KV_SWITCH(a, S)
#undef S
}
#endif
// vElem: element e (row base + dim) of arena a as f32.
float vElem(uint a, uint e) {
#if KV_F16
    return unpackHalf2x16(vWord(a, e >> 1))[e & 1u];
#else
    return vWord(a, e);
#endif
}
#endif

#ifdef KV_USE_META
layout(std430, binding = 2) buffer MetricArena { float d[]; } Met[META_ARENAS];
#ifdef KV_POS_READONLY
layout(std430, binding = 3) readonly buffer PosArena { int d[]; } Pos[META_ARENAS];
#else
layout(std430, binding = 3) buffer PosArena { int d[]; } Pos[META_ARENAS];
#endif
float metricLoad(uint slot) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define S(x) return Met[x].d[i];
    META_SWITCH(a, S)
#undef S
    return 0.0;
}
void metricStore(uint slot, float v) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define S(x) Met[x].d[i] = v;
    META_SWITCH(a, S)
#undef S
}
int posLoad(uint slot) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define S(x) return Pos[x].d[i];
    META_SWITCH(a, S)
#undef S
    return 0x7fffffff;
}
#ifndef KV_POS_READONLY
void posStore(uint slot, int v) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define S(x) Pos[x].d[i] = v;
    META_SWITCH(a, S)
#undef S
}
#endif
#endif

#ifdef KV_USE_SCRATCH
// Coherent: a workgroup reads entries other invocations of it wrote (after memoryBarrierBuffer + barrier).
layout(std430, binding = 4) coherent buffer ScratchArena { float d[]; } Scr[META_ARENAS];
// Entry k of slot's scratch.
float scratchLoad(uint slot, uint k) {
    uint a = slot / pc.sSlots, i = (slot - a * pc.sSlots) * pc.sStride + k;
#define S(x) return Scr[x].d[i];
    SCR_SWITCH(a, S)
#undef S
    return 0.0;
}
void scratchStore(uint slot, uint k, float v) {
    uint a = slot / pc.sSlots, i = (slot - a * pc.sSlots) * pc.sStride + k;
#define S(x) Scr[x].d[i] = v;
    SCR_SWITCH(a, S)
#undef S
}
#endif

// Global slot of logical index i of a head whose table starts at tables[off], or KV_NO_SLOT when the
// entry lies past the table buffer or names a block outside the pool (a caller bug; the slot is then
// skipped instead of faulting the device).
#define KV_NO_SLOT 0xffffffffu
#define KV_SLOT_OF(tables, off, i) \
    ((off) + (i) / pc.bs < pc.tabLen ? kvSlotOf(tables[(off) + (i) / pc.bs], (i)) : KV_NO_SLOT)
uint kvSlotOf(int blk, uint i) {
    if (blk < 0 || uint(blk) >= pc.nSlots / pc.bs) return KV_NO_SLOT;
    return uint(blk) * pc.bs + i % pc.bs;
}
