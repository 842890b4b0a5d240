package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"sort"
	"strings"
)

// A small line plot written with the standard library alone: axes with ticks, one polyline with markers per
// series, a legend, and text in a built-in 5x7 bitmap font (upper case, digits, a few signs).

type series struct {
	Name string
	X, Y []float64
}

type plotSpec struct {
	Title, XLabel, YLabel string
	LogX                  bool
	Series                []series
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {23, 190, 207, 255},
}

func writePlot(w io.Writer, p plotSpec) error {
	const W, H = 900, 600
	const left, right, top, bottom = 90, 200, 60, 70 // top: the title, then the y label on a line of its own
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	fillRect(img, 0, 0, W, H, color.RGBA{255, 255, 255, 255})

	tx := func(x float64) float64 {
		if p.LogX {
			return math.Log2(x)
		}
		return x
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for i := range s.X {
			if math.IsNaN(s.Y[i]) || math.IsInf(s.Y[i], 0) || (p.LogX && s.X[i] <= 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, tx(s.X[i])), math.Max(xmax, tx(s.X[i]))
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	if math.IsInf(xmin, 0) {
		return fmt.Errorf("plot: no finite points")
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax == ymin {
		ymin, ymax = ymin-1, ymax+1
	}
	pad := (ymax - ymin) * 0.05
	ymin, ymax = ymin-pad, ymax+pad
	px := func(x float64) int { return left + int((tx(x)-xmin)/(xmax-xmin)*float64(W-left-right)) }
	py := func(y float64) int { return H - bottom - int((y-ymin)/(ymax-ymin)*float64(H-top-bottom)) }

	black := color.RGBA{0, 0, 0, 255}
	grey := color.RGBA{220, 220, 220, 255}
	// grid and ticks
	for i := 0; i <= 5; i++ {
		y := ymin + (ymax-ymin)*float64(i)/5
		yy := py(y)
		line(img, left, yy, W-right, yy, grey)
		label := fmt.Sprintf("%.3g", y)
		drawText(img, left-8-textWidth(label), yy-3, label, black)
	}
	var xticks []float64
	if p.LogX {
		for e := math.Floor(xmin); e <= math.Ceil(xmax); e++ {
			if e >= xmin-1e-9 && e <= xmax+1e-9 {
				xticks = append(xticks, math.Exp2(e))
			}
		}
	} else {
		for i := 0; i <= 5; i++ {
			xticks = append(xticks, xmin+(xmax-xmin)*float64(i)/5)
		}
	}
	for _, x := range xticks {
		xx := px(x)
		line(img, xx, top, xx, H-bottom, grey)
		label := fmt.Sprintf("%.3g", x)
		drawText(img, xx-textWidth(label)/2, H-bottom+10, label, black)
	}
	line(img, left, H-bottom, W-right, H-bottom, black)
	line(img, left, top, left, H-bottom, black)
	drawText(img, (W-right+left)/2-textWidth(p.XLabel)/2, H-bottom+35, p.XLabel, black)
	drawText(img, 8, top-24, p.YLabel, black)
	drawText(img, W/2-textWidth(p.Title)/2, 8, p.Title, black)

	names := make([]int, len(p.Series))
	for i := range names {
		names[i] = i
	}
	for si, s := range p.Series {
		c := palette[si%len(palette)]
		idx := make([]int, len(s.X))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return s.X[idx[a]] < s.X[idx[b]] })
		prevX, prevY, have := 0, 0, false
		for _, i := range idx {
			if math.IsNaN(s.Y[i]) || math.IsInf(s.Y[i], 0) {
				continue
			}
			x, y := px(s.X[i]), py(s.Y[i])
			if have {
				thickLine(img, prevX, prevY, x, y, c)
			}
			fillRect(img, x-3, y-3, x+4, y+4, c)
			prevX, prevY, have = x, y, true
		}
		ly := top + 10 + si*18
		fillRect(img, W-right+15, ly, W-right+35, ly+4, c)
		drawText(img, W-right+42, ly-1, s.Name, black)
	}
	return png.Encode(w, img)
}

func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			if image.Pt(x, y).In(img.Rect) {
				img.SetRGBA(x, y, c)
			}
		}
	}
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		if image.Pt(x, y).In(img.Rect) {
			img.SetRGBA(x, y, c)
		}
	}
}

func thickLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	for d := -1; d <= 1; d++ {
		line(img, x0, y0+d, x1, y1+d, c)
		line(img, x0+d, y0, x1+d, y1, c)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// glyphs: 5 columns x 7 rows, each row a 5-bit mask (bit 4 = leftmost).
var glyphs = map[rune][7]uint8{
	'0': {14, 17, 19, 21, 25, 17, 14}, '1': {4, 12, 4, 4, 4, 4, 14}, '2': {14, 17, 1, 2, 4, 8, 31},
	'3': {31, 2, 4, 2, 1, 17, 14}, '4': {2, 6, 10, 18, 31, 2, 2}, '5': {31, 16, 30, 1, 1, 17, 14},
	'6': {6, 8, 16, 30, 17, 17, 14}, '7': {31, 1, 2, 4, 8, 8, 8}, '8': {14, 17, 17, 14, 17, 17, 14},
	'9': {14, 17, 17, 15, 1, 2, 12},
	'A': {14, 17, 17, 31, 17, 17, 17}, 'B': {30, 17, 17, 30, 17, 17, 30}, 'C': {14, 17, 16, 16, 16, 17, 14},
	'D': {28, 18, 17, 17, 17, 18, 28}, 'E': {31, 16, 16, 30, 16, 16, 31}, 'F': {31, 16, 16, 30, 16, 16, 16},
	'G': {14, 17, 16, 23, 17, 17, 15}, 'H': {17, 17, 17, 31, 17, 17, 17}, 'I': {14, 4, 4, 4, 4, 4, 14},
	'J': {7, 2, 2, 2, 2, 18, 12}, 'K': {17, 18, 20, 24, 20, 18, 17}, 'L': {16, 16, 16, 16, 16, 16, 31},
	'M': {17, 27, 21, 21, 17, 17, 17}, 'N': {17, 17, 25, 21, 19, 17, 17}, 'O': {14, 17, 17, 17, 17, 17, 14},
	'P': {30, 17, 17, 30, 16, 16, 16}, 'Q': {14, 17, 17, 17, 21, 18, 13}, 'R': {30, 17, 17, 30, 20, 18, 17},
	'S': {15, 16, 16, 14, 1, 1, 30}, 'T': {31, 4, 4, 4, 4, 4, 4}, 'U': {17, 17, 17, 17, 17, 17, 14},
	'V': {17, 17, 17, 17, 17, 10, 4}, 'W': {17, 17, 17, 21, 21, 21, 10}, 'X': {17, 17, 10, 4, 10, 17, 17},
	'Y': {17, 17, 10, 4, 4, 4, 4}, 'Z': {31, 1, 2, 4, 8, 16, 31},
	'.': {0, 0, 0, 0, 0, 12, 12}, '-': {0, 0, 0, 31, 0, 0, 0}, '+': {0, 4, 4, 31, 4, 4, 0},
	':': {0, 12, 12, 0, 12, 12, 0}, '(': {2, 4, 8, 8, 8, 4, 2}, ')': {8, 4, 2, 2, 2, 4, 8},
	'/': {1, 1, 2, 4, 8, 16, 16}, '%': {24, 25, 2, 4, 8, 19, 3}, '=': {0, 0, 31, 0, 31, 0, 0},
	',': {0, 0, 0, 0, 12, 4, 8}, '_': {0, 0, 0, 0, 0, 0, 31},
}

const glyphScale = 2

func textWidth(s string) int { return len([]rune(s)) * 6 * glyphScale }

func drawText(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if ok {
			for row := 0; row < 7; row++ {
				for col := 0; col < 5; col++ {
					if g[row]&(1<<(4-col)) != 0 {
						fillRect(img, x+col*glyphScale, y+row*glyphScale, x+(col+1)*glyphScale, y+(row+1)*glyphScale, c)
					}
				}
			}
		}
		x += 6 * glyphScale
	}
}
