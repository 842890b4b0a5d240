package engine_test

import (
	"math"
	"testing"

	"kvc/engine"
	"kvc/model"
)

// TestRopeFreqsLlama3: high frequencies kept, low ones divided by the factor, the band in between smooth.
func TestRopeFreqsLlama3(t *testing.T) {
	sc := &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	f0 := engine.RopeFreqs(128, engine.RopeParams{Theta: 500000})
	f1 := engine.RopeFreqs(128, engine.RopeParams{Theta: 500000, Scaling: sc})
	if f1[0] != f0[0] || math.Abs(f1[63]-f0[63]/8) > 1e-18 {
		t.Errorf("llama3 ends: %v vs %v, %v vs %v", f1[0], f0[0], f1[63], f0[63]/8)
	}
	mid := 0
	for i := range f0 {
		wl := 2 * math.Pi / f0[i]
		if wl >= 8192/4.0 && wl <= 8192 {
			mid++
			if !(f1[i] < f0[i] && f1[i] > f0[i]/8) {
				t.Errorf("pair %d in the smooth band: %v not between %v and %v", i, f1[i], f0[i]/8, f0[i])
			}
		}
	}
	if mid == 0 {
		t.Errorf("no frequency in the smooth band")
	}
}
