#version 450
// attention_tiled: prefill attention that loads each K/V slot once per tile of query rows (flash-attention
// style). One workgroup per (KV head, head chunk) x tile of TR consecutive rows: x = kvh * nHC + chunk,
// y = tile (rows from the first non-metric row on). Its NQ = TR * HR queries are TR rows times HR query
// heads of the KV head's group (heads h0 .. h0 + HR of the chunk). Rows of the tile that share a heads
// entry (a prefill chunk: one table offset and context) form a segment; per segment the workgroup walks the
// head's context in stages of KT slots: it stages the K rows in shared memory (f32), scores every query
// against them, stages the V rows in the same memory and updates each query's online softmax (running max
// m, exp-sum l, unnormalized output acc, f32). A slot counts for a query when its position is <= the
// query's (causal within the chunk, compacted heads in any order); a stage no query of the segment can see
// is not loaded.
//
// Thread t serves query qi = t % NQ and owns its vec4s d4 = t / NQ + 4k of the head dims: it keeps that
// part of the (pre-scaled) query and of acc in registers, writes its partial dot per slot to shared
// memory, and every thread of the query sums the four partials in the same order. A query's arithmetic
// therefore depends only on its own data and KT, never on the tile or the rest of the call.
//
// Only rows kvTiledRow selects (kv_attn.glsl: runs of >= tiledMin rows that add no metric); the metric
// is not computed here: rows that add it (decode rows with a metric mode) stay with attention.comp, which
// keeps its exact semantics, and prefill rows get theirs from window_metric.comp as before. The host
// chooses KT so that the shared memory fits the device. Loops over a stage's slots are not unrolled:
// unrolled, lavapipe (tests force this kernel there) took about 4 s of CPU per pipeline to compile.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

#define WG 128
#define NQ 32     // queries per workgroup (WG / 4 threads each)
#define MAX_D 256 // head dim
#define MAX_K (MAX_D / 16) // vec4s of the head a thread owns
layout(local_size_x = WG) in;

layout(constant_id = 3) const uint HR = 1;  // query heads per workgroup (1..NQ); TR = NQ / HR rows
layout(constant_id = 4) const uint KT = 16; // slots per stage (4..WG)
layout(constant_id = 5) const uint HD4 = 2; // vec4s per staged row: ceil(hd / CH) * NV

#define KV_USE_K
#define KV_USE_V
#define KV_USE_META
#define KV_K_READONLY
#define KV_POS_READONLY
#include "kv_defs.glsl"
#include "kv_attn.glsl"
#include "kv_pool.glsl"
#include "kv_chunk.glsl"

const uint TR = NQ / HR;
const uint KD = (HD4 + 3u) / 4u; // vec4s of the head a thread owns (<= MAX_K); constant loops stay small
const uint NONE = 0xffffffffu;

shared vec4 kvs[KT * HD4];     // the stage's K rows, then its V rows (f32, zero past hd)
shared float sp[4u * KT * NQ]; // partial scores: [owner group][slot][query]
shared uint kslot[KT];         // the stage's global slots (NONE: no slot)
shared int kpos[KT];           // their positions
shared int rowOff[NQ], rowCtx[NQ];
shared uint rowTiled[NQ];

// stage copies chunk rows of K (isV false) or V of the stage's slots into kvs.
void stage(bool isV, bool fast, uint t) {
    uint nC = HD4 / NV;
    for (uint e = t; e < KT * nC; e += WG) {
        uint j = e / nC, c = e - j * nC;
        vec4 x[NV];
        for (uint v = 0u; v < NV; v++) x[v] = vec4(0.0);
        uint slot = kslot[j];
        if (slot != NONE) {
            uint a = slot / pc.kSlots;
            loadChunk(isV, a, (slot - a * pc.kSlots) * pc.hd, c, fast, x);
        }
        for (uint v = 0u; v < NV; v++) kvs[j * HD4 + c * NV + v] = x[v];
    }
}

void main() {
    uint t = gl_LocalInvocationID.x;
    uint nHC = (pc.qHeads / pc.kvHeads + HR - 1u) / HR;
    uint kvh = gl_WorkGroupID.x / nHC, h0 = (gl_WorkGroupID.x - kvh * nHC) * HR;
    uint r = pc.qHeads / pc.kvHeads;
    uint first = pc.mode != 0u ? min(pc.metricRows, pc.rows) : 0u;
    uint row0 = first + gl_WorkGroupID.y * TR;
    uint qi = t % NQ, sub = t / NQ;
    uint rr = qi / HR, hh = qi - rr * HR;
    uint row = row0 + rr;
    bool fast = pc.hd % CH == 0u;

    uint nr = row0 < pc.rows ? min(TR, pc.rows - row0) : 0u; // rows in the tile
    if (t < nr) {
        uint hi = ((row0 + t) * pc.kvHeads + kvh) * 2u;
        rowOff[t] = heads[hi];
        rowCtx[t] = heads[hi + 1u];
        rowTiled[t] = kvTiledRow(row0 + t, kvh) ? 1u : 0u;
    }
    // This thread's query: row rr of the tile, head h0 + hh of the group.
    bool mine = rr < nr && h0 + hh < r;
    int qp = mine ? qpos[row] : 0;
    uint qbase = (row * pc.qHeads + kvh * r + h0 + hh) * pc.hd;
    vec4 qr[MAX_K], acc[MAX_K];
    for (uint k = 0u; k < KD; k++) {
        uint d4 = sub + 4u * k;
        vec4 x = vec4(0.0);
        for (uint c = 0u; c < 4u; c++) {
            if (mine && d4 * 4u + c < pc.hd) x[c] = q[qbase + d4 * 4u + c] * pc.scale;
        }
        qr[k] = x;
        acc[k] = vec4(0.0);
    }
    float m = NEG_BIG, l = 0.0;
    barrier();

    for (uint sb = 0u; sb < nr;) {
        uint se = sb + 1u;
        while (se < nr && rowOff[se] == rowOff[sb] && rowCtx[se] == rowCtx[sb]) se++;
        if (rowTiled[sb] == 0u) { sb = se; continue; } // rows of attention.comp
        uint off = uint(max(rowOff[sb], 0)), ctx = uint(max(rowCtx[sb], 0));
        bool act = mine && rr >= sb && rr < se;
        // The latest position a query of the segment can see (uniform: read from qpos, not registers).
        int segMax = -2147483647;
        for (uint i = sb; i < se; i++) segMax = max(segMax, qpos[row0 + i]);

        for (uint s0 = 0u; s0 < ctx; s0 += KT) {
            if (t < KT) {
                uint slot = s0 + t < ctx ? KV_SLOT_OF(tables, off, s0 + t) : KV_NO_SLOT;
                int p = slot != KV_NO_SLOT ? posLoad(slot) : 2147483647;
                kslot[t] = slot != KV_NO_SLOT && p <= segMax ? slot : NONE;
                kpos[t] = p;
            }
            barrier();
            bool any = false;
            [[dont_unroll]] for (uint j = 0u; j < KT; j++) any = any || kslot[j] != NONE;
            if (!any) { barrier(); continue; } // uniform: every thread read the same kslot

            stage(false, fast, t);
            barrier();
            if (act) {
                [[dont_unroll]] for (uint j = 0u; j < KT; j++) {
                    float d = 0.0;
                    for (uint k = 0u; k < KD; k++) {
                        if (sub + 4u * k < HD4) d += dot(qr[k], kvs[j * HD4 + sub + 4u * k]);
                    }
                    sp[(sub * KT + j) * NQ + qi] = d;
                }
            }
            barrier();
            stage(true, fast, t);
            barrier();
            if (act) {
                float mx = NEG_BIG;
                [[dont_unroll]] for (uint j = 0u; j < KT; j++) {
                    if (kslot[j] == NONE || kpos[j] > qp) continue;
                    float s = ((sp[j * NQ + qi] + sp[(KT + j) * NQ + qi]) + sp[(2u * KT + j) * NQ + qi]) + sp[(3u * KT + j) * NQ + qi];
                    mx = max(mx, s);
                }
                if (mx > m) { // else nothing seen here beats the running max: no rescale
                    float alpha = exp(m - mx);
                    l *= alpha;
                    for (uint k = 0u; k < KD; k++) acc[k] *= alpha;
                    m = mx;
                }
                [[dont_unroll]] for (uint j = 0u; j < KT; j++) {
                    if (kslot[j] == NONE || kpos[j] > qp) continue;
                    float s = ((sp[j * NQ + qi] + sp[(KT + j) * NQ + qi]) + sp[(2u * KT + j) * NQ + qi]) + sp[(3u * KT + j) * NQ + qi];
                    float p = exp(s - m);
                    l += p;
                    for (uint k = 0u; k < KD; k++) {
                        if (sub + 4u * k < HD4) acc[k] += p * kvs[j * HD4 + sub + 4u * k];
                    }
                }
            }
            barrier(); // kvs, sp and kslot before the next stage
        }
        sb = se;
    }

    if (!mine || rowTiled[rr] == 0u) return;
    for (uint k = 0u; k < KD; k++) {
        uint d4 = sub + 4u * k;
        for (uint c = 0u; c < 4u; c++) {
            if (d4 * 4u + c < pc.hd) outp[qbase + d4 * 4u + c] = l > 0.0 ? acc[k][c] / l : 0.0;
        }
    }
}
