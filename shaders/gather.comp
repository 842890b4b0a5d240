#version 450
// gather: dst[i][j] = src[rows[i]][j] for i < n, j < width (f32 rows). Picks the rows that need logits.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Dst { float dst[]; };
layout(std430, binding = 1) readonly buffer Src { float src[]; };
layout(std430, binding = 2) readonly buffer Rows { int rows[]; };
layout(push_constant) uniform Push { uint n; uint width; } pc;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (i >= pc.n * pc.width) return;
    uint r = i / pc.width, j = i % pc.width;
    dst[i] = src[uint(rows[r]) * pc.width + j];
}
