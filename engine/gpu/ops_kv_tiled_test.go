package gpu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/vk"
	"kvc/model"
)

// TestKVAttentionTiledMatchesCPU: attention_tiled.comp (GPU workgroups forced, runs of one row tiled)
// against the CPU at 1, 7, 63 and 257 rows of a prefill chunk, f32 and f16, GQA ratios 1 and 2, head dims on
// and off the 16-byte chunk; then a group of 3 (tiles of 10 rows, 2 idle queries), one of 40 (two head
// chunks per KV head) and the widest head. Each KV head is a compacted prefix of its own length (positions
// with gaps, in any order, the last block partly filled) followed by the chunk's slots; a 5-row chunk of
// another sequence comes first in the call, so tiles hold two segments.
func TestKVAttentionTiledMatchesCPU(t *testing.T) {
	g := OpenForTest(t)
	defer func(force bool, tmin int) { forceGPUWorkgroups, attnTiledMin = force, tmin }(forceGPUWorkgroups, attnTiledMin)
	forceGPUWorkgroups, attnTiledMin = true, 1
	type tc struct {
		typ         engine.KVType
		hd, r, rows int
	}
	var cases []tc
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, rows := range []int{1, 7, 63, 257} {
			for _, r := range []int{1, 2} {
				hd := 8 // f16: one chunk; f32: two
				if r == 2 {
					hd = map[engine.KVType]int{engine.KVF32: 6, engine.KVF16: 12}[typ] // element loads
				}
				cases = append(cases, tc{typ, hd, r, rows})
			}
		}
	}
	cases = append(cases, tc{engine.KVF16, 16, 3, 63}, tc{engine.KVF32, 4, 40, 7}, tc{engine.KVF16, 256, 2, 7})
	for i, c := range cases {
		t.Run(fmt.Sprintf("type%d/hd%d/r%d/rows%d", c.typ, c.hd, c.r, c.rows), func(t *testing.T) {
			checkTiled(t, g, int64(100+i), c.typ, c.hd, c.r, c.rows)
		})
	}
}

func checkTiled(t *testing.T, g *Backend, seed int64, typ engine.KVType, hd, r, rows int) {
	const bs, kvHeads, other = 8, 2, 5
	h := newKVHarness(t, g, seed, 160, bs, hd, typ, 1<<20)
	var rowHeads [][]kvHead
	var qpos []int32
	for _, n := range []int{other, rows} {
		// Per KV head a compacted prefix of its own length at gapped positions below the chunk's first
		// position p0, then the chunk at p0, p0+1, ...
		prev := []int{h.rng.Intn(45), 3 + h.rng.Intn(45)}
		p0 := 2*max(prev[0], prev[1]) + 1
		kept := [][]int{h.rng.Perm(p0)[:prev[0]], h.rng.Perm(p0)[:prev[1]]}
		heads := h.addHeadsAt([]int{prev[0] + n, prev[1] + n}, func(head, i int) int32 {
			if i < prev[head] {
				return int32(kept[head][i])
			}
			return int32(p0 + i - prev[head])
		})
		for i := 0; i < n; i++ {
			rowHeads = append(rowHeads, heads)
			qpos = append(qpos, int32(p0+i))
		}
	}
	qh := kvHeads * r
	if spec, _ := g.attentionTiled(h.gp, r, kvHeads, engine.AttnHeads{Rows: len(rowHeads)}, engine.MetricNone); spec == nil {
		t.Fatal("attention_tiled.comp not chosen")
	}
	q := h.f32(h.randn(len(rowHeads) * qh * hd))
	got, want := h.runAttention(q, rowHeads, qpos, qh, kvHeads, engine.MetricNone)
	compareOut(t, "output", got, want, 2e-4)
}

// TestAttentionTiledChosen: the tiled kernel runs on GPUs (or with GPU workgroups forced) for calls with at
// least TiledMin rows that add no metric, with the largest stage the shared memory holds, and never on a
// CPU device otherwise.
func TestAttentionTiledChosen(t *testing.T) {
	g := OpenForTest(t)
	p, err := g.NewKVPoolArenas(4, 4, 8, engine.KVF16, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	a := engine.AttnHeads{Rows: DefaultTiledMin}
	if spec, _ := g.attentionTiled(p, 2, 4, a, engine.MetricNone); (spec != nil) != (g.info.Type != vk.TypeCPU) {
		t.Fatalf("on %s (type %v): tiled spec %v", g.info.Name, g.info.Type, spec)
	}
	defer func(force bool, caps Caps) { forceGPUWorkgroups, g.caps = force, caps }(forceGPUWorkgroups, g.caps)
	forceGPUWorkgroups = true
	g.caps.MaxSharedMemory = 1 << 15
	spec, tmin := g.attentionTiled(p, 2, 4, a, engine.MetricNone)
	if spec == nil || *spec != [3]uint32{2, kvTiledMaxStage, 2} || tmin != DefaultTiledMin {
		t.Fatalf("head dim 8 f16, 2 query heads per KV head: spec %v from %d rows, want [2 %d 2] from %d", spec, tmin, kvTiledMaxStage, DefaultTiledMin)
	}
	for _, c := range []struct {
		what string
		a    engine.AttnHeads
		mode engine.MetricMode
	}{
		{"too few rows", engine.AttnHeads{Rows: DefaultTiledMin - 1}, engine.MetricNone},
		{"too few rows without a metric", engine.AttnHeads{Rows: DefaultTiledMin, MetricRows: 1}, engine.MetricSquared},
		{"every row with a metric", engine.AttnHeads{Rows: DefaultTiledMin}, engine.MetricPlain},
	} {
		if spec, _ := g.attentionTiled(p, 2, 4, c.a, c.mode); spec != nil {
			t.Fatalf("%s: tiled spec %v", c.what, spec)
		}
	}
	if spec, _ := g.attentionTiled(p, 2, 4, engine.AttnHeads{Rows: DefaultTiledMin + 1, MetricRows: 1}, engine.MetricSquared); spec == nil {
		t.Fatal("decode row and a chunk of TiledMin rows: not tiled")
	}
	wide, err := g.NewKVPoolArenas(4, 4, 256, engine.KVF32, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wide.Release)
	g.caps.MaxSharedMemory = tiledSharedBytes(8, 64)
	if spec, _ := g.attentionTiled(wide, 1, 1, a, engine.MetricNone); spec == nil || spec[1] != 8 {
		t.Fatalf("head dim 256 in %d bytes of shared memory: spec %v, want 8 slots per stage", g.caps.MaxSharedMemory, spec)
	}
	g.caps.MaxSharedMemory = tiledSharedBytes(kvTiledMinStage, 64) - 1
	if spec, _ := g.attentionTiled(wide, 1, 1, a, engine.MetricNone); spec != nil {
		t.Fatalf("head dim 256 in %d bytes of shared memory: spec %v, want attention.comp", g.caps.MaxSharedMemory, spec)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestTiledPrefillSameTokens: stories260K with GPU workgroups forced gives the same greedy tokens with its
// prompts' chunks tiled (TiledMin rows or more) as with attention.comp alone, and prefill logits near the
// CPU's.
func TestTiledPrefillSameTokens(t *testing.T) {
	g := OpenForTest(t)
	path := filepath.Join("..", "..", "..", "shared", "models", "stories260K", "stories260K.bin")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stories260K not found at %s: %v", path, err)
	}
	ck, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	prompt := []int{1}
	for i := 0; len(prompt) < 80; i++ {
		prompt = append(prompt, 3+(i*7919)%(ck.Config.Vocab-3))
	}
	run := func(b engine.Backend, tmin int) (logits []float32, tokens []int) {
		defer func(force bool, v int) { forceGPUWorkgroups, attnTiledMin = force, v }(forceGPUWorkgroups, attnTiledMin)
		forceGPUWorkgroups, attnTiledMin = true, tmin
		w, err := engine.LoadWeights(b, ck, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Two chunks of 40 rows (at least TiledMin), the second with the 8-row window.
		e, err := engine.NewEngine(b, ck.Config, w, engine.Options{KVBlocks: 512, MaxRows: 40, Window: 8, Metric: engine.MetricSquared})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		s := e.NewSequence(engine.SamplerConfig{})
		if logits, err = e.Prefill(s, prompt); err != nil {
			t.Fatal(err)
		}
		next := engine.Argmax(logits)
		for step := 0; step < 12; step++ {
			tokens = append(tokens, next)
			out, err := e.Decode([]*engine.Sequence{s}, []int{next})
			if err != nil {
				t.Fatal(err)
			}
			next = engine.Argmax(out[0])
		}
		return logits, tokens
	}
	refLogits, _ := run(&cpu.Backend{}, 0)
	plainLogits, plain := run(g, -1)
	tiledLogits, tiled := run(g, 0)
	if fmt.Sprint(plain) != fmt.Sprint(tiled) {
		t.Fatalf("greedy tokens: tiled prefill %v, attention.comp %v", tiled, plain)
	}
	for what, l := range map[string][]float32{"attention.comp": plainLogits, "tiled": tiledLogits} {
		worst, scale := 0.0, 0.0
		for i, v := range refLogits {
			scale = math.Max(scale, math.Abs(float64(v)))
			worst = math.Max(worst, math.Abs(float64(l[i])-float64(v)))
		}
		if worst > 1e-3*scale {
			t.Fatalf("%s prefill logits: max error %g against the CPU's (largest logit %g)", what, worst, scale)
		}
	}
}
