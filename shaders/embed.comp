#version 450
// embed: out[i][c] = W[ids[i]][c] (decoded, times its scale) for the ids that fall in this weight chunk;
// an id outside [0, totalRows) gives NaN (written by the dispatch of chunk 0 only).
#extension GL_GOOGLE_include_directive : require
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer Wt { uint w32[]; };
layout(std430, binding = 1) readonly buffer Sc { float sc[]; };
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };
layout(std430, binding = 3) writeonly buffer Out { float outv[]; };

layout(push_constant) uniform Push {
    uint n;
    uint cols;
    uint rowBytes;
    uint rowBase;   // first row of this chunk
    uint rows;      // rows in this chunk
    uint totalRows;
    uint dt;
    uint rowDiv;
    uint colDiv;
    uint scaleStride;
    uint writeInvalid;
} pc;

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n * pc.cols) return;
    uint t = i / pc.cols, c = i % pc.cols;
    int id = ids[t];
    if (id < 0 || uint(id) >= pc.totalRows) {
        if (pc.writeInvalid != 0u) outv[i] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    uint r = uint(id) - pc.rowBase; // wraps around for ids below the chunk
    if (uint(id) < pc.rowBase || r >= pc.rows) return;
    uint off = r * pc.rowBytes + c * dt_bytes(pc.dt);
    float v = decode_elem(pc.dt, w32[off >> 2], off & 3u);
    if (pc.dt == DT_FP8 || pc.dt == DT_Q8) v *= sc[(r / pc.rowDiv) * pc.scaleStride + c / pc.colDiv];
    outv[i] = v;
}
