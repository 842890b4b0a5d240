// kv_pool.glsl: the pool's buffers and accessors (layout in kv_defs.glsl). Include after the push-constant
// block `pc`, which must start with KV_POOL_PUSH; define KV_USE_K/V/META/SCRATCH first, and
// KV_K_READONLY (K and V) / KV_POS_READONLY where the shader only reads them, so that the runtime's
// hazard tracking sees them as reads.

#define KV_ARENA_CASES(C) C(0) C(1) C(2) C(3) C(4) C(5) C(6) C(7)
#define KV_META_CASES(C) C(0) C(1)

#ifdef KV_USE_K
#ifdef KV_K_READONLY
layout(std430, binding = 0) readonly buffer KArena { KV_T d[]; } K[KV_ARENAS];
#else
layout(std430, binding = 0) buffer KArena { KV_T d[]; } K[KV_ARENAS];
#endif
// kWord: raw word w of arena a (for copies).
KV_T kWord(uint a, uint w) {
#define C(x) case x: return K[x].d[w];
    switch (a) { KV_ARENA_CASES(C) }
#undef C
    return KV_T(0);
}
#ifndef KV_K_READONLY
void kWordStore(uint a, uint w, KV_T v) {
#define C(x) case x: K[x].d[w] = v; break;
    switch (a) { KV_ARENA_CASES(C) }
#undef C
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
#define C(x) case x: return V[x].d[w];
    switch (a) { KV_ARENA_CASES(C) }
#undef C
    return KV_T(0);
}
#ifndef KV_K_READONLY
void vWordStore(uint a, uint w, KV_T v) {
#define C(x) case x: V[x].d[w] = v; break;
    switch (a) { KV_ARENA_CASES(C) }
#undef C
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
#define C(x) case x: return Met[x].d[i];
    switch (a) { KV_META_CASES(C) }
#undef C
    return 0.0;
}
void metricStore(uint slot, float v) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define C(x) case x: Met[x].d[i] = v; break;
    switch (a) { KV_META_CASES(C) }
#undef C
}
int posLoad(uint slot) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define C(x) case x: return Pos[x].d[i];
    switch (a) { KV_META_CASES(C) }
#undef C
    return 0x7fffffff;
}
#ifndef KV_POS_READONLY
void posStore(uint slot, int v) {
    uint a = slot / pc.mSlots, i = slot - a * pc.mSlots;
#define C(x) case x: Pos[x].d[i] = v; break;
    switch (a) { KV_META_CASES(C) }
#undef C
}
#endif
#endif

#ifdef KV_USE_SCRATCH
// Coherent: a workgroup reads entries other invocations of it wrote (after memoryBarrierBuffer + barrier).
layout(std430, binding = 4) coherent buffer ScratchArena { float d[]; } Scr[META_ARENAS];
// Entry k of slot's scratch.
float scratchLoad(uint slot, uint k) {
    uint a = slot / pc.sSlots, i = (slot - a * pc.sSlots) * pc.sStride + k;
#define C(x) case x: return Scr[x].d[i];
    switch (a) { KV_META_CASES(C) }
#undef C
    return 0.0;
}
void scratchStore(uint slot, uint k, float v) {
    uint a = slot / pc.sSlots, i = (slot - a * pc.sSlots) * pc.sStride + k;
#define C(x) case x: Scr[x].d[i] = v; break;
    switch (a) { KV_META_CASES(C) }
#undef C
}
#endif

// Global slot of logical index i of a head whose table starts at tables[off], or 0xffffffff when the table
// names a block outside the pool (a caller bug; the slot is then skipped instead of faulting the device).
#define KV_NO_SLOT 0xffffffffu
#define KV_SLOT_OF(tables, off, i) kvSlotOf(tables[(off) + (i) / pc.bs], (i))
uint kvSlotOf(int blk, uint i) {
    if (blk < 0 || uint(blk) >= pc.nSlots / pc.bs) return KV_NO_SLOT;
    return uint(blk) * pc.bs + i % pc.bs;
}
