package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"kvc/engine"
	"kvc/model"
)

// Each fused op gives exactly the bits of the unfused sequence it replaces.

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %v, unfused %v", what, i, got[i], want[i])
		}
	}
}

func TestMatMulAddIsMatMulThenAdd(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	be := &Backend{Threads: 3}
	kinds := []struct {
		dt    model.DType
		sk    model.ScaleKind
		group int
	}{{model.F32, 0, 0}, {model.F16, 0, 0}, {model.BF16, 0, 0}, {model.Q8_0, 0, 32},
		{model.F8E4M3, model.ScaleChannel, 0}, {model.F8E4M3, model.ScaleBlock, 0}}
	// the last shape is large enough (rows*cols >= 1<<15) to split rows over goroutines
	for _, s := range [][3]int{{1, 32, 1}, {7, 96, 3}, {129, 288, 5}} {
		for _, k := range kinds {
			rows, cols, n := s[0], s[1], s[2]
			tn := EncodeTensor("w", k.dt, rows, cols, false, k.sk, k.group, randVec(rng, rows*cols))
			w, err := be.UploadWeight(tn)
			if err != nil {
				t.Fatal(err)
			}
			x := bufOf(t, be, randVec(rng, n*cols))
			init := randVec(rng, n*rows)
			fused, ref, tmp := bufOf(t, be, init), bufOf(t, be, init), buf(t, be, n*rows)
			be.MatMulAdd(fused, x, w, n)
			be.MatMul(tmp, x, w, n)
			be.Add(ref, ref, tmp, n*rows)
			sameBits(t, fmt.Sprintf("%v %dx%d n=%d", k.dt, rows, cols, n), fused.F32(), ref.F32())
			changed := false
			for i, v := range fused.F32() {
				changed = changed || v != init[i]
			}
			if !changed {
				t.Fatalf("%v: MatMulAdd left out unchanged", k.dt)
			}
		}
	}
}

func TestMatMulSwiGLUIsMatMulsThenSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	be := &Backend{Threads: 3}
	pairs := [][2]model.DType{{model.F32, model.F32}, {model.F16, model.F16}, {model.BF16, model.F32}, {model.Q8_0, model.Q8_0}, {model.F8E4M3, model.F16}}
	for _, s := range [][3]int{{1, 32, 1}, {9, 64, 3}, {129, 160, 4}} {
		for _, dts := range pairs {
			rows, cols, n := s[0], s[1], s[2]
			var ws [2]engine.Weight
			for i, dt := range dts {
				group, sk := 0, model.ScaleNone
				if dt == model.Q8_0 {
					group = 32
				}
				if dt == model.F8E4M3 {
					sk = model.ScaleChannel
				}
				w, err := be.UploadWeight(EncodeTensor("w", dt, rows, cols, false, sk, group, randVec(rng, rows*cols)))
				if err != nil {
					t.Fatal(err)
				}
				ws[i] = w
			}
			x := bufOf(t, be, randVec(rng, n*cols))
			fused, g, u := buf(t, be, n*rows), buf(t, be, n*rows), buf(t, be, n*rows)
			be.MatMulSwiGLU(fused, x, ws[0], ws[1], n)
			be.MatMul(g, x, ws[0], n)
			be.MatMul(u, x, ws[1], n)
			be.SwiGLU(g, g, u, n*rows)
			sameBits(t, fmt.Sprintf("%v/%v %dx%d n=%d", dts[0], dts[1], rows, cols, n), fused.F32(), g.F32())
		}
	}
}

func TestRopeKVWriteIsRopeRopeKVWrite(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	be := &Backend{Threads: 2}
	const bs, blocks, n, qHeads, kvHeads = 4, 6, 3, 4, 2
	for _, typ := range []engine.KVType{engine.KVF32, engine.KVF16} {
		for _, layout := range []model.RopeLayout{model.RopeInterleaved, model.RopeRotateHalf} {
			hd := 6
			p := engine.RopeParams{Layout: layout, Theta: 10000}
			pools := [2]*KVPool{}
			for i := range pools {
				pl, err := be.NewKVPool(blocks, bs, hd, typ)
				if err != nil {
					t.Fatal(err)
				}
				pools[i] = pl.(*KVPool)
				for s := range pools[i].Metric {
					pools[i].Metric[s] = float32(s) + 0.5 // cleared where written
				}
			}
			perm := rng.Perm(blocks * bs)
			sl := make([]int32, n*kvHeads)
			for i := range sl {
				sl[i] = int32(perm[i])
			}
			slots, pos := buf(t, be, len(sl)), buf(t, be, n)
			copy(slots.I32(), sl)
			copy(pos.I32(), []int32{2, 9, 4000})
			qv, kv, vv := randVec(rng, n*qHeads*hd), randVec(rng, n*kvHeads*hd), randVec(rng, n*kvHeads*hd)
			q, k, v := bufOf(t, be, qv), bufOf(t, be, kv), bufOf(t, be, vv)
			q2, k2, v2 := bufOf(t, be, qv), bufOf(t, be, kv), bufOf(t, be, vv)
			be.RopeKVWrite(pools[0], q, k, v, slots, pos, n, qHeads, kvHeads, p)
			be.RoPE(q2, pos, n, qHeads, hd, p)
			be.RoPE(k2, pos, n, kvHeads, hd, p)
			be.KVWrite(pools[1], k2, v2, slots, pos, n, kvHeads)
			what := fmt.Sprintf("kv type %d %v", typ, layout)
			sameBits(t, what+" q", q.F32(), q2.F32())
			sameBits(t, what+" k", k.F32(), k2.F32())
			if math.Float32bits(q.F32()[1]) == math.Float32bits(qv[1]) && math.Float32bits(q.F32()[hd*qHeads+1]) == math.Float32bits(qv[hd*qHeads+1]) {
				t.Fatalf("%s: q was not rotated", what)
			}
			for s := 0; s < blocks*bs; s++ {
				a, b := pools[0], pools[1]
				if a.Pos[s] != b.Pos[s] || a.Metric[s] != b.Metric[s] {
					t.Fatalf("%s: slot %d position/metric %d/%v, unfused %d/%v", what, s, a.Pos[s], a.Metric[s], b.Pos[s], b.Metric[s])
				}
				sameBits(t, fmt.Sprintf("%s slot %d K", what, s), a.K(s), b.K(s))
				sameBits(t, fmt.Sprintf("%s slot %d V", what, s), a.V(s), b.V(s))
			}
			if pools[0].Pos[sl[0]] != 2 || pools[0].Metric[sl[0]] != 0 {
				t.Fatalf("%s: slot %d not written", what, sl[0])
			}
		}
	}
}

func TestMatMulQKVIsThreeMatMuls(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	be := &Backend{Threads: 2}
	const cols, n = 40, 3
	rows := [3]int{12, 4, 4}
	x := bufOf(t, be, randVec(rng, n*cols))
	var ws [3]engine.Weight
	var fused, ref [3]*Buf
	for i, r := range rows {
		w, err := be.UploadWeight(EncodeTensor(fmt.Sprintf("w%d", i), model.F16, r, cols, false, model.ScaleNone, 0, randVec(rng, r*cols)))
		if err != nil {
			t.Fatal(err)
		}
		ws[i], fused[i], ref[i] = w, buf(t, be, n*r), buf(t, be, n*r)
		be.MatMul(ref[i], x, w, n)
	}
	be.MatMulQKV(fused[0], fused[1], fused[2], x, ws[0], ws[1], ws[2], n)
	for i := range ws {
		sameBits(t, fmt.Sprintf("output %d", i), fused[i].F32(), ref[i].F32())
	}
}
