package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"kvc/engine"
	"kvc/model"
)

// The fast backend (New) against the reference (&Backend{}): products within rounding of the reference,
// each batch row the bits of the same row alone, fused ops the bits of their unfused sequence, and
// attention the reference's bits.

func TestFastProductsMatchReference(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewSource(5))
		ref := &Backend{}
		fast, fast1 := New(3), New(1)
		defer fast.Close()
		defer func(on bool) { q8ActOn = on }(q8ActOn)
		for _, wc := range weightCases {
			// {rows, cols, n}: odd sizes, batches that take the eight- and four-input kernels with and without
			// a remainder; 1001, 300 and 100 rows use every worker (several row blocks each); 1544 columns take
			// the eight-input kernels in column tiles, the last one an odd chunk of 8; 3 rows of one input is
			// decode's row-range path with fewer rows than its four-row kernels take
			for _, s := range [][3]int{{3, 64, 1}, {1, 1, 4}, {7, 7, 2}, {63, 63, 6}, {7, 63, 12}, {5, 4097, 5}, {3, 4097, 8}, {1001, 64, 3}, {300, 256, 9}, {40, 64, 16}, {100, 1544, 12}, {9, 4097, 12}} {
				// q8_0 with float and with 8-bit activations
				for _, act := range actModes(wc.dt) {
					q8ActOn = act
					rows, cols, n := s[0], s[1], s[2]
					group := 0
					if wc.dt == model.Q8_0 {
						group = wc.group
						if cols%group != 0 {
							group = kernelGroup(cols)
						}
					}
					name := fmt.Sprintf("%v %v g%d %dx%d n%d act8 %v", wc.dt, wc.sk, group, rows, cols, n, act)
					tn := EncodeTensor("w", wc.dt, rows, cols, false, wc.sk, group, randVec(rng, rows*cols))
					w, err := fast.UploadWeight(tn)
					if err != nil {
						t.Fatal(err)
					}
					xv := randVec(rng, n*cols)
					x := bufOf(t, fast, xv)
					got, want := buf(t, fast, n*rows), buf(t, fast, n*rows)
					fast.MatMul(got, x, w, n)
					ref.MatMul(want, x, w, n)
					for i := 0; i < n; i++ {
						for r := 0; r < rows; r++ {
							var mag float64
							for c := 0; c < cols; c++ {
								mag += math.Abs(float64(xv[i*cols+c]) * stored(t, tn, r, c))
							}
							g, wv := got.F32()[i*rows+r], want.F32()[i*rows+r]
							bound := 2e-6*mag + 1e-30
							if act {
								bound += q8ActBound(t, tn, xv[i*cols:(i+1)*cols], r)
							}
							if math.Abs(float64(g-wv)) > bound || math.IsNaN(float64(g)) {
								t.Fatalf("%s: out[%d][%d] = %v, reference %v (|x.w| %v)", name, i, r, g, wv, mag)
							}
						}
					}
					// each row of the batch is the row alone, on one thread
					for i := 0; i < n; i++ {
						one := buf(t, fast, rows)
						fast1.MatMul(one, bufOf(t, fast, xv[i*cols:(i+1)*cols]), w, 1)
						sameBits(t, name+" alone", one.F32(), got.F32()[i*rows:(i+1)*rows])
					}
					// MatMulAdd is MatMul then Add
					init := randVec(rng, n*rows)
					sum := bufOf(t, fast, init)
					fast.MatMulAdd(sum, x, w, n)
					fast.Add(want, bufOf(t, fast, init), got, n*rows)
					sameBits(t, name+" MatMulAdd", sum.F32(), want.F32())
					// MatMulSwiGLU is two MatMuls then SwiGLU
					up, _ := fast.UploadWeight(EncodeTensor("u", wc.dt, rows, cols, false, wc.sk, group, randVec(rng, rows*cols)))
					u, fused := buf(t, fast, n*rows), buf(t, fast, n*rows)
					fast.MatMul(u, x, up, n)
					fast.SwiGLU(want, got, u, n*rows)
					fast.MatMulSwiGLU(fused, x, w, up, n)
					sameBits(t, name+" MatMulSwiGLU", fused.F32(), want.F32())
					// MatMulQKV is three MatMuls
					k := buf(t, fast, n*rows)
					q, v := buf(t, fast, n*rows), buf(t, fast, n*rows)
					fast.MatMulQKV(q, k, v, x, w, up, w, n)
					sameBits(t, name+" QKV q", q.F32(), got.F32())
					sameBits(t, name+" QKV k", k.F32(), u.F32())
					sameBits(t, name+" QKV v", v.F32(), got.F32())
				}
			}
		}
	})
}

// TestFastAttentionMatchesReference: decode rows over compacted caches with every metric mode, and a
// causal prefill chunk whose first row alone adds to the metric, give the reference's output and metric
// within f32 rounding, with both kernel sets; a head width that is not a multiple of 8 takes the tails.
func TestFastAttentionMatchesReference(t *testing.T) {
	withKernels(t, testFastAttention)
}

func testFastAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	fast := New(2)
	defer fast.Close()
	const kvHeads = 2
	for bi, bs := range []int{1, 4, 16} {
		d := []int{12, 16, 64}[bi]
		for _, r := range []int{1, 4} {
			for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
				for _, mode := range []engine.MetricMode{engine.MetricNone, engine.MetricSquared, engine.MetricPlain} {
					name := fmt.Sprintf("b%d/r%d/t%d/m%d", bs, r, typ, mode)
					qHeads := r * kvHeads
					// three decode rows of three sequences, then a prefill chunk of 9 rows of a fourth
					ctx := [][]int{{1 + rng.Intn(45), 1 + rng.Intn(45)}, {3, 40}, {17, 1}, {9, 9}}
					pc := newPagedCase(t, rng, ctx, bs, d, typ, true)
					rows := 3 + 9
					be := pc.be
					heads, tables, pos := buf(t, be, rows*kvHeads*2), buf(t, be, len(pc.tables)), buf(t, be, rows)
					copy(tables.I32(), pc.tables)
					for row := 0; row < rows; row++ {
						s, p := min(row, 3), int32(30)
						if row >= 3 {
							p = int32(row - 3)
						}
						pos.I32()[row] = p
						for h := 0; h < kvHeads; h++ {
							heads.I32()[(row*kvHeads+h)*2] = pc.offs[s][h]
							heads.I32()[(row*kvHeads+h)*2+1] = int32(ctx[s][h])
						}
					}
					q := bufOf(t, be, randVec(rng, rows*qHeads*d))
					metric := randVec(rng, len(pc.pool.Metric))
					var outs [2]*Buf
					var metrics [2][]float32
					for i, b := range []*Backend{be, fast} {
						copy(pc.pool.Metric, metric)
						outs[i] = buf(t, be, rows*qHeads*d)
						// the plain metric with a metric buffer (its slots nearest each row add nothing)
						mb := map[engine.MetricMode]int{engine.MetricPlain: 5}[mode]
						b.Attention(outs[i], q, pc.pool, engine.AttnHeads{Heads: heads, Tables: tables, Pos: pos, Rows: rows, MetricRows: 4,
							MetricBuffer: mb}, qHeads, kvHeads, 0.3, mode)
						metrics[i] = append([]float32(nil), pc.pool.Metric...)
					}
					for i, want := range outs[0].F32() {
						if got := outs[1].F32()[i]; !close32(got, float64(want), 2e-6) {
							t.Fatalf("%s d%d: out[%d] = %v, reference %v", name, d, i, got, want)
						}
					}
					for i, want := range metrics[0] {
						if got := metrics[1][i]; !close32(got, float64(want), 2e-6) {
							t.Fatalf("%s d%d: metric[%d] = %v, reference %v", name, d, i, got, want)
						}
					}
				}
			}
		}
	}
}

// The pool's parts run on distinct goroutines and cover the range once (run with -race).
func TestWorkersCoverRange(t *testing.T) {
	p := newWorkers(3)
	defer p.close()
	for _, n := range []int{1, 2, 3, 10, 1000} {
		hits := make([]int, n)
		p.rows(n, 1<<20, func(part, lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i]++
			}
			s := p.scratchFor(part, 8)
			s[0] = float64(lo)
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n %d: element %d visited %d times", n, i, h)
			}
		}
	}
}

// The probe reads its whole buffer and reports a positive rate with its conditions.
// TestWorkersParkAndWake: jobs of every width, back to back and after pauses longer than the spin (the
// workers park), with a worker slower than the spin (the caller parks); every part runs once per job.
func TestWorkersParkAndWake(t *testing.T) {
	p := newWorkers(3)
	defer p.close()
	var ran [3]int
	for i := range 60 {
		parts := 1 + i%3
		switch i % 7 {
		case 3:
			time.Sleep(2*spinMax + time.Millisecond) // workers park
		}
		var hit [3]int
		p.run(parts, func(part int) {
			if i%5 == 4 && part == parts-1 {
				time.Sleep(2*spinMax + time.Millisecond) // the caller parks
			}
			hit[part]++
		})
		for k := range 3 {
			want := 0
			if k < parts {
				want = 1
			}
			if hit[k] != want {
				t.Fatalf("job %d of %d parts: part %d ran %d times", i, parts, k, hit[k])
			}
			ran[k] += hit[k]
		}
	}
	if ran[2] == 0 {
		t.Fatal("the last worker never ran")
	}
}

func TestSpinSetting(t *testing.T) {
	type want struct {
		d     time.Duration
		fixed bool
	}
	for env, w := range map[string]want{"": {}, "0": {0, true}, "20us": {20 * time.Microsecond, true}, "-1s": {}, "x": {}} {
		if d, fixed := spinSetting(env); d != w.d || fixed != w.fixed {
			t.Errorf("KVC_CPU_SPIN=%q: %v %v, want %v %v", env, d, fixed, w.d, w.fixed)
		}
	}
}

// A side's polling budget grows to cover waits it parked for that polling would have covered, and shrinks
// (to spinMin) after waits longer than spinMax; a fixed budget stays.
func TestSpinBudget(t *testing.T) {
	us := time.Microsecond
	b := spinBudget{d: 50 * us}
	for _, step := range []struct{ wait, want time.Duration }{
		{70 * us, 140 * us},        // twice the wait
		{150 * us, 300 * us},       // twice the wait
		{310 * us, 620 * us},       // twice the wait, over twice the budget
		{400 * us, spinMax},        // twice the budget, capped
		{5 * spinMax, spinMax / 2}, // the partner was off the CPU: half
		{5 * spinMax, spinMax / 4},
		{5 * spinMax, spinMax / 8},
		{5 * spinMax, spinMax / 16},
		{5 * spinMax, spinMax / 32},
		{5 * spinMax, spinMin},
		{5 * spinMax, spinMin},
		{30 * us, 60 * us},
	} {
		b.after(step.wait)
		if b.d != step.want {
			t.Fatalf("after a wait of %v: budget %v, want %v", step.wait, b.d, step.want)
		}
	}
	f := spinBudget{d: 50 * us, fixed: true}
	f.after(100 * us)
	f.after(5 * spinMax)
	if f.d != 50*us {
		t.Fatalf("fixed budget moved to %v", f.d)
	}
}

func TestProbeRead(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MiB")
	}
	p := ProbeRead(2, 3)
	if !(p.GBps > 0) || !(p.MedianGBps > 0 && p.MedianGBps <= p.GBps) || p.Bytes < 256<<20 || p.Threads != 2 || p.Passes != 3 || p.Kernels == "" {
		t.Fatalf("ProbeRead = %+v", p)
	}
}

// countCores counts distinct sibling lists: hardware threads of one core count once, and a CPU whose core
// is unknown makes the count unknown (0).
func TestCountCores(t *testing.T) {
	smt := map[int]string{0: "0,4", 1: "1,5", 2: "2,6", 3: "3,7", 4: "0,4", 5: "1,5", 6: "2,6", 7: "3,7"}
	lookup := func(m map[int]string) func(int) (string, bool) {
		return func(c int) (string, bool) { s, ok := m[c]; return s, ok }
	}
	for _, c := range []struct {
		cpus []int
		m    map[int]string
		want int
	}{
		{[]int{0, 1, 2, 3, 4, 5, 6, 7}, smt, 4},
		{[]int{0, 4}, smt, 1},                            // a cpuset of one core's two threads
		{[]int{0, 1, 5}, smt, 2},                         // two cores
		{[]int{0, 1}, map[int]string{0: "0", 1: "1"}, 2}, // no SMT
		{[]int{0, 9}, smt, 0},                            // CPU 9's core unknown
		{nil, smt, 0},
	} {
		if got := countCores(c.cpus, lookup(c.m)); got != c.want {
			t.Errorf("countCores(%v) = %d, want %d", c.cpus, got, c.want)
		}
	}
	if n := DefaultThreads(); n < 1 || n > runtime.GOMAXPROCS(0) {
		t.Errorf("DefaultThreads() = %d, want 1..GOMAXPROCS (%d)", n, runtime.GOMAXPROCS(0))
	}
}
