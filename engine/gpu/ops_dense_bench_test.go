package gpu

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/model"
)

// BenchmarkMatVec: one token times a weight matrix per op, on the Vulkan device (record + submit + wait
// per op) and on the CPU backend; MB/s counts the weight's stored bytes (scales included) read per op.
// The small shape shows the fixed per-submission cost. On the device, gpu-GB/s is from timestamps around
// the dispatches; cpu-ms/op is the process's CPU time per op (lavapipe computes on the host's cores, and
// CPU time is steadier than wall time on a shared machine).
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
					c0 := processCPU()
					var gpuTime time.Duration
					for i := 0; i < bb.N; i++ {
						if dev == "cpu" {
							be.MatMul(out, xb, w, 1)
							continue
						}
						d, _, err := g.timeGPU(func() { g.MatMul(out, xb, w, 1) })
						if err != nil {
							bb.Fatal(err)
						}
						gpuTime += d
					}
					bb.StopTimer()
					bb.ReportMetric((processCPU()-c0).Seconds()*1e3/float64(bb.N), "cpu-ms/op")
					if gpuTime > 0 {
						bb.ReportMetric(float64(bytes)*float64(bb.N)/gpuTime.Seconds()/1e9, "gpu-GB/s")
					}
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

// processCPU is the user + system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRowOps: the per-row ops on one vocab-sized row (Llama 3's 128256), as sampling uses them.
func BenchmarkRowOps(bb *testing.B) {
	g := OpenForTest(bb)
	const cols = 128256
	rng := rand.New(rand.NewPCG(3, 4))
	v := make([]float32, cols)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	x, _ := g.AllocBuffer(4 * cols)
	idx, _ := g.AllocBuffer(4 * 64)
	val, _ := g.AllocBuffer(4 * 64)
	if err := g.Write(x, 0, f32Bytes(v)); err != nil {
		bb.Fatal(err)
	}
	for name, op := range map[string]func(){
		"argmax":  func() { g.Argmax(idx, x, 1, cols) },
		"topk64":  func() { g.TopK(idx, val, x, 1, cols, 64) },
		"softmax": func() { g.Softmax(x, 1, cols) },
	} {
		bb.Run(name, func(bb *testing.B) {
			for i := 0; i < bb.N; i++ {
				op()
				if err := g.Sync(); err != nil {
					bb.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatMulBatch: n tokens times a 2048x2048 weight (prefill and batched decode); MB/s counts the
// weight bytes once per op, tok/s is n per op, gpu-ms/op is from timestamps around the dispatch. Each
// product runs on three paths: the device's own choice (path=device), matmul.comp with GPU workgroups
// and the tiled kernel off (path=matmul), and the tiled kernel forced (path=tiled; on a GPU the device
// choice from 64 tokens on).
func BenchmarkMatMulBatch(bb *testing.B) {
	g := OpenForTest(bb)
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 2048, 2048
	vals := make([]float32, rows*cols)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64())
	}
	defer func(v, w bool, m int) { forceGPUWorkgroups, forceTiled, g.tiledMin = v, w, m }(forceGPUWorkgroups, forceTiled, g.tiledMin)
	for _, k := range []wkind{{model.F16, 0, 0}, {model.F8E4M3, model.ScaleBlock, 0}} {
		tn := cpu.EncodeTensor("w", k.dt, rows, cols, false, k.sk, k.group, vals)
		w, err := g.UploadWeight(tn)
		if err != nil {
			bb.Fatal(err)
		}
		for _, n := range []int{1, 8, 64, 256} {
			for _, path := range []string{"device", "matmul", "tiled"} {
				forceGPUWorkgroups, forceTiled, g.tiledMin = path != "device", path == "tiled", 0
				if path == "matmul" {
					g.tiledMin = -1
				}
				bb.Run(fmt.Sprintf("%v/n=%d/path=%s", k, n, path), func(bb *testing.B) {
					x, _ := g.AllocBuffer(int64(4 * n * cols))
					out, _ := g.AllocBuffer(int64(4 * n * rows))
					if err := g.Write(x, 0, f32Bytes(vals[:n*cols])); err != nil {
						bb.Fatal(err)
					}
					bb.SetBytes(model.TensorStoredBytes(tn))
					c0 := processCPU()
					var gpuTime time.Duration
					for i := 0; i < bb.N; i++ {
						d, _, err := g.timeGPU(func() { g.MatMul(out, x, w, n) })
						if err != nil {
							bb.Fatal(err)
						}
						gpuTime += d
					}
					bb.ReportMetric(float64(n*bb.N)/bb.Elapsed().Seconds(), "tok/s")
					bb.ReportMetric((processCPU()-c0).Seconds()*1e3/float64(bb.N), "cpu-ms/op")
					bb.ReportMetric(gpuTime.Seconds()*1e3/float64(bb.N), "gpu-ms/op")
					g.Free(x)
					g.Free(out)
				})
			}
		}
		g.FreeWeight(w)
	}
}
