package kvpages

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDecodeWithPeriodicCompression plays the scheduler: sequences are admitted with prompts, compressed
// right after prefill, grow by decode while their metrics accumulate, and are compressed every few
// steps under a per-round KV cap. Compressed sequences must be within budget, every head must still hold
// its protected window and sinks, and the pool must account for every block.
func TestDecodeWithPeriodicCompression(t *testing.T) {
	for _, pol := range []Policy{PolicyKVCompress, PolicyUniform, PolicyWindow, PolicyH2O} {
		for _, b := range []int{1, 4, 16} {
			t.Run(fmt.Sprintf("%s/b%d", pol, b), func(t *testing.T) { decodeSim(t, pol, b) })
		}
	}
}

func decodeSim(t *testing.T, pol Policy, b int) {
	const layers, heads, interval = 2, 3, 3
	rng := rand.New(rand.NewPCG(uint64(b), uint64(pol)))
	opts := Options{Policy: pol, BlockSize: b, Protect: 6, Sinks: 1, Budget: Budget{MaxCacheTokens: 20},
		MaxKVPerRound: 2 * layers * heads * 40}
	pl, err := NewPlanner(opts)
	if err != nil {
		t.Fatal(err)
	}
	sm := newSim(t, 4000/b+200, b)
	type running struct {
		seq    *Seq
		rounds int
		waited int
	}
	var seqs []*running
	var ledger Ledger
	read := func(s *Seq) ([]HeadSlots, error) { return sm.read(t, s), nil }
	move := func(m []int32) error { sm.refExecuteMoves(t, m); return nil }
	capped := 0
	compress := func(step int) {
		t.Helper()
		cands := make([]Candidate, len(seqs))
		for i, r := range seqs {
			cands[i] = Candidate{Seq: r.seq, RoundsSince: r.rounds}
		}
		plan, sel, err := pl.Compress(sm.pool, cands, read, move)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, r := range seqs {
			r.rounds++
		}
		if plan != nil {
			ledger.Add(plan)
		}
		all := make([]*Seq, len(seqs))
		for i, r := range seqs {
			all[i] = r.seq
		}
		checkOwnership(t, fmt.Sprintf("step %d", step), sm.pool, all)
		for _, i := range sel {
			r := seqs[i]
			r.rounds, r.waited = 0, 0
			if got, budget := r.seq.Blocks(), opts.BudgetBlocks(r.seq, Budget{}); got > budget {
				t.Fatalf("step %d: seq %d holds %d blocks after compression, budget %d", step, i, got, budget)
			}
		}
		for i, r := range seqs {
			if opts.Excess(r.seq, Budget{}) > 0 && !slices.Contains(sel, i) {
				r.waited++
				capped++
				if r.waited > len(seqs) {
					t.Fatalf("step %d: seq %d over budget and skipped %d rounds in a row", step, i, r.waited)
				}
			}
			checkProtected(t, step, sm, r.seq, opts)
		}
	}
	for step := range 120 {
		if step%25 == 0 {
			s := NewSeq(layers, heads)
			sm.appendTokens(t, s, 10+rng.IntN(90), func() float32 { return rng.Float32() })
			seqs = append(seqs, &running{seq: s, rounds: 1 << 20}) // uncompressed prefill goes first
			compress(step)
		}
		for _, r := range seqs {
			// Decode: every live slot's metric grows, the new token starts at 0.
			for hd := range r.seq.Tables {
				for i := range r.seq.Ctx[hd] {
					sm.metric[sm.slot(r.seq, hd, i)] += rng.Float32()
				}
			}
			sm.appendTokens(t, r.seq, 1, func() float32 { return 0 })
		}
		if step%interval == 0 {
			compress(step)
		}
	}
	if capped == 0 {
		t.Fatal("the per-round cap never deferred a sequence; the test does not exercise it")
	}
	st, err := CollectStats(sm.pool, []*Seq{seqs[0].seq, seqs[1].seq}, 100, ledger)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ledger.FreedBlocks == 0 || st.KeptKVs() >= st.FullKVs {
		t.Fatalf("nothing was compressed: %+v", st)
	}
}

// checkProtected: every head holds each of the last Protect positions and the sinks exactly once.
func checkProtected(t *testing.T, step int, sm *sim, s *Seq, o Options) {
	t.Helper()
	for hd := range s.Tables {
		count := map[int32]int{}
		for i := range s.Ctx[hd] {
			count[sm.pos[sm.slot(s, hd, i)]]++
		}
		for p, n := range count {
			if n != 1 {
				t.Fatalf("step %d: head %d holds position %d %d times", step, hd, p, n)
			}
		}
		for p := max(0, s.NextPos-o.Protect); p < s.NextPos; p++ {
			if count[int32(p)] != 1 {
				t.Fatalf("step %d: head %d lost protected position %d", step, hd, p)
			}
		}
		for p := 0; p < min(o.Sinks, s.NextPos); p++ {
			if count[int32(p)] != 1 {
				t.Fatalf("step %d: head %d lost sink position %d", step, hd, p)
			}
		}
	}
}

func TestSelectOrderAndCap(t *testing.T) {
	const b = 4
	sm := newSim(t, 400, b)
	mk := func(n int) *Seq {
		s := NewSeq(1, 2)
		sm.appendTokens(t, s, n, func() float32 { return 1 })
		return s
	}
	small, big, fits, none := mk(40), mk(80), mk(40), mk(8) // 20, 40, 20, 4 blocks
	opts := Options{Policy: PolicyKVCompress, BlockSize: b, Budget: Budget{MaxCacheTokens: 8}, MaxKVPerRound: 60 * b}
	pl, err := NewPlanner(opts)
	if err != nil {
		t.Fatal(err)
	}
	cands := []Candidate{{Seq: small, RoundsSince: 1}, {Seq: big, RoundsSince: 5}, {Seq: fits, RoundsSince: 1}, {Seq: none, RoundsSince: 9}}
	got, err := pl.Select(cands)
	if err != nil {
		t.Fatal(err)
	}
	// none is within budget; big (40 blocks) first, then small (20): 60 blocks, fits would exceed.
	if want := []int{1, 0}; !slices.Equal(got, want) {
		t.Fatalf("Select = %v, want %v", got, want)
	}
	opts.MaxKVPerRound = 10 * b // smaller than any sequence: the stalest is still taken
	pl, _ = NewPlanner(opts)
	if got, _ := pl.Select(cands); !slices.Equal(got, []int{1}) {
		t.Fatalf("Select under a tiny cap = %v, want [1]", got)
	}
	opts.MaxKVPerRound = 0
	pl, _ = NewPlanner(opts)
	if got, _ := pl.Select(cands); !slices.Equal(got, []int{1, 0, 2}) {
		t.Fatalf("Select without a cap = %v, want [1 0 2]", got)
	}
	// A per-sequence budget overrides the options'.
	cands[1].Budget = Budget{MaxCacheTokens: 400}
	if got, _ := pl.Select(cands); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("Select with a large budget for seq 1 = %v, want [0 2]", got)
	}
	cands[1].Budget = Budget{Rate: 0.5}
	if _, err := pl.Select(cands); err == nil {
		t.Fatal("Select accepted a rate below 1")
	}
	full, _ := NewPlanner(Options{Policy: PolicyFull, BlockSize: b})
	if got, _ := full.Select(cands[:1]); len(got) != 0 {
		t.Fatalf("full policy selected %v", got)
	}
}

func TestCompressErrorsChangeNothing(t *testing.T) {
	const b = 4
	sm := newSim(t, 100, b)
	s := NewSeq(2, 1)
	sm.appendTokens(t, s, 40, func() float32 { return 1 })
	pl, err := NewPlanner(Options{Policy: PolicyKVCompress, BlockSize: b, Budget: Budget{MaxCacheTokens: 8}})
	if err != nil {
		t.Fatal(err)
	}
	tables := slices.Clone(s.SlotBlocks())
	free := sm.pool.Free()
	boom := errors.New("device lost")
	cands := []Candidate{{Seq: s}}
	if _, _, err := pl.Compress(sm.pool, cands, func(*Seq) ([]HeadSlots, error) { return nil, boom }, nil); !errors.Is(err, boom) {
		t.Fatalf("read error not returned: %v", err)
	}
	read := func(q *Seq) ([]HeadSlots, error) { return sm.read(t, q), nil }
	if _, _, err := pl.Compress(sm.pool, cands, read, func([]int32) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("move error not returned: %v", err)
	}
	if !slices.Equal(tables, s.SlotBlocks()) || sm.pool.Free() != free {
		t.Fatal("a failed round changed the tables or the pool")
	}
	plan, sel, err := pl.Compress(sm.pool, cands, read, func(m []int32) error { sm.refExecuteMoves(t, m); return nil })
	if err != nil || len(sel) != 1 || plan.FreedBlocks() != 20-4 || s.Blocks() != 4 {
		t.Fatalf("round: err %v, sel %v, blocks %d", err, sel, s.Blocks())
	}
}

func TestApplyStalePlan(t *testing.T) {
	const b = 2
	sm := newSim(t, 100, b)
	s := NewSeq(1, 2)
	sm.appendTokens(t, s, 20, func() float32 { return 1 })
	pl, _ := NewPlanner(Options{Policy: PolicyUniform, BlockSize: b, Budget: Budget{MaxCacheTokens: 4}})
	plan, err := pl.Plan([]SeqSlots{{Seq: s, Slots: sm.read(t, s)}})
	if err != nil {
		t.Fatal(err)
	}
	sm.appendTokens(t, s, 1, func() float32 { return 1 }) // the sequence moved on
	free := sm.pool.Free()
	if _, err := plan.Apply(sm.pool); !errors.Is(err, ErrPlanStale) {
		t.Fatalf("stale plan applied: %v", err)
	}
	if sm.pool.Free() != free || s.Ctx[0] != 21 {
		t.Fatal("a stale plan changed something")
	}
	other, _ := NewPool(100, 4)
	if _, err := plan.Apply(other); err == nil {
		t.Fatal("plan applied to a pool of another block size")
	}
}
