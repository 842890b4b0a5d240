package gpu

import (
	"fmt"
	"testing"

	"kvc/engine"
	"kvc/engine/vk"
	"kvc/model"
)

// The tiled kernel (matmul_tiled.comp), forced for every n, against the CPU: every weight dtype and
// scale layout at n = 1, 7, 63 and 257 tokens (ragged token tiles; the grid capped at 2 token tiles so
// that the kernel's loop over tiles runs), 67 rows (a ragged row tile, and a ragged GLU tile of 32),
// columns shorter than one slab, ragged slabs and several slabs. MatMul, MatMulAdd, MatMulSwiGLU and
// MatMulQKV, each within its bound of the CPU and bit for bit the device's own MatMul sequence (the
// check helpers of ops_dense_test.go and ops_fused_test.go).
func TestMatMulTiled(t *testing.T) {
	defer func(v, w bool, c int) { forceGPUWorkgroups, forceTiled, tiledMaxTokenTiles = v, w, c }(forceGPUWorkgroups, forceTiled, tiledMaxTokenTiles)
	forceGPUWorkgroups, forceTiled, tiledMaxTokenTiles = true, true, 2
	e := newDenseEnv(t, 31)
	colsFor := map[int]int{1: 300, 7: 7, 63: 101, 257: 45}
	for _, k := range allKinds {
		for _, n := range []int{1, 7, 63, 257} {
			rows, cols := 67, k.fixCols(colsFor[n])
			what := fmt.Sprintf("%v %dx%d n=%d", k, rows, cols, n)
			e.checkMatMul(what, e.tensor(k, rows, cols), n)
			e.checkMatMulAdd(what, e.tensor(k, rows, cols), n)
			e.checkMatMulSwiGLU(what, e.tensor(k, rows, cols), e.tensor(k, rows, cols), n, true)
			e.checkMatMulQKV(what, [3]*model.Tensor{e.tensor(k, rows, cols), e.tensor(k, 33, cols), e.tensor(k, 33, cols)}, n)
		}
	}
}

// MatMul runs the tiled kernel from tiledMinRows rows on, on GPUs (and with GPU workgroups forced) only,
// where the device allows it; Options.TiledMinRows moves the threshold on any device or turns it off.
func TestTiledChosen(t *testing.T) {
	defer func(v bool) { forceGPUWorkgroups = v }(forceGPUWorkgroups)
	g := OpenForTest(t)
	w := &Weight{info: engine.WeightInfo{Name: "w", DType: model.F16, Rows: 4096, Cols: 4096}}
	cases := []struct {
		force  bool
		min    int
		n      int
		want   bool
		shared int // MaxSharedMemory override (0: the device's)
	}{
		{true, 0, tiledMinRows - 1, false, 0},
		{true, 0, tiledMinRows, true, 0},
		{true, 0, 4096, true, 0},
		{true, 0, 4096, false, tiledSharedMem - 4}, // the slabs do not fit: matmul.comp
		{true, -1, 4096, false, 0},                 // turned off
		{false, 16, 16, true, 0},                   // any device type with an explicit threshold
		{false, 16, 15, false, 0},
	}
	caps := g.caps
	defer func() { g.caps = caps }()
	for _, c := range cases {
		forceGPUWorkgroups = c.force
		g.tiledMin = c.min
		g.caps = caps
		if c.shared > 0 {
			g.caps.MaxSharedMemory = c.shared
		}
		if got := g.matmulVariant(w, c.n).tiled; got != c.want {
			t.Errorf("force GPU workgroups %v, TiledMinRows %d, n %d, shared %d: tiled %v, want %v", c.force, c.min, c.n, g.caps.MaxSharedMemory, got, c.want)
		}
	}
	// Without forcing, a CPU device (lavapipe) keeps matmul_rows.comp or matmul.comp for every n.
	forceGPUWorkgroups, g.tiledMin, g.caps = false, 0, caps
	if got := g.matmulVariant(w, 4096).tiled; got != (g.info.Type != vk.TypeCPU) {
		t.Errorf("device type %v, n 4096: tiled %v", g.info.Type, got)
	}
}
