package gpu

import "kvc/engine"

// CopyRows gathers f32 rows: dst[i] = src[rows[i]], i < n.
func (b *Backend) CopyRows(dst, src, rows engine.Buf, n, width int) {
	if n <= 0 || width <= 0 || !b.check("CopyRows", "dst", dst, int64(n*width*4)) ||
		!b.check("CopyRows", "rows", rows, int64(n*4)) || !b.check("CopyRows", "src", src, int64(width*4)) {
		return
	}
	if k := opKernel[gatherPush](b, "gather", wgElem, 3); k != nil {
		b.Dispatch(k, b.Groups1D(n*width, wgElem), PushBytes(&gatherPush{N: uint32(n), Width: uint32(width)}), []Range{Whole(dst)}, []Range{Whole(src)}, []Range{Whole(rows)})
	}
}

// ScatterI32 sets dst[pairs[i][0]] = pairs[i][1], int32 words, i < n.
func (b *Backend) ScatterI32(dst, pairs engine.Buf, n int) {
	if n <= 0 || !b.check("ScatterI32", "pairs", pairs, int64(n*8)) || !b.check("ScatterI32", "dst", dst, 4) {
		return
	}
	if k := opKernel[scatterPush](b, "scatter", wgElem, 2); k != nil {
		b.Dispatch(k, b.Groups1D(n, wgElem), PushBytes(&scatterPush{N: uint32(n)}), []Range{Whole(dst)}, []Range{Whole(pairs)})
	}
}

// CopyBytes records a transfer copy of n bytes of src at srcOff into dst at dstOff.
func (b *Backend) CopyBytes(dst engine.Buf, dstOff int64, src engine.Buf, srcOff, n int64) {
	if n <= 0 { // a Range of length 0 would mean "to the end"
		return
	}
	d, err := b.asBuffer(dst, "CopyBytes")
	if err == nil {
		var s *Buffer
		if s, err = b.asBuffer(src, "CopyBytes"); err == nil {
			b.Copy(Range{d, dstOff, n}, Range{s, srcOff, n})
			return
		}
	}
	b.Fail(err)
}
