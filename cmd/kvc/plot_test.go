package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
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

// kvc eval sweep --out DIR with an existing folder writes sweep.md, sweep.csv and sweep.png inside it
// (it used to write DIR.md beside it); a prefix in a missing folder is refused before the sweep runs.
func TestSweepOutFolder(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	dir := t.TempDir()
	out := filepath.Join(dir, "results")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"eval", "sweep", "--model", "stories260K", "--device", "cpu", "--text", filepath.Join("testdata", "stories-t1.txt"),
		"--ctx", "40", "--policies", "window", "--budgets", "16", "--kv-protect", "8", "--quiet", "--out"}
	var errOut bytes.Buffer
	var st int
	captureStdout(t, func() { st = runMain(append(args, out), os.Stdout, &errOut) })
	if st != 0 {
		t.Fatalf("sweep: status %d\n%s", st, errOut.String())
	}
	for _, f := range []string{"sweep.md", "sweep.csv", "sweep.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written inside --out: %v", f, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files written beside the folder: %v", ents)
	}
	errOut.Reset()
	st = runMain(append(args, filepath.Join(dir, "missing", "x")), os.Stdout, &errOut)
	if st == 0 || !strings.Contains(errOut.String(), "does not exist") {
		t.Errorf("prefix in a missing folder: status %d, stderr %s", st, errOut.String())
	}
}
