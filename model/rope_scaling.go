package model

import (
	"fmt"
	"math"
)

// Llama3RopeFactors are the per-frequency divisors that llama3 rope scaling applies: pair i of a head of
// headDim rotates at theta^(-2i/headDim) / factors[i]. GGUF files store them as rope_freqs.weight.
func Llama3RopeFactors(s RopeScaling, theta float64, headDim int) []float32 {
	out := make([]float32, headDim/2)
	lowWave := float64(s.OriginalContext) / s.LowFreqFactor
	highWave := float64(s.OriginalContext) / s.HighFreqFactor
	for i := range out {
		freq := math.Pow(theta, -2*float64(i)/float64(headDim))
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(s.Factor)
		default:
			smooth := (float64(s.OriginalContext)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			out[i] = float32(1 / ((1-smooth)/s.Factor + smooth))
		}
	}
	return out
}

// FitLlama3Scaling finds the llama3 rope scaling whose factors equal the given ones (within 1e-4), trying the
// published Llama-3.1/3.2 settings and their neighbours. Factors that are all 1 mean no scaling (nil).
func FitLlama3Scaling(factors []float32, theta float64, headDim int) (*RopeScaling, error) {
	if len(factors) != headDim/2 {
		return nil, fmt.Errorf("%d factors for head dim %d, want %d", len(factors), headDim, headDim/2)
	}
	top := float32(1)
	all1 := true
	for _, f := range factors {
		if !(f > 0) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("factor %v is not a positive number", f)
		}
		top = max(top, f)
		all1 = all1 && f == 1
	}
	if all1 {
		return nil, nil
	}
	for _, orig := range []int{8192, 4096, 2048, 16384, 32768, 65536, 131072} {
		for _, low := range []float64{1, 0.5, 2} {
			for _, high := range []float64{4, 2, 8, 16, 32} {
				s := RopeScaling{Type: "llama3", Factor: float64(top), LowFreqFactor: low, HighFreqFactor: high, OriginalContext: orig}
				want := Llama3RopeFactors(s, theta, headDim)
				ok := true
				for i := range want {
					if math.Abs(float64(want[i]-factors[i])) > 1e-4*float64(max(want[i], 1)) {
						ok = false
						break
					}
				}
				if ok {
					return &s, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("the RoPE factors (max %g) match no llama3 rope scaling setting; other scalings are not supported", top)
}
