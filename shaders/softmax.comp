#version 450
// softmax of each row in place, one workgroup per row: m = max, e = exp(x - m), x = e / sum(e).
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128; // power of two
layout(std430, binding = 0) buffer X { float x[]; };
layout(push_constant) uniform Push { uint rows; uint cols; } pc;

shared float red[WG];

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= pc.rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * pc.cols;
    float m = uintBitsToFloat(0xff800000u); // -inf
    for (uint c = tid; c < pc.cols; c += WG) m = max(m, x[base + c]);
    red[tid] = m;
    for (uint h = WG / 2u; h > 0u; h >>= 1) {
        barrier();
        if (tid < h) red[tid] = max(red[tid], red[tid + h]);
    }
    barrier();
    m = red[0];
    barrier();
    float s = 0.0;
    for (uint c = tid; c < pc.cols; c += WG) {
        float e = exp(x[base + c] - m);
        x[base + c] = e;
        s += e;
    }
    red[tid] = s;
    for (uint h = WG / 2u; h > 0u; h >>= 1) {
        barrier();
        if (tid < h) red[tid] += red[tid + h];
    }
    barrier();
    float inv = 1.0 / red[0];
    for (uint c = tid; c < pc.cols; c += WG) x[base + c] *= inv;
}
