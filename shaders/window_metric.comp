#version 450
// window_metric: the prefill observation-window metric (engine.WindowSpec). One workgroup per (KV head,
// sequence): x = KV head, y = sequence. For each window row and each pass of MAX_R query heads of the
// group, two passes over the head's slots (max and sum, then the probabilities; each K row loaded serves
// MAX_R heads) add f(p) into scratch entry h of each slot (s_h lives in the pool's scratch because
// contexts can be far larger than shared memory). Then each slot's s_h are max-pooled over the logical
// slot order (kernel 7, padding 3, padding not contributing), summed over the group and added into the
// metric. The workgroup owns the head's slots, so no atomics are needed.
//
// WM_LANES (window_metric_lanes_*, for CPU devices such as lavapipe): the workgroup is one subgroup, the max
// and the sum come from subgroup operations and there are no workgroup barriers. A CPU device runs a
// workgroup as one SIMD loop and every workgroup barrier costs it a switch per iteration: the tree
// reductions' 18 barriers per window row made a metric over every prompt row cost more than the prefill.
//
// WM_ATTN (window_attention_lanes_*, with WM_LANES; engine.AttentionWindower on CPU devices): also the
// attention output of the window rows kv_window.glsl gives it (Attention skips them). The second pass has
// each query's final max and sum, so its probabilities are exact: it adds p * V row into per-lane
// accumulators (FC 16-byte chunks per query) beside the metric, and the rows need no online-softmax pass
// of their own. The metric is computed exactly as without WM_ATTN (same bits).
//
// WM_SPLIT (window_metric_split_*, GPU workgroups when the (KV head, sequence) pairs are too few to fill
// the device): the head's context is cut into parts, z = part, and three dispatches (PHASE) do the work of
// one workgroup: 1 writes each part's max and exp-sum per window query into the partial buffer; 2 combines
// the parts' (in part order, so every workgroup gets the same bits) and adds f(p) of its own slots into
// their scratch entries (a part owns its slots: still no atomics); 3 pools and adds into the metric, once
// every part's s_h is final (pooling reads neighbours in other parts). The passes over the context are the
// same two per row as the single workgroup's, spread over the parts.
#extension GL_GOOGLE_include_directive : require
#if WM_LANES
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

#define MAX_D 256
#if WM_LANES
// Query heads per pass: min(group, 4), so that a group of 2 does not score and reduce 2 empty heads.
layout(constant_id = 5) const uint MAX_R = 4;
#else
#define MAX_R 4u
#endif
#if WM_SPLIT
#if WM_LANES
#error "WM_SPLIT is for the workgroup kernel (one window row per pass)"
#endif
layout(constant_id = 3) const uint PHASE = 1;
#endif
#define MQ (MAX_D / 4)
#if WM_LANES
layout(constant_id = 3) const uint WG = 8; // the subgroup size
layout(local_size_x_id = 3) in;
#define SYNC_SHARED { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define SYNC_BUFFER { subgroupMemoryBarrierBuffer(); subgroupBarrier(); }
#else
#define WG 128
layout(local_size_x = WG) in;
#define SYNC_SHARED barrier();
#define SYNC_BUFFER { memoryBarrierBuffer(); barrier(); }
#endif

#define KV_USE_K
#if WM_ATTN
#define KV_USE_V
#endif
#define KV_USE_META
#define KV_K_READONLY
#define KV_POS_READONLY
#define KV_USE_SCRATCH
#include "kv_defs.glsl"

layout(std430, binding = 5) readonly buffer QBuf { float q[]; };
layout(std430, binding = 7) readonly buffer SeqsBuf { int seqs[]; };
layout(std430, binding = 8) readonly buffer TablesBuf { int tables[]; };
layout(std430, binding = 9) readonly buffer QPosBuf { int qpos[]; };
#if WM_SPLIT
// Per (sequence, KV head) g, window query j (< qRows), part c (< chunks), query head h: {max, exp-sum}.
layout(std430, binding = 6) buffer PartBuf { vec2 part[]; };
#endif
#if WM_ATTN
layout(std430, binding = 6) writeonly buffer OutBuf { float outp[]; };
layout(std430, binding = 10) readonly buffer HeadsBuf { int heads[]; };
layout(constant_id = 4) const uint FC = 2; // 16-byte chunks of a head row (ceil(hd / CH))
#include "kv_window.glsl"
#endif

layout(push_constant) uniform Push {
    KV_POOL_PUSH
    uint qHeads;
    uint kvHeads;
    float scale;
    uint squared;
    uint pool7;
    uint qRows; // rows in q and in the position buffer: window rows past them are skipped
    int metricBuffer; // a row adds only to slots at least buffer positions before it (engine.WindowSpec.Buffer)
    uint rows;       // WM_ATTN: the attention's rows (AttnHeads.Rows)
    uint metricRows; // WM_ATTN: rows [0, metricRows) add a decode metric (0 without a metric mode)
    uint nWin;       // WM_ATTN: the windows in seqs
    uint chunks;     // WM_SPLIT: the grid's parts per head (z)
    uint partMin;    // WM_SPLIT: the fewest slots per part (a short context takes fewer parts)
} pc;

#include "kv_pool.glsl"

// A pass takes RB window rows: each K chunk and each slot's scratch entry is loaded once for them. Lanes
// take 4 (lavapipe loops over the lanes for every buffer access, so accesses, not arithmetic, set the
// cost); workgroups take one.
#if WM_LANES
#define RB 4u
#else
#define RB 1u
#endif
#define NQ (RB * MAX_R)
shared vec4 qs[NQ * MQ];
#if !WM_LANES
shared float red[NQ * WG];
#endif

// K rows are read in 16-byte chunks (CH dims = NV vec4s) through a vector view of the arenas when hd is a
// multiple of CH (one load per chunk: lavapipe loops over lanes for every load), else element by element.
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
#if WM_ATTN
layout(std430, binding = 1) readonly buffer VArenaVec { KV_VEC d[]; } Vv[KV_ARENAS];
#endif

#if KV_F16
#define CHUNK_FAST(ARR, A) { uvec4 w = ARR[A].d[base / CH + c]; \
        x[0] = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y)); x[1] = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w)); }
#else
#define CHUNK_FAST(ARR, A) { x[0] = ARR[A].d[base / CH + c]; }
#endif

// Chunk c of the K row (or with isV the V row) at element base of arena a; dims past hd read as 0.
void loadChunk(bool isV, uint a, uint base, uint c, bool fast, out vec4 x[NV]) {
    if (fast) {
#if WM_ATTN
        if (isV) {
#define S(A) CHUNK_FAST(Vv, A)
            KV_SWITCH(a, S)
#undef S
            return;
        }
#endif
#define S(A) CHUNK_FAST(Kv, A)
        KV_SWITCH(a, S)
#undef S
        return;
    }
    for (uint v = 0u; v < NV; v++) {
        for (uint k = 0u; k < 4u; k++) {
            uint e = c * CH + v * 4u + k;
            float y = 0.0;
            if (e < pc.hd) {
#if WM_ATTN
                if (isV) {
                    y = vElem(a, base + e);
                    x[v][k] = y;
                    continue;
                }
#endif
#if KV_F16
                y = unpackHalf2x16(kWord(a, (base + e) >> 1u))[(base + e) & 1u];
#else
                y = kWord(a, base + e);
#endif
            }
            x[v][k] = y;
        }
    }
}

// The pass's per-query state, private to the invocation (module scope: an array sized by a specialization
// constant cannot be a function parameter): the scores of a slot, each lane's running max and exp-sum,
// and the workgroup's max and exp-sum.
float s[NQ], mt[NQ], lt[NQ], M[NQ], L[NQ];

// scores: s[h] = dot(qs[h], K row of slot) for h < NQ (qs is 0 for heads and rows past the pass).
void scores(uint slot) {
    uint a = slot / pc.kSlots, base = (slot - a * pc.kSlots) * pc.hd;
    for (uint h = 0u; h < NQ; h++) s[h] = 0.0;
    uint nC = (pc.hd + CH - 1u) / CH;
    bool fast = pc.hd % CH == 0u;
    for (uint c = 0u; c < nC; c++) {
        vec4 x[NV];
        loadChunk(false, a, base, c, fast, x);
        for (uint h = 0u; h < NQ; h++) {
            for (uint v = 0u; v < NV; v++) s[h] += dot(x[v], qs[h * MQ + c * NV + v]);
        }
    }
}

// reduceML: the workgroup's max M and exp-sum L of each query's running (mt, lt).
#if WM_LANES
void reduceML(uint t) {
    for (uint k = 0u; k < NQ; k++) {
        M[k] = subgroupMax(mt[k]);
        L[k] = subgroupAdd(lt[k] * exp(mt[k] - M[k]));
    }
}
#else
void reduceMax(uint t) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < NQ; h++) red[h * WG + t] = max(red[h * WG + t], red[h * WG + t + s]);
        }
        barrier();
    }
}
void reduceSum(uint t) {
    for (uint s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            for (uint h = 0u; h < NQ; h++) red[h * WG + t] += red[h * WG + t + s];
        }
        barrier();
    }
}

void reduceML(uint t) {
    for (uint k = 0u; k < NQ; k++) red[k * WG + t] = mt[k];
    barrier();
    reduceMax(t);
    for (uint k = 0u; k < NQ; k++) M[k] = red[k * WG];
    barrier();
    for (uint k = 0u; k < NQ; k++) red[k * WG + t] = lt[k] * exp(mt[k] - M[k]);
    barrier();
    reduceSum(t);
    for (uint k = 0u; k < NQ; k++) L[k] = red[k * WG];
}
#endif

void main() {
    uint kvh = gl_WorkGroupID.x, seq = gl_WorkGroupID.y;
    uint t = gl_LocalInvocationID.x;
    uint si = (seq * pc.kvHeads + kvh) * 4u;
    uint off = uint(max(seqs[si], 0));
    uint ctx = uint(max(seqs[si + 1u], 0));
    uint first = uint(max(seqs[si + 2u], 0));
    uint nw = uint(max(seqs[si + 3u], 0));
    if (first >= pc.qRows) nw = 0u;
    nw = min(nw, pc.qRows - min(first, pc.qRows));
    uint r = pc.qHeads / pc.kvHeads;
    // The slots [i0, i1) of the head this workgroup owns: all of them, or with WM_SPLIT part pz of nParts
    // (parts of equal length but the last; with more parts than slots, or an uneven cut, some are empty).
    uint i0 = 0u, i1 = ctx;
#if WM_SPLIT
    uint pz = gl_WorkGroupID.z;
    uint nParts = min(pc.chunks, max((ctx + pc.partMin - 1u) / pc.partMin, 1u));
    if (pz >= nParts) return; // uniform: before any barrier
    uint plen = (ctx + nParts - 1u) / nParts;
    i0 = min(pz * plen, ctx);
    i1 = min(i0 + plen, ctx);
    uint pbase = (seq * pc.kvHeads + kvh) * pc.qRows; // the head's first window query in part
    if (PHASE == 3u) nw = 0u; // straight to the pooling
#endif

#if WM_SPLIT
    if (PHASE == 2u)
#endif
    for (uint i = i0 + t; i < i1; i += WG) {
        uint slot = KV_SLOT_OF(tables, off, i);
        if (slot == KV_NO_SLOT) continue;
        for (uint h = 0u; h < r; h++) scratchStore(slot, h, 0.0);
    }
    // Query j * MAX_R + h of a pass is head h0 + h of window row w0 + j.
    for (uint w0 = first; w0 < first + nw; w0 += RB) {
        uint rb = min(RB, first + nw - w0);
        int qp[RB];
        int qmax = -1;
        for (uint j = 0u; j < RB; j++) {
            qp[j] = j < rb ? qpos[w0 + j] : -1;
            qmax = max(qmax, qp[j]);
        }
#if WM_ATTN
        bool own[RB]; // rows whose output this workgroup writes
        for (uint j = 0u; j < RB; j++) {
            own[j] = j < rb && w0 + j < pc.rows && kvWindowOf(w0 + j, kvh, pc.nWin, pc.kvHeads, pc.metricRows) == int(seq);
        }
#endif
        for (uint h0 = 0u; h0 < r; h0 += MAX_R) {
            uint rc = min(MAX_R, r - h0);
            for (uint e = t; e < NQ * MQ; e += WG) {
                uint jh = e / MQ, d4 = (e - jh * MQ) * 4u;
                uint j = jh / MAX_R, h = jh - j * MAX_R;
                uint qbase = ((w0 + j) * pc.qHeads + kvh * r + h0 + h) * pc.hd;
                vec4 v = vec4(0.0);
                for (uint c = 0u; c < 4u; c++) {
                    if (j < rb && h < rc && d4 + c < pc.hd) v[c] = q[qbase + d4 + c] * pc.scale;
                }
                qs[e] = v;
            }
            SYNC_SHARED
#if WM_SPLIT
          if (PHASE == 1u) {
#endif
            for (uint k = 0u; k < NQ; k++) { mt[k] = NEG_BIG; lt[k] = 0.0; }
            for (uint i = i0 + t; i < i1; i += WG) {
                uint slot = KV_SLOT_OF(tables, off, i);
                if (slot == KV_NO_SLOT) continue;
                int sp = posLoad(slot);
                if (sp > qmax) continue;
                scores(slot);
                for (uint k = 0u; k < NQ; k++) {
                    if (sp > qp[k / MAX_R]) continue;
                    float mn = max(mt[k], s[k]);
                    lt[k] = lt[k] * exp(mt[k] - mn) + exp(s[k] - mn);
                    mt[k] = mn;
                }
            }
            reduceML(t);
#if WM_SPLIT
            if (t == 0u) {
                for (uint h = 0u; h < rc; h++) {
                    part[((pbase + w0 - first) * pc.chunks + pz) * r + h0 + h] = vec2(M[h], L[h]);
                }
            }
          } else {
            // This part's M and L: the combination of every part's, in part order.
            for (uint h = 0u; h < rc; h++) {
                uint pi = (pbase + w0 - first) * pc.chunks * r + h0 + h;
                float mx = NEG_BIG;
                for (uint e = 0u; e < nParts; e++) mx = max(mx, part[pi + e * r].x);
                float l = 0.0;
                for (uint e = 0u; e < nParts; e++) {
                    vec2 ml = part[pi + e * r];
                    l += ml.y * exp(ml.x - mx);
                }
                M[h] = mx;
                L[h] = l;
            }
          }
          if (PHASE == 2u) {
#endif
#if WM_ATTN
            vec4 acc[NQ * FC * NV]; // query k's sum of p * V row, chunk by chunk
            for (uint k = 0u; k < NQ * FC * NV; k++) acc[k] = vec4(0.0);
#endif
            for (uint i = i0 + t; i < i1; i += WG) {
                uint slot = KV_SLOT_OF(tables, off, i);
                if (slot == KV_NO_SLOT) continue;
                int sp = posLoad(slot);
                if (sp > qmax) continue;
                scores(slot);
#if WM_ATTN
                vec4 vr[FC * NV];
                {
                    uint a = slot / pc.kSlots, base = (slot - a * pc.kSlots) * pc.hd;
                    bool fast = pc.hd % CH == 0u;
                    for (uint c = 0u; c < FC; c++) {
                        vec4 x[NV];
                        loadChunk(true, a, base, c, fast, x);
                        for (uint v = 0u; v < NV; v++) vr[c * NV + v] = x[v];
                    }
                }
                // Constant bounds, so that the loops unroll and acc is indexed by constants (a dynamic index
                // into a private array costs a CPU device a gather per lane).
                for (uint h = 0u; h < MAX_R; h++) {
                    if (h >= rc) break;
                    float add = 0.0;
                    for (uint j = 0u; j < RB; j++) {
                        uint k = j * MAX_R + h;
                        if (j >= rb || sp > qp[j] || L[k] <= 0.0) continue; // hidden from the row
                        float pr = exp(s[k] - M[k]) / L[k];
                        for (uint c = 0u; c < FC * NV; c++) acc[k * FC * NV + c] += pr * vr[c];
                        if (sp > qp[j] - pc.metricBuffer) continue;
#else
                for (uint h = 0u; h < rc; h++) {
                    float add = 0.0;
                    for (uint j = 0u; j < rb; j++) {
                        uint k = j * MAX_R + h;
                        if (sp > qp[j] - pc.metricBuffer || L[k] <= 0.0) continue;
                        float pr = exp(s[k] - M[k]) / L[k];
#endif
                        add += pc.squared != 0u ? pr * pr : pr;
                    }
                    scratchStore(slot, h0 + h, scratchLoad(slot, h0 + h) + add);
                }
            }
#if WM_SPLIT
          }
#endif
#if WM_ATTN
            // Merge the lanes' accumulators; lane c % WG writes chunk c.
            for (uint k = 0u; k < NQ; k++) {
                uint j = k / MAX_R, h = k - j * MAX_R;
                if (!own[j] || h >= rc) continue; // uniform: own and rc are the same in every lane
                uint ob = ((w0 + j) * pc.qHeads + kvh * r + h0 + h) * pc.hd;
                for (uint c = 0u; c < FC * NV; c++) {
                    vec4 o = subgroupAdd(acc[k * FC * NV + c]);
                    if (c % WG != t) continue;
                    for (uint e = 0u; e < 4u; e++) {
                        uint dd = (c / NV) * CH + (c % NV) * 4u + e;
                        if (dd < pc.hd) outp[ob + dd] = o[e];
                    }
                }
            }
#endif
            SYNC_SHARED // qs and red are rewritten by the next pass
        }
    }
#if WM_SPLIT
    if (PHASE != 3u) return; // uniform
#endif
    SYNC_BUFFER // every s_h is final before the pool reads the neighbours
    for (uint i = i0 + t; i < i1; i += WG) {
        uint slot = KV_SLOT_OF(tables, off, i);
        if (slot == KV_NO_SLOT) continue;
        uint nb[7];
        uint lo = max(i, 3u) - 3u, hi = min(ctx - 1u, i + 3u);
        for (uint k = 0u; k < 7u; k++) {
            uint j = lo + k;
            nb[k] = (pc.pool7 != 0u && j <= hi) ? KV_SLOT_OF(tables, off, j) : KV_NO_SLOT;
        }
        float add = 0.0;
        for (uint h = 0u; h < r; h++) {
            float v = scratchLoad(slot, h);
            for (uint k = 0u; k < 7u; k++) {
                if (nb[k] != KV_NO_SLOT) v = max(v, scratchLoad(nb[k], h));
            }
            add += v;
        }
        metricStore(slot, metricLoad(slot) + add);
    }
}
