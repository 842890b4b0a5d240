// weights_chunk.glsl: one chunk decoder, included by weights.glsl once per weight buffer with DECODE_FN
// (the function's name) and DECODE_BUF (the buffer's word array) defined: DECODE_FN(base, w) decodes the
// CW words DECODE_BUF[base ...] into the EPV elements w (unscaled).
void DECODE_FN(uint base, out float w[EPV]) {
    for (uint e = 0u; e < CW; e++) {
        uint q = DECODE_BUF[base + e];
#if DT == DT_F32
        w[e] = uintBitsToFloat(q);
#elif DT == DT_F16 || DT == DT_BF16
#if DT == DT_F16
        vec2 h = unpackHalf2x16(q);
#else
        vec2 h = bf16x2(q);
#endif
        w[2u * e] = h.x;
        w[2u * e + 1u] = h.y;
#else
#if DT == DT_FP8
        vec4 v = fp8x4(q);
#else
        vec4 v = q8x4(q);
#endif
        w[4u * e] = v.x;
        w[4u * e + 1u] = v.y;
        w[4u * e + 2u] = v.z;
        w[4u * e + 3u] = v.w;
#endif
    }
}
