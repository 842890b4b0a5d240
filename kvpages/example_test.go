package kvpages_test

import (
	"fmt"

	"kvc/kvpages"
)

// One KV-Compress round as the engine runs it: read the chosen sequences' metrics and positions back,
// plan, copy the moves on the device, apply.
func ExamplePlanner_Compress() {
	const b = 4
	pool, _ := kvpages.NewPool(64, b)
	seq := kvpages.NewSeq(1, 2) // 1 layer, 2 KV heads
	slots, _ := seq.Append(pool, 20)

	// A stand-in for the device: metric and position per global slot. Head 0 attends to early tokens,
	// head 1 to late ones.
	metric := make([]float32, pool.Blocks()*b)
	pos := make([]int32, pool.Blocks()*b)
	for tok := range 20 {
		for h := range 2 {
			id := slots[tok*2+h]
			pos[id] = int32(tok)
			metric[id] = float32(tok)
			if h == 0 {
				metric[id] = float32(20 - tok)
			}
		}
	}
	read := func(s *kvpages.Seq) ([]kvpages.HeadSlots, error) {
		var m []float32
		var p []int32
		for _, blk := range s.SlotBlocks() {
			m = append(m, metric[int(blk)*b:int(blk+1)*b]...)
			p = append(p, pos[int(blk)*b:int(blk+1)*b]...)
		}
		return s.SplitSlots(b, m, p)
	}
	move := func(moves []int32) error {
		for i := 0; i < len(moves); i += 2 {
			metric[moves[i+1]], pos[moves[i+1]] = metric[moves[i]], pos[moves[i]]
		}
		return nil
	}

	opts := kvpages.DefaultOptions(b, kvpages.Budget{MaxCacheTokens: 8})
	opts.Protect = 4
	// The paper's metric: the default per-query mean also protects its metric buffer of 10 positions,
	// which would be this whole small budget.
	opts.Metric = kvpages.MetricL2Sum
	pl, err := kvpages.NewPlanner(opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, _, err := pl.Compress(pool, []kvpages.Candidate{{Seq: seq}}, read, move)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("blocks freed:", plan.FreedBlocks(), "in use:", pool.InUse())
	for h := range 2 {
		fmt.Printf("head %d keeps %d KVs\n", h, seq.Ctx[h])
	}
	// Output:
	// blocks freed: 6 in use: 4
	// head 0 keeps 12 KVs
	// head 1 keeps 4 KVs
}
