package engine

import (
	"fmt"
	"math/bits"

	"kvc/kvpages"
)

// blockTables keeps every sequence's block tables on the device and updates them by deltas: each
// (sequence, layer, KV head) owns a region of the device table buffer (a power-of-two number of entries,
// reallocated at twice the size when the table outgrows it), and a pass writes only the entries that
// changed since the last one (a new block appended; the entries compaction changed). A region that moves
// and a buffer that grows are copied on the device, so the upload per decode step grows with the blocks
// appended, never with the context.
type blockTables struct {
	b      Backend
	buf    Buf     // int32 [cap]
	host   []int32 // what the device buffer holds (same layout)
	used   int     // entries handed out (regions come from the free lists or from [used, cap))
	free   map[int][]int32
	seqs   map[*kvpages.Seq]*seqTables
	deltas []int32 // (index, value) pairs of this pass
	moves  []int32 // (from, to, entries) region copies of this pass, in order, before the deltas
	dbuf   Buf     // device copy of deltas
	dcap   int     // pairs dbuf holds
}

// seqTables are one sequence's regions, per head hd = layer*KVHeads + head.
type seqTables struct {
	off, cap, n []int32 // region offset and size; entries [0, n) of the region are current
	edits       int     // the sequence's Edits when its entries were last compared
}

const minRegion = 4 // entries

func newBlockTables(b Backend) *blockTables {
	return &blockTables{b: b, free: map[int][]int32{}, seqs: map[*kvpages.Seq]*seqTables{}}
}

func (t *blockTables) close() {
	for _, x := range []Buf{t.buf, t.dbuf} {
		if x != nil {
			t.b.Free(x)
		}
	}
}

// forget releases a sequence's regions (its table entries are no longer needed).
func (t *blockTables) forget(s *kvpages.Seq) {
	st := t.seqs[s]
	if st == nil {
		return
	}
	for hd := range st.off {
		t.release(st.off[hd], st.cap[hd])
	}
	delete(t.seqs, s)
}

func (t *blockTables) release(off, size int32) {
	t.free[int(size)] = append(t.free[int(size)], off)
}

// region returns the offset of a free region of size entries (a power of two), growing the host mirror;
// the device buffer follows in flush.
func (t *blockTables) region(size int) int32 {
	if l := t.free[size]; len(l) > 0 {
		off := l[len(l)-1]
		t.free[size] = l[:len(l)-1]
		return off
	}
	off := t.used
	t.used += size
	if t.used > len(t.host) {
		t.host = append(t.host, make([]int32, t.used-len(t.host))...)
	}
	return int32(off)
}

// sync brings the regions of the items' sequences up to date on the host side and queues the changed
// entries; it returns the table offset of every item's heads, [item][hd].
func (t *blockTables) sync(items []Item) [][]int32 {
	// Sequences released (by ReleaseAll: every sequence with a token holds a block in each head) and not in
	// this pass give their regions back first; forgetting is always safe, a sequence that comes back is
	// written anew.
	inPass := make(map[*kvpages.Seq]bool, len(items))
	for _, it := range items {
		inPass[it.Seq] = true
	}
	if len(t.seqs) > len(items) {
		for s := range t.seqs {
			if !inPass[s] && (len(s.Tables) == 0 || len(s.Tables[0]) == 0) {
				t.forget(s)
			}
		}
	}
	offs := make([][]int32, len(items))
	t.deltas, t.moves = t.deltas[:0], t.moves[:0]
	for i, it := range items {
		s := it.Seq
		st := t.seqs[s]
		if st == nil {
			n := len(s.Tables)
			st = &seqTables{off: make([]int32, n), cap: make([]int32, n), n: make([]int32, n), edits: s.Edits}
			for hd := range st.off {
				st.off[hd], st.cap[hd] = t.region(minRegion), minRegion
			}
			t.seqs[s] = st
		}
		for hd, tab := range s.Tables {
			if len(tab) > int(st.cap[hd]) {
				// The current entries follow on the device. A region released here can be handed out
				// later in this pass, but its copy is queued first, so copies in order read it intact.
				size := 1 << bits.Len(uint(len(tab)-1))
				old, n := st.off[hd], st.n[hd]
				t.release(old, st.cap[hd])
				st.off[hd], st.cap[hd] = t.region(size), int32(size)
				if n > 0 {
					copy(t.host[st.off[hd]:st.off[hd]+n], t.host[old:old+n])
					t.moves = append(t.moves, old, st.off[hd], n)
				}
			}
			from := int(st.n[hd])
			if st.edits != s.Edits || len(tab) < from {
				from = 0
			}
			base := int(st.off[hd])
			for j := from; j < len(tab); j++ {
				if t.host[base+j] != tab[j] || j >= int(st.n[hd]) {
					t.host[base+j] = tab[j]
					t.deltas = append(t.deltas, int32(base+j), tab[j])
				}
			}
			st.n[hd] = int32(len(tab))
		}
		st.edits = s.Edits
		offs[i] = st.off
	}
	return offs
}

// flush records the pass's table changes: the buffer's growth (a device copy of its contents), the region
// moves, then the changed entries. When it fails, the host mirror no longer says what the device holds:
// every region is forgotten, so the next pass writes each of its sequences' tables anew.
func (t *blockTables) flush() error {
	err := t.record()
	if err != nil {
		t.seqs, t.free, t.used, t.host = map[*kvpages.Seq]*seqTables{}, map[int][]int32{}, 0, t.host[:0]
	}
	return err
}

func (t *blockTables) record() error {
	if t.buf == nil || int64(len(t.host))*4 > t.buf.Size() {
		c := max(2*len(t.host), 1024)
		buf, err := t.b.Alloc(int64(c) * 4)
		if err != nil {
			return fmt.Errorf("engine: block table buffer of %d entries: %w", c, err)
		}
		if t.buf != nil {
			t.b.CopyBytes(buf, 0, t.buf, 0, t.buf.Size())
			t.b.Free(t.buf)
		}
		t.buf = buf
	}
	for i := 0; i < len(t.moves); i += 3 {
		from, to, n := int64(t.moves[i]), int64(t.moves[i+1]), int64(t.moves[i+2])
		t.b.CopyBytes(t.buf, 4*to, t.buf, 4*from, 4*n)
	}
	n := len(t.deltas) / 2
	if n == 0 {
		return nil
	}
	if n > t.dcap {
		if t.dbuf != nil {
			t.b.Free(t.dbuf)
		}
		t.dcap = max(2*n, 256)
		var err error
		if t.dbuf, err = t.b.Alloc(int64(t.dcap) * 8); err != nil {
			t.dbuf, t.dcap = nil, 0
			return fmt.Errorf("engine: block table deltas of %d entries: %w", n, err)
		}
	}
	if err := t.b.Write(t.dbuf, 0, i32bytes(t.deltas)); err != nil {
		return err
	}
	t.b.ScatterI32(t.buf, t.dbuf, n)
	return nil
}
