package engine

import "math"

// RopeFreqs returns the rotation frequency of each of the headDim/2 pairs: theta^(-2i/headDim), with
// Llama-3.1 scaling when p.Scaling is set. Both backends use these float64 values.
func RopeFreqs(headDim int, p RopeParams) []float64 {
	f := make([]float64, headDim/2)
	for i := range f {
		f[i] = math.Pow(p.Theta, -float64(2*i)/float64(headDim))
	}
	s := p.Scaling
	if s == nil {
		return f
	}
	orig := float64(s.OriginalContext)
	lowWavelen := orig / s.LowFreqFactor
	highWavelen := orig / s.HighFreqFactor
	for i, fr := range f {
		wavelen := 2 * math.Pi / fr
		switch {
		case wavelen < highWavelen:
		case wavelen > lowWavelen:
			f[i] = fr / s.Factor
		default:
			smooth := (orig/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			f[i] = (1-smooth)*fr/s.Factor + smooth*fr
		}
	}
	return f
}
