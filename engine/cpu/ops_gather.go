package cpu

import "kvc/engine"

// CopyRows gathers f32 rows: dst[i] = src[rows[i]].
func (c *Backend) CopyRows(dst, src, rows engine.Buf, n, width int) {
	d, s, r := f32(dst), f32(src), i32(rows)
	for i := 0; i < n; i++ {
		copy(d[i*width:(i+1)*width], s[int(r[i])*width:(int(r[i])+1)*width])
	}
}
