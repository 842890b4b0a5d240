package gpu

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
)

func TestCopyRowsMatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	c := &cpu.Backend{}
	r := rand.New(rand.NewPCG(5, 5))
	for _, shape := range [][3]int{{1, 1, 3}, {7, 63, 11}, {5, 4097, 9}} {
		n, width, srcRows := shape[0], shape[1], shape[2]
		src := make([]byte, srcRows*width*4)
		for i := 0; i < srcRows*width; i++ {
			binary.LittleEndian.PutUint32(src[i*4:], math.Float32bits(r.Float32()*2-1))
		}
		rows := make([]byte, n*4)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(rows[i*4:], uint32(r.IntN(srcRows)))
		}
		var outs [2][]byte
		// GPU
		gs, _ := g.Alloc(int64(len(src)))
		gr, _ := g.Alloc(int64(len(rows)))
		gd, _ := g.Alloc(int64(n * width * 4))
		g.Write(gs, 0, src)
		g.Write(gr, 0, rows)
		g.Fill(Whole(gd), 0x7fc00001) // poison: NaN
		g.CopyRows(gd, gs, gr, n, width)
		outs[0] = make([]byte, n*width*4)
		if err := g.Read(gd, 0, outs[0]); err != nil {
			t.Fatal(err)
		}
		// CPU
		cs, _ := c.Alloc(int64(len(src)))
		cr, _ := c.Alloc(int64(len(rows)))
		cd, _ := c.Alloc(int64(n * width * 4))
		c.Write(cs, 0, src)
		c.Write(cr, 0, rows)
		c.CopyRows(cd, cs, cr, n, width)
		outs[1] = make([]byte, n*width*4)
		c.Read(cd, 0, outs[1])
		if string(outs[0]) != string(outs[1]) {
			t.Fatalf("shape %v: gpu gather differs from cpu", shape)
		}
	}
}

func TestScatterI32MatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	c := &cpu.Backend{}
	r := rand.New(rand.NewPCG(6, 6))
	for _, shape := range [][2]int{{1, 1}, {7, 63}, {257, 4099}} {
		n, size := shape[0], shape[1]
		init := make([]byte, size*4)
		for i := range init {
			init[i] = byte(r.IntN(256))
		}
		pairs := make([]byte, n*8)
		for i, at := range r.Perm(size)[:n] {
			binary.LittleEndian.PutUint32(pairs[i*8:], uint32(at))
			binary.LittleEndian.PutUint32(pairs[i*8+4:], r.Uint32())
		}
		var outs [2][]byte
		for j, b := range []interface {
			Alloc(int64) (engine.Buf, error)
			Write(engine.Buf, int64, []byte) error
			Read(engine.Buf, int64, []byte) error
			ScatterI32(dst, pairs engine.Buf, n int)
		}{g, c} {
			d, _ := b.Alloc(int64(len(init)))
			p, _ := b.Alloc(int64(len(pairs)))
			b.Write(d, 0, init)
			b.Write(p, 0, pairs)
			b.ScatterI32(d, p, n)
			outs[j] = make([]byte, len(init))
			if err := b.Read(d, 0, outs[j]); err != nil {
				t.Fatal(err)
			}
		}
		if string(outs[0]) != string(outs[1]) {
			t.Fatalf("%d pairs into %d words: gpu scatter differs from cpu", n, size)
		}
		if string(outs[1]) == string(init) {
			t.Fatalf("%d pairs: scatter changed nothing", n)
		}
	}
}

// CopyBytes within one buffer (disjoint ranges, unaligned offsets) and between two, in order with a scatter
// that reads what the copies wrote, on the device and on the CPU.
func TestCopyBytesMatchesCPU(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const size = 4099 * 4
	init := make([]byte, size)
	for i := range init {
		init[i] = byte(r.IntN(256))
	}
	pairs := make([]byte, 8)
	binary.LittleEndian.PutUint32(pairs, 5)
	binary.LittleEndian.PutUint32(pairs[4:], 0xabcdef)
	for _, discrete := range []bool{false, true} {
		g := openForTest(t, Options{Discrete: discrete})
		var outs [2][2][]byte
		for j, b := range []engine.Backend{g, &cpu.Backend{}} {
			a, _ := b.Alloc(size)
			d, _ := b.Alloc(size + 64)
			p, _ := b.Alloc(8)
			b.Write(a, 0, init)
			b.Write(d, 0, make([]byte, size+64))
			b.Write(p, 0, pairs)
			b.CopyBytes(a, 4096, a, 0, 1024) // within one buffer
			b.CopyBytes(a, 9001, a, 5003, 777)
			b.CopyBytes(d, 64, a, 0, size) // across, after the copies above
			b.ScatterI32(d, p, 1)
			b.CopyBytes(a, 0, d, 0, 64) // reads the scatter's word
			for k, x := range []engine.Buf{a, d} {
				outs[j][k] = make([]byte, x.Size())
				if err := b.Read(x, 0, outs[j][k]); err != nil {
					t.Fatal(err)
				}
			}
		}
		for k := range outs[0] {
			if !bytes.Equal(outs[0][k], outs[1][k]) {
				t.Fatalf("discrete=%v buffer %d: gpu copies differ from cpu", discrete, k)
			}
		}
		if binary.LittleEndian.Uint32(outs[1][0][20:]) != 0xabcdef || bytes.Equal(outs[1][1][64:], init) {
			t.Fatal("the copies did not follow each other in order")
		}
	}
}
