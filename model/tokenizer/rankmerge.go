package tokenizer

import (
	"container/heap"
	"strings"
	"unicode/utf8"
)

// rankEncoder is ranked BPE (Hugging Face's BPE model, llama.cpp's "gpt2" vocab): normalize the text,
// cut it into words by the pre-tokenizers, then in each word start from its characters and merge the
// adjacent pair with the lowest merge rank (leftmost on ties) until no pair is in the merge list.
type rankEncoder struct {
	v            *vocab
	ids          map[string]int // the BPE model's vocab (HF: without added tokens)
	merges       map[[2]int]rankedMerge
	normal       []func(s string, first bool) string         // HF normalizers, applied to each run of text
	pretok       []func(words []string, first bool) []string // HF pre-tokenizers, in order
	ignoreMerges bool                                        // a word that is itself a token is emitted whole (Llama-3)
	byteFallback bool                                        // characters missing from the vocab become <0xXX> tokens
	byteIDs      [256]int
	unk          int // id for characters missing from the vocab without byte fallback; -1: dropped
	fuseUnk      bool
}

type rankedMerge struct{ rank, id int }

func (e *rankEncoder) encode(out []int, text string, first bool) []int {
	for _, f := range e.normal {
		text = f(text, first)
	}
	words := []string{text}
	for _, f := range e.pretok {
		words = f(words, first)
	}
	for _, w := range words {
		if w == "" {
			continue
		}
		if e.ignoreMerges {
			if id, ok := e.ids[w]; ok {
				out = append(out, id)
				continue
			}
		}
		out = e.word(out, w)
	}
	return out
}

// word encodes one pre-token.
func (e *rankEncoder) word(out []int, w string) []int {
	var syms []int
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		ch := w[i : i+n]
		i += n
		if id, ok := e.ids[ch]; ok {
			syms = append(syms, id)
			continue
		}
		if e.byteFallback && e.byteIDs[ch[0]] >= 0 {
			ok := true
			for k := 0; k < len(ch); k++ {
				ok = ok && e.byteIDs[ch[k]] >= 0
			}
			if ok {
				for k := 0; k < len(ch); k++ {
					syms = append(syms, e.byteIDs[ch[k]])
				}
				continue
			}
		}
		if e.unk >= 0 {
			if e.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == e.unk {
				continue
			}
			syms = append(syms, e.unk)
		}
	}
	return append(out, e.merge(syms)...)
}

type rankPair struct {
	rank, left, right, lver, rver, id int
}

type rankHeap []rankPair

func (h rankHeap) Len() int { return len(h) }
func (h rankHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].left < h[j].left
}
func (h rankHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *rankHeap) Push(x any)   { *h = append(*h, x.(rankPair)) }
func (h *rankHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (e *rankEncoder) merge(ids []int) []int {
	n := len(ids)
	if n < 2 || len(e.merges) == 0 {
		return ids
	}
	next := make([]int, n)
	prev := make([]int, n)
	ver := make([]int, n)
	for i := range ids {
		next[i], prev[i] = i+1, i-1
	}
	h := &rankHeap{}
	try := func(l int) {
		if l < 0 || next[l] >= n {
			return
		}
		r := next[l]
		if m, ok := e.merges[[2]int{ids[l], ids[r]}]; ok {
			heap.Push(h, rankPair{rank: m.rank, left: l, right: r, lver: ver[l], rver: ver[r], id: m.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		try(i)
	}
	for h.Len() > 0 {
		p := heap.Pop(h).(rankPair)
		if ver[p.left] != p.lver || ver[p.right] != p.rver || next[p.left] != p.right {
			continue
		}
		ids[p.left] = p.id
		ver[p.left]++
		ver[p.right] = -1
		next[p.left] = next[p.right]
		if next[p.right] < n {
			prev[next[p.right]] = p.left
		}
		try(prev[p.left])
		try(p.left)
	}
	out := ids[:0:0]
	for i := 0; i < n; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// metaspaceWords cuts text before every "▁" (HF Metaspace split=true, behavior MergedWithNext):
// "▁Hello▁world" -> "▁Hello", "▁world".
func metaspaceWords(s, marker string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); {
		j := strings.Index(s[i:], marker)
		if j < 0 {
			break
		}
		out = append(out, s[start:i+j])
		start = i + j
		i = start + len(marker)
	}
	return append(out, s[start:])
}
