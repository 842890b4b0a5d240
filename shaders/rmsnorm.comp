#version 450
// rmsnorm: out[i] = x[i] * (1 / sqrt(mean(x[i]^2) + eps)) * w, one workgroup per row; w is a weight vector
// in any stored dtype (see weights.glsl). out may alias x: each element is read before it is written.
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128; // power of two

layout(std430, binding = 0) readonly buffer Wt { uint w32[]; };
layout(std430, binding = 1) readonly buffer Sc { float sc[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) writeonly buffer Out { float outv[]; };

layout(push_constant) uniform Push {
    uint n;
    uint dim;
    uint dt;
    float eps;
    uint colDiv; // scale index = c / colDiv (a vector has one row)
} pc;

shared float red[WG];

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    if (row >= pc.n) return;
    uint tid = gl_LocalInvocationID.x;
    uint base = row * pc.dim;
    float ss = 0.0;
    for (uint c = tid; c < pc.dim; c += WG) { float v = x[base + c]; ss += v * v; }
    red[tid] = ss;
    for (uint h = WG / 2u; h > 0u; h >>= 1) {
        barrier();
        if (tid < h) red[tid] += red[tid + h];
    }
    barrier();
    float inv = 1.0 / sqrt(red[0] / float(pc.dim) + pc.eps);
    uint eb = dt_bytes(pc.dt);
    for (uint c = tid; c < pc.dim; c += WG) {
        uint off = c * eb;
        float g = decode_elem(pc.dt, w32[off >> 2], off & 3u);
        if (pc.dt == DT_FP8 || pc.dt == DT_Q8) g *= sc[c / pc.colDiv];
        outv[base + c] = x[base + c] * inv * g;
    }
}
