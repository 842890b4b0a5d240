#version 450
// attention_rows: attention.comp for CPU devices (lavapipe), selected by the host like matmul_rows.comp.
// Same grid (x = KV head, y = row, z = partitions z, z + depth, ...), same split rule, partial layout and
// combine (kv_attn.glsl, kv_combine.glsl), so attention_reduce.comp combines its partials too. The
// workgroup is one subgroup (WG lanes) and there are no shared-memory trees and no workgroup barriers:
// a CPU device runs a workgroup as one SIMD iteration, and every workgroup barrier costs it a coroutine
// switch per iteration.
//
// Lane t owns slots beg + t, beg + t + WG, ... of the partition and keeps its own online-softmax state
// per query head (max m, exp-sum l, unnormalized output acc): per slot it scores the K row against the
// group's queries (RP heads per pass, pre-scaled in shared memory), then adds p * V row. At the end of a
// pass the lanes are merged with subgroup operations: M = max m, L = sum l exp(m - M),
// out = sum acc exp(m - M). The output dims a lane accumulates are kept in registers a window of NW
// 16-byte chunks at a time; heads wider than one window rescore K once per window (the host runs this
// shader only for heads of a few windows).
//
// Metric: as attention.comp, scores go to scratch (first window only) and the metric is added by
// kv_combine.glsl's addMetric; unsplit, lane t rereads the slots t, t + WG, ... it scored itself.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#define MAX_D 256 // head dim
#define MQ (MAX_D / 4) // quads per head
#if KV_F16
#define CH 8u
#define NV 2
#define KV_VEC uvec4
#else
#define CH 4u
#define NV 1
#define KV_VEC vec4
#endif

layout(constant_id = 3) const uint WG = 8; // the subgroup size
layout(constant_id = 4) const uint RP = 4; // query heads per pass (1..4)
layout(constant_id = 5) const uint NW = 1; // 16-byte output chunks per window (per lane with TILES)
layout(constant_id = 6) const uint TILES = 0; // 1: the tile layout for wide heads (see tilePass)
layout(local_size_x_id = 3) in;

#define MAX_R 4 // the most RP may be (shared q size)

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#define KV_K_READONLY
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"
#include "kv_attn.glsl"
#include "kv_pool.glsl"
#define KV_COMBINE_BARRIER { subgroupMemoryBarrierBuffer(); subgroupMemoryBarrierShared(); subgroupBarrier(); }
#include "kv_combine.glsl"

shared vec4 qs[MAX_R * MQ];
shared float ps[MAX_R * WG]; // tilePass: the tile's probabilities and K/V row addresses
shared uint tileArena[WG];
shared uint tileBase[WG];

const uint NONE = 0xffffffffu;

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

// A lane walks logical indices i, i + WG, ...: SlotWalk keeps i's block index and offset in the block
// incrementally, and the arena lookups fold away for one-arena pools (specialization constants): a CPU
// device divides vectors lane by lane, and these divisions were most of a slot's cost.
struct SlotWalk { uint blk, o, stepBlk, stepO, nBlk; };

SlotWalk walkFrom(uint i) {
    SlotWalk w;
    w.blk = i / pc.bs;
    w.o = i - w.blk * pc.bs;
    w.stepBlk = WG / pc.bs;
    w.stepO = WG - w.stepBlk * pc.bs;
    w.nBlk = pc.nSlots / pc.bs;
    return w;
}

// walkSlot is KV_SLOT_OF(tables, off, i) for the walk's current i, then advances the walk by WG.
uint walkSlot(inout SlotWalk w, uint off) {
    uint e = off + w.blk, o = w.o;
    w.blk += w.stepBlk;
    w.o += w.stepO;
    if (w.o >= pc.bs) { w.o -= pc.bs; w.blk++; }
    if (e >= pc.tabLen) return KV_NO_SLOT;
    int b = tables[e];
    return b < 0 || uint(b) >= w.nBlk ? KV_NO_SLOT : uint(b) * pc.bs + o;
}

int slotPos(uint slot) { return META_N == 1u ? Pos[0].d[slot] : posLoad(slot); }
uint kvArena(uint slot) { return KV_N == 1u ? 0u : slot / pc.kSlots; }

// tilePass: one query-head pass over [beg, end) for heads wider than one window. Per tile of WG slots
// lane t scores slot t; the tile max (subgroupMax) updates a running max all lanes share; then lane t
// accumulates its output chunks t, t + WG, ... (NW of them) over the tile's slots, whose probabilities
// and addresses it reads from shared memory, so each K and V chunk is loaded once.
void tilePass(uint row, uint kvh, uint prt, uint h0, uint rc, uint qbase, uint off, uint beg, uint end, int qp,
              bool metric, uint nParts, uint nC, bool fast, uint t) {
    float m[RP], l[RP];
    vec4 acc[RP * NW * NV];
    for (uint h = 0u; h < RP; h++) { m[h] = NEG_BIG; l[h] = 0.0; }
    for (uint k = 0u; k < RP * NW * NV; k++) acc[k] = vec4(0.0);
    SlotWalk walk = walkFrom(beg + t);
    for (uint tile = beg; tile < end; tile += WG) {
        uint i = tile + t;
        float s[RP];
        for (uint h = 0u; h < RP; h++) s[h] = NEG_BIG;
        uint ka = NONE, kb = 0u;
        if (i < end) {
            uint slot = walkSlot(walk, off);
            if (slot != KV_NO_SLOT) {
                if (slotPos(slot) <= qp) {
                    ka = kvArena(slot);
                    kb = (slot - ka * pc.kSlots) * pc.hd;
                    for (uint h = 0u; h < RP; h++) s[h] = 0.0;
                    for (uint c = 0u; c < nC; c++) {
                        vec4 x[NV];
                        loadChunk(false, ka, kb, c, fast, x);
                        for (uint h = 0u; h < RP; h++) {
                            for (uint v = 0u; v < NV; v++) s[h] += dot(x[v], qs[h * MQ + c * NV + v]);
                        }
                    }
                }
                if (metric) {
                    for (uint h = 0u; h < RP; h++) {
                        if (h < rc) scratchStore(slot, h0 + h, s[h]);
                    }
                }
            }
        }
        subgroupBarrier(); // every lane is done reading the previous tile's ps and addresses
        for (uint h = 0u; h < RP; h++) {
            float mn = max(m[h], subgroupMax(s[h]));
            float alpha = exp(m[h] - mn);
            float p = ka != NONE ? exp(s[h] - mn) : 0.0;
            ps[h * WG + t] = p;
            l[h] = l[h] * alpha + p;
            m[h] = mn;
            for (uint k = 0u; k < NW * NV; k++) acc[h * NW * NV + k] *= alpha;
        }
        tileArena[t] = ka;
        tileBase[t] = kb;
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        uint cnt = min(WG, end - tile);
        for (uint j = 0u; j < cnt; j++) {
            uint aj = tileArena[j];
            if (aj == NONE) continue;
            uint bj = tileBase[j];
            for (uint w = 0u; w < NW; w++) {
                uint c = t + w * WG;
                if (c >= nC) break;
                vec4 x[NV];
                loadChunk(true, aj, bj, c, fast, x);
                for (uint h = 0u; h < RP; h++) {
                    float p = ps[h * WG + j];
                    for (uint v = 0u; v < NV; v++) acc[(h * NW + w) * NV + v] += p * x[v];
                }
            }
        }
    }
    // m is the same in every lane; l sums the lanes' probabilities.
    for (uint h = 0u; h < RP; h++) {
        float L = subgroupAdd(l[h]);
        if (h >= rc) continue;
        uint pa = partialAt(row, kvh, prt, h0 + h);
        for (uint w = 0u; w < NW; w++) {
            uint c = t + w * WG;
            if (c >= nC) break;
            for (uint v = 0u; v < NV; v++) {
                vec4 o = acc[(h * NW + w) * NV + v];
                for (uint k = 0u; k < 4u; k++) {
                    uint dd = c * CH + v * 4u + k;
                    if (dd >= pc.hd) continue;
                    if (nParts == 1u) {
                        outp[qbase + h * pc.hd + dd] = L > 0.0 ? o[k] / L : 0.0;
                    } else {
                        part[pa + 2u + dd] = o[k];
                    }
                }
            }
        }
        if (t != 0u) continue;
        if (nParts == 1u) {
            if (h0 + h < MAX_GROUP) { mFin[h0 + h] = m[h]; lFin[h0 + h] = L; }
        } else {
            part[pa] = m[h];
            part[pa + 1u] = L;
        }
    }
}

void main() {
    uint kvh = gl_WorkGroupID.x, row = gl_WorkGroupID.y;
    if (kvWindowRow(row, kvh)) return; // the fused window kernel's (uniform in the workgroup)
    uint t = gl_LocalInvocationID.x;
    uint hi = (row * pc.kvHeads + kvh) * 2u;
    uint off = uint(max(heads[hi], 0));
    uint ctx = uint(max(heads[hi + 1u], 0));
    uint nParts = kvNumParts(ctx);
    uint partLen = (ctx + nParts - 1u) / nParts;
    uint r = pc.qHeads / pc.kvHeads;
    int qp = qpos[row];
    bool metric = pc.mode != 0u && row < pc.metricRows;
    uint nC = (pc.hd + CH - 1u) / CH;
    uint nWin = TILES != 0u ? 1u : (nC + NW - 1u) / NW;
    bool fast = pc.hd % CH == 0u;

    for (uint prt = gl_WorkGroupID.z; prt < nParts; prt += gl_NumWorkGroups.z) {
        uint beg = min(ctx, prt * partLen), end = min(ctx, beg + partLen);
        for (uint h0 = 0u; h0 < r; h0 += RP) {
            uint rc = min(RP, r - h0);
            uint qbase = (row * pc.qHeads + kvh * r + h0) * pc.hd;
            subgroupBarrier(); // every lane is done reading the previous pass's qs
            for (uint e = t; e < RP * MQ; e += WG) {
                uint h = e / MQ, d4 = (e - h * MQ) * 4u;
                vec4 v = vec4(0.0);
                for (uint c = 0u; c < 4u; c++) {
                    if (h < rc && d4 + c < pc.hd) v[c] = q[qbase + h * pc.hd + d4 + c] * pc.scale;
                }
                qs[e] = v;
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            if (TILES != 0u) {
                tilePass(row, kvh, prt, h0, rc, qbase, off, beg, end, qp, metric, nParts, nC, fast, t);
                continue;
            }

            for (uint win = 0u; win < nWin; win++) {
                uint c0 = win * NW;
                float m[RP], l[RP];
                vec4 acc[RP * NW * NV];
                for (uint h = 0u; h < RP; h++) { m[h] = NEG_BIG; l[h] = 0.0; }
                for (uint k = 0u; k < RP * NW * NV; k++) acc[k] = vec4(0.0);

                SlotWalk walk = walkFrom(beg + t);
                for (uint i = beg + t; i < end; i += WG) {
                    uint slot = walkSlot(walk, off);
                    if (slot == KV_NO_SLOT) continue;
                    bool vis = slotPos(slot) <= qp;
                    uint a = kvArena(slot);
                    uint base = (slot - a * pc.kSlots) * pc.hd;
                    float s[RP];
                    for (uint h = 0u; h < RP; h++) s[h] = vis ? 0.0 : NEG_BIG;
                    if (vis) {
                        for (uint c = 0u; c < nC; c++) {
                            vec4 x[NV];
                            loadChunk(false, a, base, c, fast, x);
                            for (uint h = 0u; h < RP; h++) {
                                for (uint v = 0u; v < NV; v++) s[h] += dot(x[v], qs[h * MQ + c * NV + v]);
                            }
                        }
                    }
                    if (metric && win == 0u) {
                        for (uint h = 0u; h < RP; h++) {
                            if (h < rc) scratchStore(slot, h0 + h, s[h]);
                        }
                    }
                    if (!vis) continue;
                    float p[RP];
                    for (uint h = 0u; h < RP; h++) {
                        float mn = max(m[h], s[h]);
                        float alpha = exp(m[h] - mn);
                        p[h] = exp(s[h] - mn);
                        l[h] = l[h] * alpha + p[h];
                        m[h] = mn;
                        for (uint k = 0u; k < NW * NV; k++) acc[h * NW * NV + k] *= alpha;
                    }
                    for (uint w = 0u; w < NW; w++) {
                        if (c0 + w >= nC) break;
                        vec4 x[NV];
                        loadChunk(true, a, base, c0 + w, fast, x);
                        for (uint h = 0u; h < RP; h++) {
                            for (uint v = 0u; v < NV; v++) acc[(h * NW + w) * NV + v] += p[h] * x[v];
                        }
                    }
                }

                // Merge the lanes: every lane ends up with the pass's M, L and output window.
                for (uint h = 0u; h < RP; h++) {
                    float M = subgroupMax(m[h]);
                    float f = exp(m[h] - M);
                    float L = subgroupAdd(l[h] * f);
                    for (uint k = 0u; k < NW * NV; k++) acc[h * NW * NV + k] = subgroupAdd(acc[h * NW * NV + k] * f);
                    if (t != 0u || h >= rc) continue;
                    uint pa = partialAt(row, kvh, prt, h0 + h);
                    for (uint w = 0u; w < NW; w++) {
                        for (uint v = 0u; v < NV; v++) {
                            vec4 o = acc[(h * NW + w) * NV + v];
                            for (uint k = 0u; k < 4u; k++) {
                                uint dd = (c0 + w) * CH + v * 4u + k;
                                if (dd >= pc.hd) continue;
                                if (nParts == 1u) {
                                    outp[qbase + h * pc.hd + dd] = L > 0.0 ? o[k] / L : 0.0;
                                } else {
                                    part[pa + 2u + dd] = o[k];
                                }
                            }
                        }
                    }
                    if (win == 0u) {
                        if (nParts == 1u) {
                            if (h0 + h >= MAX_GROUP) continue; // metric modes have r <= MAX_GROUP
                            mFin[h0 + h] = M;
                            lFin[h0 + h] = L;
                        } else {
                            part[pa] = M;
                            part[pa + 1u] = L;
                        }
                    }
                }
            }
        }
    }

    if (nParts == 1u) {
        if (metric && gl_WorkGroupID.z == 0u) {
            KV_COMBINE_BARRIER; // mFin, lFin from lane 0
            addMetric(off, ctx, r, qp, t);
        }
    } else if (gl_NumWorkGroups.z == 1u) {
        // This workgroup computed every partition: combine them here (no reduce dispatch).
        KV_COMBINE_BARRIER;
        combineParts(row, kvh, nParts, off, ctx, qp, t);
    }
}
