//go:build !amd64

package cpu

func swigluAVX(o, gate, up *float32, n int, c *[16][8]float32) { panic("no asm") }
