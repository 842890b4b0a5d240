package engine_test

import (
	"fmt"
	"sort"
	"testing"

	"kvc/engine"
	"kvc/engine/gpu"
	"kvc/kvpages"
)

// The block tables on the device equal the host's after prefill, decode steps across block boundaries,
// compaction, a released sequence whose table space is reused and a cache refilled after ReleaseAll. A
// decode step uploads the rows' indices and at most one table entry per (sequence, layer, head), not the
// tables, also when heads outgrow their regions and the table buffer grows (both copied on the device);
// only the step after a compaction uploads the entries it changed.
func TestDeviceTablesFollowHost(t *testing.T) {
	ck := openStories(t)
	b := openVulkanWith(t, gpu.Options{Discrete: true})
	opt := engine.Options{BlockSize: 4, MaxRows: 16}
	opt.SetMetric(kvpages.PolicyKVCompress.Metric(), 4, true)
	e := newEngine(t, b, ck, opt)
	pl := planner(t, kvpages.PolicyKVCompress, 4, 24)
	check := func(what string, seqs []*engine.Sequence) {
		t.Helper()
		for i, s := range seqs {
			dev, err := e.DeviceTables(s.KV)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if fmt.Sprint(dev) != fmt.Sprint(s.KV.Tables) {
				t.Fatalf("%s, sequence %d: device tables\n%v\nhost\n%v", what, i, dev, s.KV.Tables)
			}
		}
	}
	prompts := randomPrompts(3, ck.Config.Vocab, 9)
	seqs := make([]*engine.Sequence, len(prompts))
	next := make([]int, len(prompts))
	for i := range seqs {
		seqs[i] = e.NewSequence(engine.SamplerConfig{})
		logits, err := e.Prefill(seqs[i], append(prompts[i], prompts[(i+1)%3]...))
		if err != nil {
			t.Fatal(err)
		}
		next[i] = engine.Argmax(logits)
	}
	decode := func(steps int, everyStep bool) {
		t.Helper()
		var ups []int
		L, H, n := ck.Config.Layers, ck.Config.KVHeads, len(seqs)
		limit := n*4*2 + L*n*H*4*(1+2) + L*4 + n*L*H*8
		for step := 0; step < steps; step++ {
			c0 := b.Counters()
			out, err := e.Decode(seqs, next)
			if err != nil {
				t.Fatal(err)
			}
			ups = append(ups, int(b.Counters().UploadBytes-c0.UploadBytes))
			for i := range next {
				next[i] = engine.Argmax(out[i])
			}
		}
		// ids, positions, slots and {offset, ctx} per row and (layer, head), plus at most one new table
		// entry (index, value) per (sequence, layer, head).
		sort.Ints(ups)
		if med := ups[len(ups)/2]; med > limit {
			t.Fatalf("median decode step uploaded %d bytes, more than %d (steps: %v)", med, limit, ups)
		}
		if everyStep && ups[len(ups)-1] > limit {
			t.Fatalf("a decode step uploaded %d bytes, more than %d (steps: %v)", ups[len(ups)-1], limit, ups)
		}
	}
	// 18-token prompts fill 5 blocks of 4 (regions of 8); 16 steps outgrow them (regions of 16, more than
	// the table buffer held).
	buf0 := e.TableBufferSize()
	decode(16, true)
	if e.TableBufferSize() == buf0 {
		t.Fatal("the table buffer did not grow: the test misses the growth path")
	}
	check("after decode", seqs)
	c0 := b.Counters()
	if st, err := e.Compress(pl, seqs, nil, nil); err != nil || st.FreedBlocks == 0 || st.Moves == 0 {
		t.Fatalf("compression freed %d blocks with %d moves: %v", st.FreedBlocks, st.Moves, err)
	}
	// One read-back for all three sequences; the moves ride in the next step's submission.
	if n := b.Counters().Submits - c0.Submits; n != 1 {
		t.Errorf("a compression round of %d sequences took %d submissions, want 1", len(seqs), n)
	}
	c0 = b.Counters()
	decode(1, false)
	if n := b.Counters().Submits - c0.Submits; n != 1 {
		t.Errorf("the decode step after compression took %d submissions, want 1", n)
	}
	decode(4, true)
	check("after compaction and decode", seqs)
	e.Release(seqs[1])
	seqs[1] = e.NewSequence(engine.SamplerConfig{})
	logits, err := e.Prefill(seqs[1], prompts[1])
	if err != nil {
		t.Fatal(err)
	}
	next[1] = engine.Argmax(logits)
	// The same cache released behind the engine's back and filled again in the next pass, longer than before.
	seqs[2].KV.ReleaseAll(e.Pool)
	if logits, err = e.Prefill(seqs[2], append(prompts[2], prompts[0]...)); err != nil {
		t.Fatal(err)
	}
	next[2] = engine.Argmax(logits)
	decode(9, true)
	check("after a sequence was replaced", seqs)
}
