package cpu

import "kvc/engine"

// CopyRows gathers f32 rows: dst[i] = src[rows[i]].
func (c *Backend) CopyRows(dst, src, rows engine.Buf, n, width int) {
	d, s, r := f32(dst), f32(src), i32(rows)
	for i := 0; i < n; i++ {
		copy(d[i*width:(i+1)*width], s[int(r[i])*width:(int(r[i])+1)*width])
	}
}

// ScatterI32 sets dst[pairs[i][0]] = pairs[i][1].
func (c *Backend) ScatterI32(dst, pairs engine.Buf, n int) {
	d, p := i32(dst), i32(pairs)
	for i := 0; i < n; i++ {
		d[p[2*i]] = p[2*i+1]
	}
}

// CopyBytes copies n bytes of src at srcOff to dst at dstOff.
func (c *Backend) CopyBytes(dst engine.Buf, dstOff int64, src engine.Buf, srcOff, n int64) {
	copy(dst.(*Buf).Bytes()[dstOff:dstOff+n], src.(*Buf).Bytes()[srcOff:srcOff+n])
}
