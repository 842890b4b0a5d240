// Package kvmap draws a sequence's paged KV cache as a picture: one row per (layer, KV head), one column per
// token position, kept KVs coloured by their eviction metric, evicted ones dark. `kvc run --kv-map` writes
// it as a PNG and kvc-view shows it in a window; both call Render, so they show the same picture.
package kvmap

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"kvc/kvpages"
)

// Frame is what one picture shows.
type Frame struct {
	View   *kvpages.CacheView
	Model  string // name shown in the title
	Text   string // the sequence's text so far (its last lines are shown under the map)
	Status string // optional line under the title (kvc-view: running, paused, keys)
}

// Colours of the picture; tests read pixels against them.
var (
	Background  = color.RGBA{12, 12, 16, 255}
	Evicted     = color.RGBA{40, 40, 44, 255}
	ProtectMark = color.RGBA{0, 229, 255, 255}
	SinkMark    = color.RGBA{255, 64, 200, 255}
	BlockEven   = color.RGBA{210, 210, 210, 255}
	BlockOdd    = color.RGBA{110, 110, 110, 255}
	NoMetric    = color.RGBA{64, 160, 150, 255} // kept KVs under a policy that keeps no metric (window, full)
	TextColor   = color.RGBA{230, 230, 230, 255}
	DimText     = color.RGBA{150, 150, 160, 255}
)

// Geometry of one row of cells (in unscaled pixels): the metric colour fills the top, the block stripe
// the bottom, and one background line separates rows.
const (
	margin     = 8
	lineH      = 15 // text line height (basicfont 7x13 plus spacing)
	charW      = 7
	markH      = 2 // protected / sink mark at the top of a cell
	stripeH    = 2 // block parity stripe at the bottom of a cell
	maxMapW    = 1024
	textLines  = 5
	minWidth   = 760
	legendBarW = 160
)

// Layout says where things are in a picture rendered at scale 1; Render's image is this scaled up.
type Layout struct {
	Width, Height int
	MapX, MapY    int // top-left of the cache map
	CellW, RowH   int // pixels per column and per (layer, head) row
	PosPerCol     int // positions per column (1 unless the context is wider than the map)
	Cols, Rows    int
	layerGap      int
}

// RowY is the top of head hd's row.
func (l Layout) RowY(hd, kvHeads int) int {
	return l.MapY + hd*l.RowH + (hd/kvHeads)*l.layerGap
}

// Cell is the rectangle (scale 1) of head hd's column c (positions c*PosPerCol ...), without the row gap.
func (l Layout) Cell(hd, kvHeads, c int) image.Rectangle {
	x, y := l.MapX+c*l.CellW, l.RowY(hd, kvHeads)
	return image.Rect(x, y, x+l.CellW, y+l.RowH-1)
}

// Plan computes the layout for a view.
func Plan(v *kvpages.CacheView) Layout {
	l := Layout{Rows: len(v.Heads), PosPerCol: 1}
	n := max(v.NextPos, 1)
	l.CellW = min(max(maxMapW/n, 1), 6)
	if n > maxMapW {
		l.PosPerCol = (n + maxMapW - 1) / maxMapW
	}
	l.Cols = (n + l.PosPerCol - 1) / l.PosPerCol
	l.RowH = lineH - 1
	if l.Rows > 48 { // many heads: thin rows, labels per layer only
		l.RowH = max(stripeH+3, 640/l.Rows)
	}
	if v.KVHeads > 1 {
		l.layerGap = 3
	}
	labelW := 8 * charW
	countW := 14 * charW
	l.MapX = margin + labelW
	l.MapY = margin + 3*lineH + 4
	mapH := l.Rows*l.RowH + (v.Layers-1)*l.layerGap
	l.Width = max(l.MapX+l.Cols*l.CellW+8+countW+margin, minWidth)
	l.Height = l.MapY + mapH + 8 + 2*lineH + 6 + textLines*lineH + margin
	return l
}

// Render draws f at an integer scale (2 on a HiDPI screen: the same picture with each pixel doubled).
func Render(f Frame, scale int) (*image.RGBA, Layout) {
	v := f.View
	l := Plan(v)
	img := image.NewRGBA(image.Rect(0, 0, l.Width, l.Height))
	draw.Draw(img, img.Bounds(), image.NewUniform(Background), image.Point{}, draw.Src)
	t := &textDrawer{img: img, maxX: l.Width - margin}

	title := fmt.Sprintf("%s  |  policy %s  |  budget %s  |  %d positions", f.Model, v.Policy, v.BudgetString(), v.NextPos)
	t.at(margin, margin, title, TextColor)
	stats := fmt.Sprintf("kept %d of %d KVs (%.2fx)  |  blocks: seq %d, pool %d used / %d free  |  freed %s in %d rounds",
		v.KeptKVs(), v.FullKVs(), v.Rate(), v.SeqBlocks(), v.BlocksInUse, v.BlocksTotal-v.BlocksInUse,
		kvpages.FormatBytes(v.BytesFreed()), v.Ledger.Rounds)
	t.at(margin, margin+lineH, stats, DimText)
	if f.Status != "" {
		t.at(margin, margin+2*lineH, f.Status, DimText)
	}

	drawMap(img, l, v, t)

	y := l.MapY + l.Rows*l.RowH + (v.Layers-1)*l.layerGap + 8
	drawLegend(img, t, margin, y, v)
	y += 2*lineH + 6
	for i, line := range lastLines(f.Text, (l.Width-2*margin)/charW, textLines) {
		t.at(margin, y+i*lineH, line, TextColor)
	}
	return upscale(img, scale), l
}

func drawMap(img *image.RGBA, l Layout, v *kvpages.CacheView, t *textDrawer) {
	lo, hi, haveMetric := metricRange(v)
	labels := l.RowH >= lineH-1
	layerEvery := max(1, (lineH+l.RowH*v.KVHeads-1)/(l.RowH*v.KVHeads+l.layerGap))
	for hd := range v.Heads {
		layer, head := hd/v.KVHeads, hd%v.KVHeads
		y := l.RowY(hd, v.KVHeads)
		switch {
		case labels:
			t.at(margin, y, fmt.Sprintf("L%d H%d", layer, head), DimText)
			t.at(l.MapX+l.Cols*l.CellW+8, y, fmt.Sprintf("%d kv %d blk", v.Kept(hd), len(v.Heads[hd].Blocks)), DimText)
		case head == 0 && layer%layerEvery == 0:
			t.at(margin, y, fmt.Sprintf("L%d", layer), DimText)
		}
		at := v.KeptAt(hd)
		hv := v.Heads[hd]
		for c := range l.Cols {
			r := l.Cell(hd, v.KVHeads, c)
			// A column of several positions shows its best kept KV; it is dark only if all were evicted.
			best := -1
			for p := c * l.PosPerCol; p < min((c+1)*l.PosPerCol, v.NextPos); p++ {
				if i := at[p]; i >= 0 && (best < 0 || hv.Metric[i] > hv.Metric[best]) {
					best = i
				}
			}
			if best < 0 {
				fill(img, r, Evicted)
				continue
			}
			col := NoMetric
			if haveMetric {
				col = ramp(scaleMetric(hv.Metric[best], lo, hi))
			}
			fill(img, r, col)
			p := int(hv.Pos[best])
			switch {
			case v.Sink(p):
				fill(img, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+markH), SinkMark)
			case v.Protected(p):
				fill(img, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+markH), ProtectMark)
			}
			stripe := BlockEven
			if (best/v.BlockSize)%2 == 1 {
				stripe = BlockOdd
			}
			fill(img, image.Rect(r.Min.X, r.Max.Y-stripeH, r.Max.X, r.Max.Y), stripe)
		}
	}
}

func drawLegend(img *image.RGBA, t *textDrawer, x, y int, v *kvpages.CacheView) {
	sw := func(c color.RGBA, label string) {
		fill(img, image.Rect(x, y+2, x+10, y+12), c)
		t.at(x+14, y, label, DimText)
		x += 14 + (len(label)+2)*charW
	}
	sw(Evicted, "evicted")
	sw(ProtectMark, fmt.Sprintf("protected (last %d)", v.Protect))
	if v.Sinks > 0 {
		sw(SinkMark, fmt.Sprintf("sink (first %d)", v.Sinks))
	}
	sw(BlockEven, "block")
	sw(BlockOdd, fmt.Sprintf("next block (%d slots)", v.BlockSize))
	x = margin
	y += lineH
	if _, _, ok := metricRange(v); !ok {
		fill(img, image.Rect(x, y+2, x+10, y+12), NoMetric)
		t.at(x+14, y, "kept (this policy keeps no metric)", DimText)
		return
	}
	t.at(x, y, "metric (log):", DimText)
	x += 14 * charW
	for i := range legendBarW {
		fill(img, image.Rect(x+i, y+2, x+i+1, y+12), ramp(float64(i)/float64(legendBarW-1)))
	}
	t.at(x+legendBarW+6, y, "low -> high (evicted first -> kept longest)", DimText)
}

// metricRange is the log10 range of the positive metrics of kept KVs; ok is false when there are none.
func metricRange(v *kvpages.CacheView) (lo, hi float64, ok bool) {
	if !v.Policy.Metric().Needed {
		return 0, 0, false
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, h := range v.Heads {
		for _, m := range h.Metric {
			if m > 0 && !math.IsInf(float64(m), 0) {
				lg := math.Log10(float64(m))
				lo, hi = min(lo, lg), max(hi, lg)
			}
		}
	}
	return lo, hi, lo <= hi
}

func scaleMetric(m float32, lo, hi float64) float64 {
	if !(m > 0) {
		return 0
	}
	if hi <= lo {
		return 1
	}
	return min(max((math.Log10(float64(m))-lo)/(hi-lo), 0), 1)
}

// ramp maps [0, 1] to a perceptually ordered dark-purple -> teal -> yellow scale (viridis-like stops).
func ramp(t float64) color.RGBA {
	stops := [...][3]float64{{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}
	t = min(max(t, 0), 1) * float64(len(stops)-1)
	i := min(int(t), len(stops)-2)
	f := t - float64(i)
	var c [3]uint8
	for k := range c {
		c[k] = uint8(math.Round(stops[i][k]*(1-f) + stops[i+1][k]*f))
	}
	return color.RGBA{c[0], c[1], c[2], 255}
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// upscale repeats each pixel s x s times (nearest neighbour keeps cell colours exact).
func upscale(img *image.RGBA, s int) *image.RGBA {
	if s <= 1 {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*s, b.Dy()*s))
	for y := range b.Dy() * s {
		src := img.Pix[(y/s)*img.Stride:]
		dst := out.Pix[y*out.Stride:]
		for x := range b.Dx() * s {
			copy(dst[4*x:4*x+4], src[4*(x/s):4*(x/s)+4])
		}
	}
	return out
}

type textDrawer struct {
	img  *image.RGBA
	maxX int
}

// at draws one line of text with its top at y, cut at the picture's right margin.
func (t *textDrawer) at(x, y int, s string, c color.RGBA) {
	if n := (t.maxX - x) / charW; n < len([]rune(s)) {
		s = string([]rune(s)[:max(n, 0)])
	}
	d := font.Drawer{Dst: t.img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y+11)}
	d.DrawString(s)
}

// lastLines wraps text at width columns and returns its last n lines (printable ASCII; other runes as '?').
func lastLines(text string, width, n int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		var cur []rune
		for _, r := range para {
			switch {
			case r == '\t':
				r = ' '
			case r < 32 || r > 126:
				r = '?'
			}
			cur = append(cur, r)
			if len(cur) == width {
				lines = append(lines, string(cur))
				cur = cur[:0]
			}
		}
		lines = append(lines, string(cur))
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// WritePNG renders f at scale 1 into a PNG file.
func WritePNG(path string, f Frame) error {
	img, _ := Render(f, 1)
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(out, img); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return out.Close()
}

// Verify checks img (a picture Render drew at scale) against the cache state itself, not against Render's
// code path: every (layer, head) row and position column is dark exactly where the head's table keeps no
// KV of that position, kept cells carry the parity stripe of the block holding them and the protected or
// sink mark of their position, and rows are separated by background.
func Verify(img image.Image, v *kvpages.CacheView, scale int) error {
	l := Plan(v)
	if b := img.Bounds(); b.Dx() != l.Width*scale || b.Dy() != l.Height*scale {
		return fmt.Errorf("kvmap: picture is %dx%d, want %dx%d for %d rows x %d positions at scale %d",
			b.Dx(), b.Dy(), l.Width*scale, l.Height*scale, len(v.Heads), v.NextPos, scale)
	}
	o := img.Bounds().Min
	px := func(x, y int) color.RGBA {
		r, g, b, a := img.At(o.X+x*scale, o.Y+y*scale).RGBA()
		return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
	}
	for hd, h := range v.Heads {
		slot := map[int]int{} // position -> logical slot
		for i, p := range h.Pos {
			slot[int(p)] = i
		}
		for c := range l.Cols {
			r := l.Cell(hd, v.KVHeads, c)
			mid := px(r.Min.X, (r.Min.Y+r.Max.Y)/2)
			if got := px(r.Min.X, r.Max.Y); got != Background {
				return fmt.Errorf("kvmap: layer %d head %d column %d: row separator is %v, want background", hd/v.KVHeads, hd%v.KVHeads, c, got)
			}
			kept := -1
			for p := c * l.PosPerCol; p < min((c+1)*l.PosPerCol, v.NextPos); p++ {
				if i, ok := slot[p]; ok {
					kept = i
				}
			}
			if kept < 0 {
				if mid != Evicted {
					return fmt.Errorf("kvmap: layer %d head %d position %d: evicted, but the cell is %v", hd/v.KVHeads, hd%v.KVHeads, c*l.PosPerCol, mid)
				}
				continue
			}
			if mid == Evicted || mid == Background {
				return fmt.Errorf("kvmap: layer %d head %d position %d: kept in slot %d, but the cell is dark", hd/v.KVHeads, hd%v.KVHeads, c*l.PosPerCol, kept)
			}
			if l.PosPerCol > 1 {
				continue // the column shows one of several KVs
			}
			want := BlockEven
			if kept/v.BlockSize%2 == 1 {
				want = BlockOdd
			}
			if got := px(r.Min.X, r.Max.Y-1); got != want {
				return fmt.Errorf("kvmap: layer %d head %d position %d: block stripe %v, want %v (slot %d, block %d)", hd/v.KVHeads, hd%v.KVHeads, c, got, want, kept, kept/v.BlockSize)
			}
			mark, top := color.RGBA{}, px(r.Min.X, r.Min.Y)
			switch {
			case v.Sink(c):
				mark = SinkMark
			case v.Protected(c):
				mark = ProtectMark
			}
			if (mark != color.RGBA{}) != (top == ProtectMark || top == SinkMark) || (mark != color.RGBA{} && top != mark) {
				return fmt.Errorf("kvmap: layer %d head %d position %d: top mark %v, want %v", hd/v.KVHeads, hd%v.KVHeads, c, top, mark)
			}
		}
	}
	return nil
}

// Diff counts the pixels of a and b whose channels differ by more than tol and returns the largest channel
// difference; -1 pixels when the sizes differ. Pictures are compared from their top-left corners.
func Diff(a, b image.Image, tol int) (pixels, largest int) {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		return -1, 0
	}
	for y := range ab.Dy() {
		for x := range ab.Dx() {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			d := max(absDiff(r1, r2), absDiff(g1, g2), absDiff(b1, b2)) >> 8
			largest = max(largest, d)
			if d > tol {
				pixels++
			}
		}
	}
	return pixels, largest
}

func absDiff(a, b uint32) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// StatusRect is where the status line (Frame.Status) is drawn in a picture of the given width at scale 1.
func StatusRect(width int) image.Rectangle {
	return image.Rect(0, margin+2*lineH, width, margin+3*lineH)
}

// ReadPNG decodes a PNG file (a picture WritePNG wrote, or a screen capture to compare with one).
func ReadPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
