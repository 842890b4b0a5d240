#version 450
// rope: rotates pair i of every head of x [n][heads][headDim] in place by pos * freq_i; pairs (2i, 2i+1)
// (interleaved) or (i, i + headDim/2) (rotate-half).
// The angle is exact to ~1e-9 rad at any position: the host gives each frequency as a 64-bit fixed-point
// fraction of a turn F_i = round(freq_i / 2pi * 2^64), and pos * F_i mod 2^64 (integer arithmetic) is the
// angle's fraction of a turn, so no large f32 angle is ever formed; cos and sin see [-pi, pi).
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Pos { int pos[]; };
layout(std430, binding = 2) readonly buffer Freq { uvec2 turns[]; }; // (low word, high word) of F_i

layout(push_constant) uniform Push {
    uint n;
    uint heads;
    uint headDim;
    uint rotateHalf;
} pc;

void main() {
    uint half_ = pc.headDim / 2u;
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n * pc.heads * half_) return;
    uint pair = i % half_;
    uint th = i / half_; // token * heads + head
    uint t = th / pc.heads;
    int p = pos[t];
    uint ap = uint(abs(p));
    uvec2 f = turns[pair];
    uint hi, lo;
    umulExtended(ap, f.x, hi, lo);
    uint top = hi + ap * f.y; // bits 32..63 of ap * F mod 2^64
    float tr = float(int(top)) * (1.0 / 4294967296.0) + float(lo) * (1.0 / 18446744073709551616.0);
    if (p < 0) tr = -tr;
    float a = tr * 6.28318530717958647692;
    float co = cos(a), si = sin(a);
    uint base = th * pc.headDim;
    uint j0 = pc.rotateHalf != 0u ? base + pair : base + 2u * pair;
    uint j1 = pc.rotateHalf != 0u ? j0 + half_ : j0 + 1u;
    float x0 = x[j0], x1 = x[j1];
    x[j0] = x0 * co - x1 * si;
    x[j1] = x0 * si + x1 * co;
}
