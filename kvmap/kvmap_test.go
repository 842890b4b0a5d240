package kvmap

import (
	"flag"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"kvc/kvpages"
)

var update = flag.Bool("update", false, "rewrite the golden pictures in testdata")

// syntheticView keeps a random subset of positions per head, in a shuffled logical order (as compaction
// leaves it), with the sinks and protected window always kept.
func syntheticView(seed uint64, layers, heads, n, b int, policy kvpages.Policy) *kvpages.CacheView {
	r := rand.New(rand.NewPCG(seed, 1))
	v := &kvpages.CacheView{Layers: layers, KVHeads: heads, BlockSize: b, NextPos: n, Policy: policy,
		Budget: kvpages.Budget{MaxCacheTokens: 2 * b}, Protect: 4, Sinks: 2, BlocksTotal: 100, BlockBytes: 640,
		Ledger: kvpages.Ledger{Rounds: 3, FreedBlocks: 7}}
	for range layers * heads {
		var h kvpages.HeadView
		for p := range n {
			if v.Sink(p) || v.Protected(p) || r.IntN(3) == 0 {
				h.Pos = append(h.Pos, int32(p))
				h.Metric = append(h.Metric, float32(r.ExpFloat64()))
			}
		}
		r.Shuffle(len(h.Pos), func(i, j int) {
			h.Pos[i], h.Pos[j] = h.Pos[j], h.Pos[i]
			h.Metric[i], h.Metric[j] = h.Metric[j], h.Metric[i]
		})
		for i := 0; i < len(h.Pos); i += b {
			h.Blocks = append(h.Blocks, int32(v.BlocksInUse))
			v.BlocksInUse++
		}
		v.Heads = append(v.Heads, h)
	}
	return v
}

func TestVerifyMatchesState(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		layers, heads, n, bs int
		policy               kvpages.Policy
	}{
		{"kvcompress", 3, 2, 70, 4, kvpages.PolicyKVCompress},
		{"window one head", 2, 1, 33, 16, kvpages.PolicyWindow},
		{"wide context", 2, 2, 3000, 16, kvpages.PolicyKVCompress},
		{"many heads", 16, 8, 50, 16, kvpages.PolicyUniform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := syntheticView(7, tc.layers, tc.heads, tc.n, tc.bs, tc.policy)
			for _, scale := range []int{1, 2} {
				img, l := Render(Frame{View: v, Model: "synthetic", Text: "hello\nworld"}, scale)
				if l.Rows != tc.layers*tc.heads {
					t.Fatalf("layout has %d rows, want %d", l.Rows, tc.layers*tc.heads)
				}
				if err := Verify(img, v, scale); err != nil {
					t.Fatalf("scale %d: %v", scale, err)
				}
			}
			// The check can fail: one kept cell painted dark, or one evicted cell painted kept.
			img, l := Render(Frame{View: v}, 1)
			hd := len(v.Heads) - 1
			c := int(v.Heads[hd].Pos[0]) / l.PosPerCol
			fill(img, l.Cell(hd, v.KVHeads, c), Evicted)
			if err := Verify(img, v, 1); err == nil {
				t.Fatal("Verify accepted a kept KV drawn as evicted")
			}
		})
	}
}

func TestVerifyRejectsWrongShape(t *testing.T) {
	v := syntheticView(1, 2, 2, 40, 4, kvpages.PolicyKVCompress)
	img, _ := Render(Frame{View: v}, 1)
	w := syntheticView(1, 2, 2, 41, 4, kvpages.PolicyKVCompress)
	if err := Verify(img, w, 1); err == nil {
		t.Fatal("Verify accepted a picture of 40 positions for a view of 41")
	}
	// Same shape, other kept sets.
	if err := Verify(img, syntheticView(2, 2, 2, 40, 4, kvpages.PolicyKVCompress), 1); err == nil {
		t.Fatal("Verify accepted another cache state's picture")
	}
}

func TestGolden(t *testing.T) {
	v := syntheticView(3, 2, 2, 60, 4, kvpages.PolicyKVCompress)
	img, _ := Render(Frame{View: v, Model: "synthetic", Text: "Once upon a time", Status: "paused"}, 1)
	compareGolden(t, img, filepath.Join("testdata", "synthetic.png"), *update)
}

// compareGolden compares img with the PNG at path: at most 0.5% of the pixels may differ, by at most 48 per
// channel (font and metric-colour rounding); update rewrites the file instead.
func compareGolden(t *testing.T, img image.Image, path string, update bool) {
	t.Helper()
	if update {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (regenerate with -update)", err)
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if n, d := Diff(img, want, 48); n < 0 || n > img.Bounds().Dx()*img.Bounds().Dy()/200 {
		t.Fatalf("picture differs from %s: %d pixels beyond tolerance (largest channel difference %d); sizes %v and %v",
			path, n, d, img.Bounds().Size(), want.Bounds().Size())
	}
}

func TestDiff(t *testing.T) {
	a := image.NewRGBA(image.Rect(0, 0, 4, 4))
	b := image.NewRGBA(image.Rect(0, 0, 4, 4))
	b.Set(1, 1, color.RGBA{10, 0, 0, 0})
	b.Set(2, 2, color.RGBA{100, 0, 0, 0})
	if n, d := Diff(a, b, 20); n != 1 || d != 100 {
		t.Fatalf("Diff = %d pixels, max %d; want 1, 100", n, d)
	}
	if n, _ := Diff(a, image.NewRGBA(image.Rect(0, 0, 4, 5)), 0); n != -1 {
		t.Fatalf("Diff of different sizes = %d, want -1", n)
	}
}
