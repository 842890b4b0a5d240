package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvc/engine"
	"kvc/model"
)

// actModes is the activation settings a product test runs a dtype with: q8_0 with 8-bit and with float
// activations, every other dtype as it is.
func actModes(dt model.DType) []bool {
	if dt == model.Q8_0 {
		return []bool{true, false}
	}
	return []bool{false}
}

// q8ActBound bounds how far row r's product with x may move when x is quantized per group of the
// weight's q8_0 group: each element is off by at most half a step of its group's scale d (plus the
// rounding of x/d, |x/d| <= 127: 127 * 2^-24 < 2^-17 of a step), times the stored weight.
func q8ActBound(t *testing.T, tn *model.Tensor, x []float32, r int) float64 {
	g := tn.Group
	_, d := model.QuantizeQ8_0(x, g)
	var b float64
	for k, dk := range d {
		var wsum float64
		for c := k * g; c < (k+1)*g; c++ {
			wsum += math.Abs(stored(t, tn, r, c))
		}
		b += float64(dk) * (0.5 + 0x1p-17) * wsum
	}
	return b
}

// randQ8Weight is a q8_0 weight of random codes (the whole int8 range, -128 included, which q8_0 files may
// hold though the quantizer never writes it) and random scales of either sign.
func randQ8Weight(r *rand.Rand, rows, cols, g int) *Weight {
	w := &Weight{info: engine.WeightInfo{DType: model.Q8_0, Rows: rows, Cols: cols, Group: g}, data: make([]byte, rows*cols), scales: make([]float32, rows*cols/g)}
	for i := range w.data {
		w.data[i] = byte(r.IntN(256))
	}
	for i := range w.scales {
		w.scales[i] = float32(r.NormFloat64() * 0.01)
	}
	return w
}

// q8KernelSet is a set of 8-bit activation kernels, as the flags that select it.
type q8KernelSet struct {
	name      string
	asm, vnni bool
}

// q8KernelSets is the 8-bit activation kernels this machine runs.
func q8KernelSets() []q8KernelSet {
	var sets []q8KernelSet
	if haveVNNI {
		sets = append(sets, q8KernelSet{"vnni", true, true})
	}
	if haveAsm && haveQ8AVX2 {
		sets = append(sets, q8KernelSet{"avx2", true, false})
	}
	if haveAsm && haveQ8NEON {
		sets = append(sets, q8KernelSet{"neon", true, false})
	}
	return sets
}

// setQ8Kernels selects a kernel set (asm false: q8DotGo) and returns a func that restores the flags.
func setQ8Kernels(asm, vnni bool) func() {
	savedAsm, savedVNNI := useAsm, useVNNI
	useAsm, useVNNI = asm, vnni
	return func() { useAsm, useVNNI = savedAsm, savedVNNI }
}

// The VNNI, AVX2 and NEON kernels give q8DotGo's bits, for every row range a worker may get (the four-row
// kernel, the one-row kernel and both), whole and odd group counts, inputs with an all-zero group and one
// far larger than the rest, and for the four-input kernels over whole and partial row blocks; and q8DotGo is
// the product of the dequantized codes within float rounding (float64 sum).
func TestQ8ActKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	be := New(1)
	defer be.Close()
	defer func(on bool) { q8ActOn = on }(q8ActOn)
	defer setQ8Kernels(useAsm, useVNNI)() // the quantizer below runs with whatever the flags say
	q8ActOn = true                        // whatever KVC_CPU_Q8_ACT says
	const rows = 23
	// 608, 1120: sixteen-group blocks, a pair and an odd group; 288, 800: eight groups after the blocks, and one
	for _, cols := range []int{32, 64, 96, 288, 608, 800, 1120, 4096, 4128} {
		w := randQ8Weight(r, rows, cols, 32)
		const n = 5
		x := randVals(r, n*cols)
		clear(x[cols : cols+32])  // input 1: an all-zero group
		x[2*cols+cols/2+3] *= 1e4 // input 2: an outlier
		a := be.q8ActsFor(x, n, []product{{w: w}})
		for i := range n {
			xq, xs := a.input(i)
			for row := range rows {
				got := float64(q8DotGo(xq, xs, w.data[row*cols:(row+1)*cols], w.scales[row*cols/32:(row+1)*cols/32], 32))
				var want, mag float64
				for c := range cols {
					p := float64(xq[c]) * float64(xs[c/32]) * float64(int8(w.data[row*cols+c])) * float64(w.scales[row*cols/32+c/32])
					want += p
					mag += math.Abs(p)
				}
				if math.Abs(got-want) > 2e-6*mag+1e-30 {
					t.Fatalf("cols %d input %d row %d: q8DotGo %g, float64 %g (|x.w| %g)", cols, i, row, got, want, mag)
				}
			}
			for _, set := range q8KernelSets() {
				for _, rr := range [][2]int{{0, rows}, {5, 6}, {3, 11}, {0, 4}, {17, 23}, {2, 9}} {
					var asm, gosum [rows]float32
					restore := setQ8Kernels(set.asm, set.vnni)
					w.q8Dots(a, i, rr[0], rr[1], asm[:])
					useAsm, useVNNI = false, false
					w.q8Dots(a, i, rr[0], rr[1], gosum[:])
					restore()
					sameBits(t, fmt.Sprintf("cols %d input %d rows %v: %s", cols, i, rr, set.name), asm[:rr[1]-rr[0]], gosum[:rr[1]-rr[0]])
				}
			}
		}
		// the four-input kernels: each input's row-alone bits, for a whole row block and a partial one
		for _, set := range q8KernelSets() {
			for _, rr := range [][2]int{{3, 3 + rowBlock}, {rows - 5, rows}} {
				var d [4][rowBlock]float32
				var want [rowBlock]float32
				restore := setQ8Kernels(set.asm, set.vnni)
				w.q8Block(a, 1, 4, rr[0], rr[1], &d)
				useAsm, useVNNI = false, false
				for k := range 4 {
					w.q8Dots(a, 1+k, rr[0], rr[1], want[:])
					sameBits(t, fmt.Sprintf("cols %d input %d rows %v: four-input %s", cols, 1+k, rr, set.name), d[k][:rr[1]-rr[0]], want[:rr[1]-rr[0]])
				}
				restore()
			}
		}
		a.release()
	}
	if len(q8KernelSets()) == 0 {
		t.Log("no 8-bit activation kernels on this machine: only q8DotGo ran")
	}
}

// The extreme codes: weights of -128 (which q8_0 files may hold) and 127 against activations of +-127 (every
// element of a group the same magnitude), where the AVX2 kernels' 16-bit pair sums are largest (2*128*127)
// and where the sign trick would overflow if it negated the weights instead of the activations. Every
// kernel set gives q8DotGo's bits, decode (four rows and one) and four inputs, and the exact sum.
func TestQ8ActExtremeCodes(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	be := New(1)
	defer be.Close()
	defer func(on bool) { q8ActOn = on }(q8ActOn)
	q8ActOn = true
	const rows, cols, n = 9, 352, 4 // four-row calls and a one-row call; eight groups, a pair and an odd one
	w := randQ8Weight(r, rows, cols, 32)
	for i := range w.data {
		switch row := i / cols; {
		case row < 2: // all -128
			w.data[i] = 0x80
		case row < 4: // all 127
			w.data[i] = 127
		default: // either
			w.data[i] = [2]byte{0x80, 127}[r.IntN(2)]
		}
	}
	x := make([]float32, n*cols)
	for i := range x {
		switch in := i / cols; {
		case in == 0:
			x[i] = 1 // codes 127
		case in == 1:
			x[i] = -1 // codes -127
		default:
			x[i] = float32(2*r.IntN(2) - 1)
		}
	}
	a := be.q8ActsFor(x, n, []product{{w: w}})
	defer a.release()
	for i := range n {
		xq, xs := a.input(i)
		for row := range rows {
			var want float64 // each group's integer sum is exact in float32 (|sum| <= 32*128*127 < 2^24)
			for k := range cols / 32 {
				var sum int
				for c := k * 32; c < (k+1)*32; c++ {
					sum += int(xq[c]) * int(int8(w.data[row*cols+c]))
					if xq[c] != 127 && xq[c] != -127 {
						t.Fatalf("input %d code %d: %d, want +-127", i, c, xq[c])
					}
				}
				want += float64(sum) * float64(w.scales[row*cols/32+k]*xs[k])
			}
			got := q8DotGo(xq, xs, w.data[row*cols:(row+1)*cols], w.scales[row*cols/32:(row+1)*cols/32], 32)
			if math.Abs(float64(got)-want) > 1e-5*math.Abs(want) {
				t.Fatalf("input %d row %d: q8DotGo %g, exact %g", i, row, got, want)
			}
		}
	}
	for _, set := range q8KernelSets() {
		var want [n][rows]float32
		var got [rows]float32
		var d [4][rowBlock]float32
		restore := setQ8Kernels(false, false)
		for i := range n {
			w.q8Dots(a, i, 0, rows, want[i][:])
		}
		useAsm, useVNNI = set.asm, set.vnni
		for i := range n {
			w.q8Dots(a, i, 0, rows, got[:])
			sameBits(t, fmt.Sprintf("input %d: %s", i, set.name), got[:], want[i][:])
		}
		w.q8Block(a, 0, 4, 0, rows, &d)
		restore()
		for i := range n {
			sameBits(t, fmt.Sprintf("input %d: four-input %s", i, set.name), d[i][:rows], want[i][:])
		}
	}
}

// Kernels names the 8-bit activation kernels the flags select (none where q8_0 keeps float activations).
func TestQ8ActKernelsText(t *testing.T) {
	defer func(on bool) { q8ActOn = on }(q8ActOn)
	defer setQ8Kernels(useAsm, useVNNI)()
	for _, c := range []struct {
		on, asm, vnni bool
		want          string
	}{{false, true, true, ""}, {true, true, true, "avx512-vnni"}, {true, true, false, "avx2"}, {true, false, false, "pure Go"}} {
		if c.asm && !haveAsm || c.vnni && !haveVNNI {
			continue
		}
		q8ActOn, useAsm, useVNNI = c.on, c.asm, c.vnni
		if c.want == "avx2" && haveQ8NEON {
			c.want = "neon"
		} else if c.want == "avx2" && !haveQ8AVX2 {
			c.want = "pure Go"
		}
		got := q8ActKernels()
		if c.want == "" && got != "" || c.want != "" && got != "; q8_0 x 8-bit activations: "+c.want {
			t.Errorf("8-bit activations %v, asm %v, vnni %v: %q, want %q", c.on, c.asm, c.vnni, got, c.want)
		}
	}
}

func TestQ8ActSetting(t *testing.T) {
	for _, c := range []struct {
		env       string
		fast, out bool
	}{{"", true, true}, {"", false, false}, {"f32", true, false}, {"q8", false, true}, {"x", true, true}} {
		if got := q8ActSetting(c.env, c.fast); got != c.out {
			t.Errorf("KVC_CPU_Q8_ACT=%q (kernels %v): %v, want %v", c.env, c.fast, got, c.out)
		}
	}
}

// The AVX-512 and AVX2 quantizers give the codes, scales and offsets of the Go one (model.QuantizeQ8_0To),
// on random groups, an all-zero group, and groups whose x/d are exact halves of either sign (d = 1 where
// the group's absmax is 127), where rounding half away from zero and to even part.
func TestQ8ActQuantize(t *testing.T) {
	if len(q8KernelSets()) == 0 {
		t.Skip("no 8-bit activation kernels on this machine")
	}
	r := rand.New(rand.NewPCG(23, 24))
	const cols = 32 * 7
	x := randVals(r, cols)
	clear(x[32:64])
	for i := 64; i < 128; i++ {
		x[i] = float32(r.IntN(254)-127) + 0.5 // halves; the group's absmax is 127.5 or less
	}
	x[64], x[96] = 127, -127 // absmax exactly 127: d = 1
	x[160] = 1e-30           // a tiny scale
	for i := 161; i < 192; i++ {
		x[i] = x[160] * float32(r.IntN(5)-2) / 2
	}
	newActs := func() q8Acts {
		return q8Acts{n: 1, cols: cols, g: 32, q: make([]int8, cols), s: make([]float32, cols/32), corr: make([]int32, cols/4)}
	}
	want := newActs()
	restore := setQ8Kernels(false, false)
	want.quantize(x, 0)
	restore()
	for _, set := range q8KernelSets() {
		got := newActs()
		restore := setQ8Kernels(set.asm, set.vnni)
		got.quantize(x, 0)
		restore()
		sameBits(t, set.name+" scales", got.s, want.s)
		for i := range want.q {
			if got.q[i] != want.q[i] {
				t.Fatalf("%s code %d (x %v, scale %v): %d, Go %d", set.name, i, x[i], want.s[i/32], got.q[i], want.q[i])
			}
		}
		for i := range want.corr {
			if set.name == "neon" { // the NEON quantizer leaves the offsets (the VNNI kernels' only)
				break
			}
			if got.corr[i] != want.corr[i] {
				t.Fatalf("%s corr %d: %d, Go %d", set.name, i, got.corr[i], want.corr[i])
			}
		}
	}
}
