package model

import (
	"fmt"
	"math"
)

// checkScales rejects NaN/Inf scales, and zero ones when nonzero is asked (a zero scale erases a weight
// group and is a broken export, except Q8_0 groups that are genuinely all zero).
func checkScales(file, src string, s []float32, nonzero bool) error {
	for i, v := range s {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: tensor %s: scale %d is %v, want a finite number", file, src, i, v)
		}
		if nonzero && v == 0 {
			return fmt.Errorf("%s: tensor %s: scale %d is 0, want nonzero", file, src, i)
		}
	}
	return nil
}
