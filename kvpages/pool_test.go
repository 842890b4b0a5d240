package kvpages

import (
	"math/rand/v2"
	"testing"
)

// TestPoolLowestFirst drives a pool with random allocations and releases against a plain set: Alloc must
// hand out the lowest free id and Bound must be one past the highest id in use, so the blocks in use stay
// at the bottom of the pool however large it is.
func TestPoolLowestFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	for _, n := range []int{1, 2, 7, 64, 1000} {
		p, err := NewPool(n, 16)
		if err != nil {
			t.Fatal(err)
		}
		used := make([]bool, n)
		var held []int32
		for step := range 20 * n {
			if len(held) > 0 && (len(held) == n || rng.IntN(3) == 0) {
				k := rng.IntN(len(held))
				count := 1
				if rng.IntN(8) == 0 { // sometimes a burst, as when a sequence ends
					count = 1 + rng.IntN(len(held))
				}
				for range count {
					k = rng.IntN(len(held))
					p.Release(held[k])
					used[held[k]] = false
					held[k] = held[len(held)-1]
					held = held[:len(held)-1]
				}
			} else {
				id, err := p.Alloc()
				if err != nil {
					t.Fatalf("n %d step %d: %v with %d of %d held", n, step, err, len(held), n)
				}
				low := 0
				for used[low] {
					low++
				}
				if int(id) != low {
					t.Fatalf("n %d step %d: Alloc gave %d, the lowest free block is %d", n, step, id, low)
				}
				used[id] = true
				held = append(held, id)
			}
			bound := 0
			for i := n - 1; i >= 0; i-- {
				if used[i] {
					bound = i + 1
					break
				}
			}
			if p.Bound() != bound || p.Free() != n-len(held) || p.InUse() != len(held) {
				t.Fatalf("n %d step %d: Bound %d Free %d InUse %d, want %d %d %d",
					n, step, p.Bound(), p.Free(), p.InUse(), bound, n-len(held), len(held))
			}
		}
		for _, id := range held {
			p.Release(id)
		}
		if _, err := p.Alloc(); err != nil || p.Bound() != 1 {
			t.Fatalf("n %d: after releasing all, Alloc %v, Bound %d (want 1)", n, err, p.Bound())
		}
	}
}
