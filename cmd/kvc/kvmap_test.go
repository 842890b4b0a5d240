package main

import (
	"image"
	"io"
	"os"
	"path/filepath"
	"testing"

	"kvc/engine"
	"kvc/kvmap"
)

// The README's pictures (docs/kvmap-*.png) are the golden images: `kvc run --kv-map` with these arguments
// regenerates them (KVC_UPDATE_GOLDEN=1 go test ./cmd/kvc -run KVMap rewrites them).
var kvMapGolden = []struct {
	policy, file string
}{
	{"kvcompress", "kvmap-kvcompress.png"},
	{"window", "kvmap-window.png"},
}

func kvMapArgs(policy, out string) []string {
	return []string{"--model", "stories260K", "--device", "cpu", "--prompt", "Once upon a time", "-n", "200", "--temp", "0",
		"--kv-policy", policy, "--kv-rate", "4", "--kv-protect", "8", "--quiet", "--kv-map", out}
}

// TestKVMapMatchesCache: a fixed greedy run's picture shows exactly the cache state the engine holds at the
// end (kept cells where the tables keep a KV, dark elsewhere, one row per layer and KV head).
func TestKVMapMatchesCache(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	ef := engineFlags{model: "stories260K", device: "cpu", kvBlock: 16, maxRows: 256, policy: "kvcompress", rate: 4,
		protect: 8, window: 8, quiet: true, interval: 1}
	l, err := load(&ef, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := &generation{l: l, out: io.Discard, stderr: io.Discard}
	res, err := g.run(l.tok.Encode("Once upon a time", true), engine.SamplerConfig{}, 120, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "map.png")
	opts, _ := ef.compressionOptions()
	if err := writeKVMap(path, g, res.seq, opts); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, path)
	v, err := l.eng.CacheView(res.seq, opts, g.ledger())
	if err != nil {
		t.Fatal(err)
	}
	if v.Rate() < 2 {
		t.Fatalf("compression rate %.2f: the run should have evicted most KVs", v.Rate())
	}
	if err := kvmap.Verify(img, v, 1); err != nil {
		t.Fatal(err)
	}
}

// TestKVMapGolden runs `kvc run --kv-map` as the README says and compares with its pictures.
func TestKVMapGolden(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	for _, gc := range kvMapGolden {
		golden := filepath.Join("..", "..", "docs", gc.file)
		out := filepath.Join(t.TempDir(), gc.file)
		if os.Getenv("KVC_UPDATE_GOLDEN") == "1" {
			out = golden
		}
		stdout := os.Stdout
		os.Stdout, _ = os.Open(os.DevNull)
		err := cmdRun(kvMapArgs(gc.policy, out))
		os.Stdout = stdout
		if err != nil {
			t.Fatal(err)
		}
		got, want := readPNG(t, out), readPNG(t, golden)
		if n, d := kvmap.Diff(got, want, 48); n < 0 || n > got.Bounds().Dx()*got.Bounds().Dy()/200 {
			t.Errorf("%s: the picture differs from %s in %d pixels (largest channel difference %d, sizes %v, %v); if the change is meant, regenerate with KVC_UPDATE_GOLDEN=1",
				gc.policy, golden, n, d, got.Bounds().Size(), want.Bounds().Size())
		}
	}
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	img, err := kvmap.ReadPNG(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
