#version 450
// argmax of each row (lowest index on ties), one workgroup per row.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128; // power of two
layout(std430, binding = 0) writeonly buffer Out { int outv[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint rows; uint cols; } pc;

shared float bv[WG];
shared uint bi[WG];

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= pc.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * pc.cols;
    float best = uintBitsToFloat(0xff800000u);
    uint bidx = 0xffffffffu;
    for (uint c = tid; c < pc.cols; c += WG) {
        float v = x[base + c];
        if (bidx == 0xffffffffu || v > best) { best = v; bidx = c; } // c rises: ties keep the first
    }
    bv[tid] = best;
    bi[tid] = bidx;
    for (uint h = WG / 2u; h > 0u; h >>= 1) {
        barrier();
        if (tid < h) {
            float v = bv[tid + h];
            uint i = bi[tid + h];
            if (i != 0xffffffffu && (bi[tid] == 0xffffffffu || v > bv[tid] || (v == bv[tid] && i < bi[tid]))) {
                bv[tid] = v;
                bi[tid] = i;
            }
        }
    }
    if (tid == 0u) outv[row] = int(bi[0]);
}
