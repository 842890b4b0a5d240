package cpu

// The fast SwiGLU kernel (kernels_swiglu_amd64.s; swiglu_kernels.go has its Go twin).

//go:noescape
func swigluAVX(o, gate, up *float32, n int, c *[16][8]float32)
