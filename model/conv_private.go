package model

import "math"

// Short local names for the conversions in dtype_conv.go, used by the readers and writers.

func f32frombits(u uint32) float32 { return math.Float32frombits(u) }
func halfToF32(h uint16) float32   { return F16ToF32(h) }
func f32ToHalf(f float32) uint16   { return F32ToF16(f) }
func bf16ToF32(h uint16) float32   { return BF16ToF32(h) }
func f32ToBF16(f float32) uint16   { return F32ToBF16(f) }
func fp8E4M3ToF32(v byte) float32  { return FP8E4M3ToF32(v) }
func f32ToFP8E4M3(f float32) byte  { return F32ToFP8E4M3(f) }
