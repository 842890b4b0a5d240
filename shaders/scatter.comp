#version 450
// scatter: dst[pairs[i].x] = pairs[i].y for i < n (int32 words, distinct indices). Applies the block-table
// entries that changed since the last pass.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Dst { int dst[]; };
layout(std430, binding = 1) readonly buffer Pairs { ivec2 pairs[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n) return;
    ivec2 p = pairs[i];
    dst[uint(p.x)] = p.y;
}
