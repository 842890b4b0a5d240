package engine

import (
	"fmt"
	"testing"

	"kvc/kvpages"
)

// pack lays a pass out on the host: decode rows first, positions continuing each sequence, every row's
// K/V slot per layer and head, each head's table offset and context, the window rows and the logit rows.
func TestPack(t *testing.T) {
	const L, H, bs = 2, 2, 4
	pool, err := kvpages.NewPool(64, bs)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := kvpages.NewSeq(L, H), kvpages.NewSeq(L, H), kvpages.NewSeq(L, H)
	if _, err := a.Append(pool, 5); err != nil { // a already holds 5 tokens
		t.Fatal(err)
	}
	items := []Item{
		{Seq: b, Tokens: []int{7, 8, 9}, Logits: true, WindowRows: 2}, // prefill chunk
		{Seq: a, Tokens: []int{3}, Logits: true},                      // decode row
		{Seq: c, Tokens: []int{4, 5}, AllLogits: true},                // scoring
	}
	order := decodeFirst(items)
	if fmt.Sprint(order) != "[1 0 2]" {
		t.Fatalf("order %v, want the decode item first", order)
	}
	appended := make([][]int32, len(items))
	for _, i := range order {
		if appended[i], err = items[i].Seq.Append(pool, len(items[i].Tokens)); err != nil {
			t.Fatal(err)
		}
	}
	offs := [][]int32{{100, 104, 108, 112}, {200, 204, 208, 212}, {300, 304, 308, 312}}
	p := pack(items, order, appended, offs, L, H)
	if p.rows != 6 || p.decodeRows != 1 || p.nWin != 1 {
		t.Fatalf("rows %d decode rows %d windows %d, want 6 1 1", p.rows, p.decodeRows, p.nWin)
	}
	if fmt.Sprint(p.ids) != "[3 7 8 9 4 5]" || fmt.Sprint(p.pos) != "[5 0 1 2 0 1]" {
		t.Fatalf("ids %v pos %v", p.ids, p.pos)
	}
	rowItem := []int{1, 0, 0, 0, 2, 2}
	rowTok := []int{0, 0, 1, 2, 0, 1}
	for l := 0; l < L; l++ {
		for r := 0; r < p.rows; r++ {
			it := items[rowItem[r]]
			for h := 0; h < H; h++ {
				hd := l*H + h
				i := it.Seq.Ctx[hd] - len(it.Tokens) + rowTok[r]
				want := it.Seq.Tables[hd][i/bs]*bs + int32(i%bs)
				if got := p.slots[l][r*H+h]; got != want {
					t.Errorf("layer %d row %d head %d: slot %d, want %d", l, r, h, got, want)
				}
				if off, ctx := p.heads[l][(r*H+h)*2], p.heads[l][(r*H+h)*2+1]; off != offs[rowItem[r]][hd] || int(ctx) != it.Seq.Ctx[hd] {
					t.Errorf("layer %d row %d head %d: table {%d, %d}, want {%d, %d}", l, r, h, off, ctx, offs[rowItem[r]][hd], it.Seq.Ctx[hd])
				}
			}
		}
		// b's window: its last 2 rows (rows 2, 3), per head.
		want := fmt.Sprint([]int32{offs[0][l*H], 3, 2, 2, offs[0][l*H+1], 3, 2, 2})
		if fmt.Sprint(p.win[l]) != want {
			t.Errorf("layer %d window %v, want %v", l, p.win[l], want)
		}
	}
	// Item order: b's last row, a's row, every row of c.
	if fmt.Sprint(p.outRows) != "[3 0 4 5]" {
		t.Errorf("logit rows %v, want [3 0 4 5]", p.outRows)
	}
}
