#version 450
// Test shader for array bindings: dst[i] = src[0][i] + src[1][i] + src[2][i].
// Compiled by hand: glslc --target-env=vulkan1.2 -O array_sum.comp -o array_sum.spv
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer Src { uint v[]; } src[3];
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Push { uint count; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i < pc.count) dst[i] = src[0].v[i] + src[1].v[i] + src[2].v[i];
}
