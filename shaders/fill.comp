#version 450
// fill: dst[i] = value for i < count. Used to poison outputs in tests and to clear scratch.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Push { uint count; uint value; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i < pc.count) dst[i] = pc.value;
}
