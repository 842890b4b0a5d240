package model

import "testing"

func TestFitLlama3Scaling(t *testing.T) {
	want := RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	f := Llama3RopeFactors(want, 500000, 128)
	got, err := FitLlama3Scaling(f, 500000, 128)
	if err != nil || got == nil || *got != want {
		t.Fatalf("fit = %+v, %v; want %+v", got, err, want)
	}
	// Llama-3.2's factor 32.
	want.Factor = 32
	if got, err := FitLlama3Scaling(Llama3RopeFactors(want, 500000, 64), 500000, 64); err != nil || *got != want {
		t.Fatalf("fit = %+v, %v; want %+v", got, err, want)
	}
	ones := make([]float32, 32)
	for i := range ones {
		ones[i] = 1
	}
	if got, err := FitLlama3Scaling(ones, 10000, 64); err != nil || got != nil {
		t.Fatalf("all-one factors: %+v, %v", got, err)
	}
	f[3] *= 1.5
	if _, err := FitLlama3Scaling(f, 500000, 128); err == nil {
		t.Fatalf("perturbed factors fitted")
	}
	if _, err := FitLlama3Scaling(f[:10], 500000, 128); err == nil {
		t.Fatalf("wrong length accepted")
	}
}
