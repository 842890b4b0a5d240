package main

import (
	"bytes"
	"image/png"
	"os"
	"testing"
)

func TestWritePlot(t *testing.T) {
	var buf bytes.Buffer
	err := writePlot(&buf, plotSpec{Title: "stories260K perplexity", XLabel: "compression rate", YLabel: "ppl", LogX: true,
		Series: []series{{"kvcompress", []float64{1, 2, 4, 8}, []float64{3.1, 3.2, 3.4, 4}},
			{"uniform", []float64{1, 2, 4, 8}, []float64{3.1, 3.3, 3.8, 5}}}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 900 {
		t.Fatalf("width %d", img.Bounds().Dx())
	}
	// Both series' colours appear.
	found := map[[3]uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			found[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	for _, c := range palette[:2] {
		if !found[[3]uint32{uint32(c.R), uint32(c.G), uint32(c.B)}] {
			t.Fatalf("series colour %v not drawn", c)
		}
	}
	if p := os.Getenv("KVC_PLOT_OUT"); p != "" {
		os.WriteFile(p, buf.Bytes(), 0o644)
	}
	if err := writePlot(&buf, plotSpec{}); err == nil {
		t.Fatalf("an empty plot should be an error")
	}
}
