// kv_chunk.glsl: K and V rows read in chunks of 16 bytes (attention.comp, attention_tiled.comp): CH head
// dims (8 halves or 4 floats) = NV vec4s. When hd is a multiple of CH every chunk is one 16-byte load
// through a vector view of the arenas (lavapipe turns each load with a per-lane address into a loop over
// lanes, so wide loads matter); otherwise element loads. Include after kv_pool.glsl (KV_USE_K, KV_USE_V).

#if KV_F16
#define CH 8u
#define NV 2
#define KV_VEC uvec4
#else
#define CH 4u
#define NV 1
#define KV_VEC vec4
#endif

layout(std430, binding = 0) readonly buffer KArenaVec { KV_VEC d[]; } Kv[KV_ARENAS];
layout(std430, binding = 1) readonly buffer VArenaVec { KV_VEC d[]; } Vv[KV_ARENAS];

#if KV_F16
#define CHUNK_FAST(ARR, A, base, c, x) { \
    uvec4 w = ARR[A].d[(base) / CH + (c)]; \
    x[0] = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); \
    x[1] = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)); }
#else
#define CHUNK_FAST(ARR, A, base, c, x) { x[0] = ARR[A].d[(base) / CH + (c)]; }
#endif

// Chunk c of a K (isV false) or V row at element base of arena a; dims past hd read as 0.
void loadChunk(bool isV, uint a, uint base, uint c, bool fast, out vec4 x[NV]) {
    if (fast) {
        if (isV) {
#define S(A) CHUNK_FAST(Vv, A, base, c, x)
            KV_SWITCH(a, S)
#undef S
        } else {
#define S(A) CHUNK_FAST(Kv, A, base, c, x)
            KV_SWITCH(a, S)
#undef S
        }
        return;
    }
    for (uint v = 0u; v < NV; v++) {
        for (uint k = 0u; k < 4u; k++) {
            uint e = c * CH + v * 4u + k;
            float y = 0.0;
            if (e < pc.hd) {
#if KV_F16
                uint w = isV ? vWord(a, (base + e) >> 1u) : kWord(a, (base + e) >> 1u);
                y = unpackHalf2x16(w)[(base + e) & 1u];
#else
                y = isV ? vWord(a, base + e) : kWord(a, base + e);
#endif
            }
            x[v][k] = y;
        }
    }
}

