package kvpages

import "fmt"

// Seq is one sequence's cache: a block table and a context length for every (layer, KV head).
// Head index hd = layer*KVHeads + kvHead.
type Seq struct {
	Layers, KVHeads int
	Tables          [][]int32 // [hd] physical block ids, logical order
	Ctx             []int     // [hd] slots in use
	NextPos         int       // position of the next token to be appended
	// Edits counts the changes to Tables other than appends (release, compaction): a copy of the tables
	// kept elsewhere (the engine's device tables) is current after appends alone while Edits is unchanged.
	Edits int
}

// NewSeq makes an empty sequence.
func NewSeq(layers, kvHeads int) *Seq {
	n := layers * kvHeads
	return &Seq{Layers: layers, KVHeads: kvHeads, Tables: make([][]int32, n), Ctx: make([]int, n)}
}

// Blocks is the number of blocks the sequence holds.
func (s *Seq) Blocks() int {
	n := 0
	for _, t := range s.Tables {
		n += len(t)
	}
	return n
}

// BlocksNeeded is how many new blocks appending n tokens to every head takes.
func (s *Seq) BlocksNeeded(p *Pool, n int) int {
	b := p.BlockSize()
	need := 0
	for hd, t := range s.Tables {
		want := (s.Ctx[hd] + n + b - 1) / b
		if want > len(t) {
			need += want - len(t)
		}
	}
	return need
}

// Append reserves n new slots at the end of every head (allocating blocks only for heads that cross a
// block boundary) and returns their global slot ids, [layer][token][kvHead] flattened, and advances
// Ctx and NextPos. On ErrNoBlocks nothing changes.
func (s *Seq) Append(p *Pool, n int) ([]int32, error) {
	if need := s.BlocksNeeded(p, n); need > p.Free() {
		return nil, fmt.Errorf("%w: need %d blocks, %d free", ErrNoBlocks, need, p.Free())
	}
	b := p.BlockSize()
	slots := make([]int32, s.Layers*n*s.KVHeads)
	for hd := range s.Tables {
		l, h := hd/s.KVHeads, hd%s.KVHeads
		for j := 0; j < n; j++ {
			i := s.Ctx[hd] + j
			if i/b >= len(s.Tables[hd]) {
				id, _ := p.Alloc() // cannot fail: counted above
				s.Tables[hd] = append(s.Tables[hd], id)
			}
			slots[(l*n+j)*s.KVHeads+h] = s.Tables[hd][i/b]*int32(b) + int32(i%b)
		}
		s.Ctx[hd] += n
	}
	s.NextPos += n
	return slots, nil
}

// ReleaseAll returns every block of the sequence to the pool.
func (s *Seq) ReleaseAll(p *Pool) {
	for hd, t := range s.Tables {
		for _, id := range t {
			p.Release(id)
		}
		s.Tables[hd] = nil
		s.Ctx[hd] = 0
	}
	s.Edits++
}
