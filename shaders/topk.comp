#version 450
// topk: the k largest values of each row, descending, the lower index first among equal values (k <= 256).
// One workgroup per row, no sorting of the row: a radix select (4 passes of 8 bits over an order-preserving
// uint key) finds the k-th largest key T; when more elements equal T than are needed, a second radix select
// over their indices finds the largest index to keep; one more pass collects the k winners, and a bitonic
// sort in shared memory orders them by (key descending, index ascending). -0 ranks as +0 (as in x > y).
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
#define MAXK 256u

layout(std430, binding = 0) writeonly buffer Idx { int idxv[]; };
layout(std430, binding = 1) writeonly buffer Val { float valv[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint rows; uint cols; uint k; uint kpad; } pc; // kpad: pow2 >= k

shared uint hist[256];
shared uint shPrefix, shRemain, shEq, shN;
shared uint skey[MAXK];
shared uint sidx[MAXK];

uint okey(float v) {
    uint b = floatBitsToUint(v);
    if (b == 0x80000000u) b = 0u;
    return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}

// sorts first: larger key, then lower index
bool before(uint i, uint j) { return skey[i] > skey[j] || (skey[i] == skey[j] && sidx[i] < sidx[j]); }

void clearHist(uint tid) {
    for (uint i = tid; i < 256u; i += WG) hist[i] = 0u;
    barrier();
}

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= pc.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * pc.cols;

    // 1. the k-th largest key, most significant digit first
    uint prefix = 0u, mask = 0u, remain = pc.k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        clearHist(tid);
        for (uint c = tid; c < pc.cols; c += WG) {
            uint kk = okey(x[base + c]);
            if ((kk & mask) == prefix) atomicAdd(hist[(kk >> shift) & 255u], 1u);
        }
        barrier();
        if (tid == 0u) {
            uint cum = 0u, d = 255u;
            while (d > 0u && cum + hist[d] < remain) { cum += hist[d]; d--; }
            shPrefix = prefix | (d << shift);
            shRemain = remain - cum;
            shEq = hist[d];
        }
        barrier();
        prefix = shPrefix;
        remain = shRemain;
        mask |= 255u << shift;
        barrier();
    }
    uint T = prefix;
    // elements with key > T: k - remain; with key == T: shEq, of which the remain lowest indices are kept
    uint ilim = 0xffffffffu;
    if (shEq > remain) {
        uint ipre = 0u, imask = 0u, irem = remain;
        for (int shift = 24; shift >= 0; shift -= 8) {
            clearHist(tid);
            for (uint c = tid; c < pc.cols; c += WG)
                if ((c & imask) == ipre && okey(x[base + c]) == T) atomicAdd(hist[(c >> shift) & 255u], 1u);
            barrier();
            if (tid == 0u) {
                uint cum = 0u, d = 0u;
                while (d < 255u && cum + hist[d] < irem) { cum += hist[d]; d++; }
                shPrefix = ipre | (d << shift);
                shRemain = irem - cum;
            }
            barrier();
            ipre = shPrefix;
            irem = shRemain;
            imask |= 255u << shift;
            barrier();
        }
        ilim = ipre;
    }

    // 2. collect exactly k winners
    if (tid == 0u) shN = 0u;
    for (uint i = pc.k + tid; i < pc.kpad; i += WG) { skey[i] = 0u; sidx[i] = 0xffffffffu; }
    barrier();
    for (uint c = tid; c < pc.cols; c += WG) {
        uint kk = okey(x[base + c]);
        if (kk > T || (kk == T && c <= ilim)) {
            uint s = atomicAdd(shN, 1u);
            skey[s] = kk;
            sidx[s] = c;
        }
    }
    barrier();

    // 3. bitonic sort of kpad entries
    for (uint size = 2u; size <= pc.kpad; size <<= 1) {
        for (uint stride = size >> 1; stride > 0u; stride >>= 1) {
            for (uint i = tid; i < pc.kpad; i += WG) {
                uint j = i ^ stride;
                if (j > i) {
                    bool up = (i & size) == 0u;
                    if (up ? before(j, i) : before(i, j)) {
                        uint tk = skey[i], ti = sidx[i];
                        skey[i] = skey[j]; sidx[i] = sidx[j];
                        skey[j] = tk; sidx[j] = ti;
                    }
                }
            }
            barrier();
        }
    }
    for (uint i = tid; i < pc.k; i += WG) {
        idxv[row * pc.k + i] = int(sidx[i]);
        valv[row * pc.k + i] = x[base + sidx[i]];
    }
}
