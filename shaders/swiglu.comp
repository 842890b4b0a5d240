#version 450
// swiglu: out = gate / (1 + exp(-gate)) * up, elementwise; out may alias gate.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Out { float outv[]; };
layout(std430, binding = 1) readonly buffer G { float g[]; };
layout(std430, binding = 2) readonly buffer U { float u[]; };
layout(push_constant) uniform Push { uint count; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.count) return;
    float v = g[i];
    outv[i] = v / (1.0 + exp(-v)) * u[i];
}
