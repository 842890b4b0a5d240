package tokenizer

import (
	"container/heap"
	"strings"
)

// scoreEncoder is the score-greedy BPE of llama2.c's run.c (and SentencePiece's BPE, and llama.cpp's
// "llama" vocab): split the text into UTF-8 characters, look each up (bytes as byte-fallback tokens
// when it is missing), then repeatedly merge the adjacent pair whose concatenation is a token with the
// highest score, the leftmost on ties, until no pair is a token.
//
// run.c rescans all pairs after every merge (O(n^2)); a heap keyed by (score, position) with stale
// entries dropped picks the same pair each step, because merged symbols keep their left position and so
// positions stay in text order.
type scoreEncoder struct {
	v        *vocab
	scores   []float32
	space    string           // what a space in the text becomes: " " (llama2.c) or "▁" (GGUF)
	prefix   prefixMode       // when the dummy prefix space is added
	minScore float32          // pairs must score above this (run.c starts its search at -1e10)
	byteID   func(b byte) int // byte-fallback id of a raw byte, -1: dropped
	// leadLength splits characters by the length their lead byte announces (llama.cpp) instead of
	// run.c's lead-plus-continuation-bytes rule. They differ only on malformed UTF-8, and for "▁"
	// text run.c's rule would glue a stray continuation byte onto the "▁".
	leadLength bool
}

type prefixMode int

const (
	prefixNever  prefixMode = iota
	prefixFirst             // only for text at the very start of the input
	prefixAlways            // for every run of text, also after a special token
)

func (e *scoreEncoder) encode(out []int, text string, first bool) []int {
	if text == "" {
		return out
	}
	if e.prefix == prefixAlways || (e.prefix == prefixFirst && first) {
		text = " " + text
	}
	if e.space != " " {
		text = strings.ReplaceAll(text, " ", e.space)
	}
	var syms []int
	// Split as run.c does: a lead byte plus up to 3 continuation bytes; malformed input splits the
	// same way (a stray continuation byte starts its own chunk).
	for i := 0; i < len(text); {
		j := i + 1
		if e.leadLength {
			j = min(len(text), i+utf8LenByLead(text[i]))
		} else {
			for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
				j++
			}
		}
		if id, ok := e.v.ids[text[i:j]]; ok {
			syms = append(syms, id)
		} else {
			for k := i; k < j; k++ {
				if id := e.byteID(text[k]); id >= 0 {
					syms = append(syms, id)
				}
			}
		}
		i = j
	}
	return append(out, e.merge(syms)...)
}

type scorePair struct {
	score       float32
	left, right int // symbol indices
	lver, rver  int // versions of the two symbols when the pair was found
	id          int // merged token
}

type pairHeap []scorePair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(scorePair)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (e *scoreEncoder) merge(ids []int) []int {
	n := len(ids)
	next := make([]int, n)
	prev := make([]int, n)
	ver := make([]int, n)
	for i := range ids {
		next[i], prev[i] = i+1, i-1
	}
	h := &pairHeap{}
	try := func(l int) {
		if l < 0 || next[l] >= n {
			return
		}
		r := next[l]
		a, b := ids[l], ids[r]
		if a < 0 || b < 0 || a >= len(e.v.pieces) || b >= len(e.v.pieces) {
			return
		}
		id, ok := e.v.ids[e.v.pieces[a]+e.v.pieces[b]]
		if !ok || !(e.scores[id] > e.minScore) {
			return
		}
		heap.Push(h, scorePair{score: e.scores[id], left: l, right: r, lver: ver[l], rver: ver[r], id: id})
	}
	for i := 0; i+1 < n; i++ {
		try(i)
	}
	alive := n
	for h.Len() > 0 {
		p := heap.Pop(h).(scorePair)
		if ver[p.left] != p.lver || ver[p.right] != p.rver || next[p.left] != p.right {
			continue // one side merged since this pair was found
		}
		ids[p.left] = p.id
		ver[p.left]++
		ver[p.right] = -1 // dead
		next[p.left] = next[p.right]
		if next[p.right] < n {
			prev[next[p.right]] = p.left
		}
		alive--
		if prev[p.left] >= 0 {
			try(prev[p.left])
		}
		try(p.left)
	}
	out := make([]int, 0, alive)
	for i := 0; i < n; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// utf8LenByLead is the character length a byte announces when read as a lead byte (1 for ASCII and
// for continuation bytes).
func utf8LenByLead(b byte) int {
	switch {
	case b >= 0xF0:
		return 4
	case b >= 0xE0:
		return 3
	case b >= 0xC0:
		return 2
	}
	return 1
}
