package compare

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/ldm-project/ldm/eval"
)

// pca2 projects feature vectors onto their two principal axes.
func pca2(feats [][]float64) ([][2]float64, error) {
	g, err := eval.Fit(feats)
	if err != nil {
		return nil, err
	}
	vals, vecs, err := eval.SymEig(g.Cov, g.Dim)
	if err != nil {
		return nil, err
	}
	order := make([]int, g.Dim)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	out := make([][2]float64, len(feats))
	for i, f := range feats {
		for c := range 2 {
			if c >= g.Dim {
				break
			}
			k := order[c]
			s := 0.0
			for j := range g.Dim {
				s += (f[j] - g.Mean[j]) * vecs[j*g.Dim+k]
			}
			out[i][c] = s
		}
	}
	return out, nil
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
	{188, 189, 34, 255}, {23, 190, 207, 255},
}

// scatterPlot draws 2-D points coloured by label with a legend.
func scatterPlot(pts [][2]float64, labels []string, title string) image.Image {
	const w, h, pad, legend = 720, 520, 30, 200
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	names := map[string]int{}
	var order []string
	for _, l := range labels {
		if _, ok := names[l]; !ok {
			names[l] = len(order)
			order = append(order, l)
		}
	}
	sort.Strings(order)
	for i, l := range order {
		names[l] = i
	}
	lo, hi := [2]float64{math.Inf(1), math.Inf(1)}, [2]float64{math.Inf(-1), math.Inf(-1)}
	for _, p := range pts {
		for c := range 2 {
			lo[c], hi[c] = math.Min(lo[c], p[c]), math.Max(hi[c], p[c])
		}
	}
	for c := range 2 {
		if hi[c] <= lo[c] {
			hi[c] = lo[c] + 1
		}
	}
	pw, ph := w-legend-2*pad, h-2*pad
	for i, p := range pts {
		x := pad + int((p[0]-lo[0])/(hi[0]-lo[0])*float64(pw))
		y := h - pad - int((p[1]-lo[1])/(hi[1]-lo[1])*float64(ph))
		col := palette[names[labels[i]]%len(palette)]
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				img.Set(x+dx, y+dy, col)
			}
		}
	}
	text(img, pad, 18, title, color.Black)
	for i, l := range order {
		y := pad + 20 + 18*i
		col := palette[i%len(palette)]
		draw.Draw(img, image.Rect(w-legend, y-9, w-legend+10, y+1), image.NewUniform(col), image.Point{}, draw.Src)
		if l == "" {
			l = "(none)"
		}
		text(img, w-legend+16, y, l, color.Black)
	}
	return img
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
