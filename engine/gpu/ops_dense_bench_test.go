package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// BenchmarkMatVec: one token times a weight matrix per op, on the Vulkan device (record + submit + wait
// per op) and on the CPU backend; MB/s counts the weight's stored bytes (scales included) read per op.
// A smaller shape than 4096x4096 shows the fixed per-submission cost.
func BenchmarkMatVec(bb *testing.B) {
	shapes := [][2]int{{4096, 4096}, {2048, 8192}, {512, 512}}
	kinds := []wkind{
		{model.F32, 0, 0}, {model.F16, 0, 0}, {model.BF16, 0, 0}, {model.Q8_0, 0, 32},
		{model.F8E4M3, model.ScaleChannel, 0}, {model.F8E4M3, model.ScaleBlock, 0},
	}
	g := OpenForTest(bb)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		rows, cols := s[0], s[1]
		x := make([]float32, cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		vals := make([]float32, rows*cols)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64())
		}
		for _, k := range kinds {
			tn := cpu.EncodeTensor("w", k.dt, rows, cols, false, k.sk, k.group, vals)
			bytes := model.TensorStoredBytes(tn)
			for _, dev := range []string{"vulkan", "cpu"} {
				bb.Run(fmt.Sprintf("%s/%v/%dx%d", dev, k, rows, cols), func(bb *testing.B) {
					var be engine.Backend = &cpu.Backend{}
					if dev == "vulkan" {
						be = g
					}
					w, err := be.UploadWeight(tn)
					if err != nil {
						bb.Fatal(err)
					}
					xb, _ := be.Alloc(int64(4 * cols))
					out, _ := be.Alloc(int64(4 * rows))
					if err := be.Write(xb, 0, f32Bytes(x)); err != nil {
						bb.Fatal(err)
					}
					be.MatMul(out, xb, w, 1) // warm: pipeline creation, first touch
					if err := be.Sync(); err != nil {
						bb.Fatal(err)
					}
					bb.SetBytes(bytes)
					bb.ResetTimer()
					for i := 0; i < bb.N; i++ {
						be.MatMul(out, xb, w, 1)
						if err := be.Sync(); err != nil {
							bb.Fatal(err)
						}
					}
					bb.StopTimer()
					if gw, ok := w.(*Weight); ok {
						g.FreeWeight(gw)
					}
					be.Free(xb)
					be.Free(out)
				})
			}
		}
	}
}
