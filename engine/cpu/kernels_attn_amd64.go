package cpu

// The fast attention's block kernels (kernels_attn_amd64.s; attn_kernels.go has their Go twins).

//go:noescape
func scoresF32AVX(q, k *float32, stride uintptr, d8, n int, out *float32)

//go:noescape
func scoresF16AVX(q *float32, k *uint16, stride uintptr, d8, n int, out *float32)

//go:noescape
func expShiftAVX(x *float32, n int, m float32, c *[13][8]float32, lanes *[8]float32)

//go:noescape
func sumRowsF32AVX(w, v *float32, stride uintptr, d8, n int, acc *float32)

//go:noescape
func sumRowsF16AVX(w *float32, v *uint16, stride uintptr, d8, n int, acc *float32)
