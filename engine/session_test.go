package engine_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/gpu"
	"kvc/kvpages"
)

// continueGreedy decodes n tokens from logits, compressing with pl after each step (pl may be nil), and
// returns the tokens and the sequence's sampled tokens under its own sampler (temperature > 0).
func continueGreedy(t *testing.T, e *engine.Engine, pl *kvpages.Planner, s *engine.Sequence, logits []float32, n int) []int {
	var out []int
	for i := 0; i < n; i++ {
		tok := s.Sampler.Sample(logits, s.Tokens)
		out = append(out, tok)
		res, err := e.Decode([]*engine.Sequence{s}, []int{tok})
		if err != nil {
			t.Fatal(err)
		}
		logits = res[0]
		if pl != nil {
			if _, err := e.Compress(pl, []*engine.Sequence{s}, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// A sequence saved after compression and restored into another engine (fresh pool, other block ids)
// continues exactly as the original does: same tokens, greedy and sampled, with no prefill.
func testSessionRoundTrip(t *testing.T, newB func() engine.Backend, typ engine.KVType) {
	ck := openStories(t)
	p := kvpages.PolicyKVCompress
	opt := engine.Options{BlockSize: 4, MaxRows: 64, KVBlocks: 2048, KVType: typ}
	opt.SetMetric(p.Metric(), 8, true)
	pl := planner(t, p, 4, 24)
	prompt := []int{1, 403, 407, 261, 378, 324, 266, 297, 259, 360, 281, 402, 275, 426}
	for _, sc := range []engine.SamplerConfig{{}, {Temp: 0.9, TopK: 20, TopP: 0.95, Seed: 7}} {
		e1 := newEngine(t, newB(), ck, opt)
		s := e1.NewSequence(sc)
		logits, err := e1.Prefill(s, prompt)
		if err != nil {
			t.Fatal(err)
		}
		continueGreedy(t, e1, pl, s, logits, 30) // past the budget: the cache is compressed
		if s.KV.Blocks() == 0 || s.KV.Ctx[0] >= s.KV.NextPos {
			t.Fatalf("nothing was evicted: ctx %v, next pos %d", s.KV.Ctx, s.KV.NextPos)
		}
		st, err := e1.SaveSequence(s)
		if err != nil {
			t.Fatal(err)
		}
		// What happens next without saving: a new turn of 3 tokens, then 20 more tokens.
		turn := []int{13, 400, 290}
		want := nextTurn(t, e1, pl, s, turn)

		e2 := newEngine(t, newB(), ck, opt)
		hold := e2.NewSequence(sc) // take the low block ids, so the restored tables differ from the saved ones
		if _, err := e2.Prefill(hold, prompt[:9]); err != nil {
			t.Fatal(err)
		}
		r, err := e2.RestoreSequence(st)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(r.KV.Tables[0], s.KV.Tables[0]) {
			t.Fatalf("restored tables equal the saved ones (%v): the test needs other block ids", r.KV.Tables[0])
		}
		if got := nextTurn(t, e2, pl, r, turn); !slices.Equal(got, want) {
			t.Fatalf("sampler %+v: restored sequence continues\n%v\nwant\n%v", sc, got, want)
		}
		st2, err := e2.SaveSequence(r)
		if err != nil || st2.NextPos != s.KV.NextPos || !slices.Equal(st2.Tokens, s.Tokens) {
			t.Fatalf("saving the restored sequence again: %v", err)
		}
	}
}

func nextTurn(t *testing.T, e *engine.Engine, pl *kvpages.Planner, s *engine.Sequence, turn []int) []int {
	logits, err := e.Prefill(s, turn)
	if err != nil {
		t.Fatal(err)
	}
	return continueGreedy(t, e, pl, s, logits, 20)
}

func TestSessionRoundTripCPU(t *testing.T) {
	testSessionRoundTrip(t, func() engine.Backend { return &cpu.Backend{} }, engine.KVF32)
	testSessionRoundTrip(t, func() engine.Backend { return &cpu.Backend{} }, engine.KVF16)
}

func TestSessionRoundTripVulkan(t *testing.T) {
	testSessionRoundTrip(t, func() engine.Backend { return openVulkan(t) }, engine.KVF16)
}

// The block layout is the same on every backend: blocks written to a pool read back as written, and their
// metrics and positions are where ReadSlots finds them on both backends, in one submission whether or not
// the host can map device memory.
func TestKVBlockLayoutVulkan(t *testing.T) {
	for _, discrete := range []bool{false, true} {
		t.Run(fmt.Sprintf("discrete=%v", discrete), func(t *testing.T) {
			testKVBlockLayout(t, openVulkanWith(t, gpu.Options{Discrete: discrete}))
		})
	}
}

func testKVBlockLayout(t *testing.T, g *gpu.Backend) {
	c := &cpu.Backend{}
	const blocks, bs, hd = 12, 4, 8
	for _, typ := range []engine.KVType{engine.KVF16, engine.KVF32} {
		gp, err := g.NewKVPool(blocks, bs, hd, typ)
		if err != nil {
			t.Fatal(err)
		}
		cp, _ := c.NewKVPool(blocks, bs, hd, typ)
		bb := int(gp.BlockBytes())
		rng := rand.New(rand.NewPCG(3, 4))
		ids := []int32{5, 6, 7, 2, 11, 0}
		data := make([]byte, len(ids)*bb)
		for i := range ids {
			b := data[i*bb : (i+1)*bb]
			kvLen := 2 * bs * hd * (bb - 8*bs) / (2 * bs * hd)
			for j := 0; j < kvLen; j += 2 {
				// a half or half of a float32 in [-2, 2): both decode to finite numbers
				b[j], b[j+1] = byte(rng.IntN(256)), byte(rng.IntN(0x40)|rng.IntN(2)<<7)
			}
			for j := 0; j < bs; j++ { // metric j+0.5, position i*bs+j
				copy(b[kvLen+4*j:], []byte{0, 0, 0, 0x3f})
				pos := i*bs + j
				copy(b[kvLen+4*bs+4*j:], []byte{byte(pos), 0, 0, 0})
			}
		}
		for _, b := range []engine.Backend{g, c} {
			pool := engine.KVPool(gp)
			if b == c {
				pool = cp
			}
			if err := b.(engine.KVBlockIO).WriteKVBlocks(pool, ids, data); err != nil {
				t.Fatal(err)
			}
			back := make([]byte, len(data))
			if err := b.(engine.KVBlockIO).ReadKVBlocks(pool, ids, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, data) {
				t.Fatalf("%s type %d: blocks read back differ from those written", b.Name(), typ)
			}
		}
		// CPU metric/position read-back agrees with the bytes.
		met, pos := make([]float32, len(ids)*bs), make([]int32, len(ids)*bs)
		if err := c.ReadSlots(cp, ids, met, pos, nil); err != nil {
			t.Fatal(err)
		}
		if pos[bs+1] != int32(bs+1) || met[0] != 0.5 {
			t.Fatalf("CPU read-back: pos %v metric %v", pos[:2*bs], met[:2])
		}
		gmet, gpos := make([]float32, len(ids)*bs), make([]int32, len(ids)*bs)
		c0 := g.Counters()
		if err := g.ReadSlots(gp, ids, gmet, gpos, nil); err != nil {
			t.Fatal(err)
		}
		if n := g.Counters().Submits - c0.Submits; n != 1 {
			t.Errorf("ReadSlots took %d submissions, want 1", n)
		}
		if !slices.Equal(gpos, pos) || !slices.Equal(gmet, met) {
			t.Fatalf("Vulkan ReadSlots of written blocks: %v %v, want %v %v", gpos, gmet, pos, met)
		}
	}
}
