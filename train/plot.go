package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// WriteLossCurve draws losses (one per optimiser step) as a PNG with axes:
// optimiser steps across, the loss (what the run minimises, named by yLabel)
// up on a log scale, since it falls by decades early in a run; the raw
// values in light grey and a moving average of window steps in blue.
// Non-positive values (the log scale cannot show them) are drawn at the
// smallest positive one. Written atomically.
func WriteLossCurve(path, title, yLabel string, losses []float32, window int) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "optimiser step"
	p.Y.Label.Text = yLabel + " (log scale)"
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range losses {
		if v := float64(l); v > 0 && !math.IsInf(v, 1) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if lo <= hi {
		if hi/lo < 10 { // show at least one decade
			m := math.Sqrt(hi * lo)
			lo, hi = math.Min(lo, m/math.Sqrt(10)), math.Max(hi, m*math.Sqrt(10))
		}
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = lo, hi
		shown := func(v float64) float64 {
			if !(v > 0) || math.IsInf(v, 1) {
				return lo
			}
			return math.Min(v, hi)
		}
		window = max(window, 1)
		raw := make(plotter.XYs, len(losses))
		avg := make(plotter.XYs, len(losses))
		var sum float64
		for i, l := range losses {
			sum += shown(float64(l))
			if i >= window {
				sum -= shown(float64(losses[i-window]))
			}
			raw[i] = plotter.XY{X: float64(i + 1), Y: shown(float64(l))}
			avg[i] = plotter.XY{X: float64(i + 1), Y: shown(sum / float64(min(i+1, window)))}
		}
		rawLine, err := plotter.NewLine(raw)
		if err != nil {
			return err
		}
		rawLine.Color = color.RGBA{190, 190, 190, 255}
		avgLine, err := plotter.NewLine(avg)
		if err != nil {
			return err
		}
		avgLine.Color, avgLine.Width = color.RGBA{30, 80, 200, 255}, vg.Points(1.5)
		p.Add(rawLine, avgLine)
		p.Legend.Add("loss of each step", rawLine)
		p.Legend.Add(fmt.Sprintf("mean of %d steps", window), avgLine)
		p.Legend.Top = true
	}
	w, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	return fsutil.WriteAtomic(path, func(out io.Writer) error {
		_, err := w.WriteTo(out)
		return err
	})
}

// Grid tiles images (all the same size) into rows of cols.
func Grid(imgs []image.Image, cols int) image.Image {
	if len(imgs) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	b := imgs[0].Bounds()
	rows := (len(imgs) + cols - 1) / cols
	out := image.NewRGBA(image.Rect(0, 0, cols*b.Dx(), rows*b.Dy()))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	for i, im := range imgs {
		at := image.Pt((i%cols)*b.Dx(), (i/cols)*b.Dy())
		draw.Draw(out, image.Rectangle{Min: at, Max: at.Add(b.Size())}, im, im.Bounds().Min, draw.Src)
	}
	return out
}

// NCHWToImages converts [B,3,H,W] values in [-1,1] to images.
func NCHWToImages(x []float32, b, h, w int) []image.Image {
	out := make([]image.Image, b)
	for n := range b {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for p := 0; p < h*w; p++ {
			for c := 0; c < 3; c++ {
				v := (x[(n*3+c)*h*w+p] + 1) * 127.5
				img.Pix[p*4+c] = uint8(math.Round(math.Max(0, math.Min(255, float64(v)))))
			}
			img.Pix[p*4+3] = 255
		}
		out[n] = img
	}
	return out
}

func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, buf.Bytes())
}

// PSNR is the peak signal-to-noise ratio in dB of b against a, both in
// [-1,1] (peak-to-peak 2), after quantising to 8 bits as a PNG would.
func PSNR(a, b []float32) float64 {
	var se float64
	q := func(v float32) float64 { return math.Round(math.Max(0, math.Min(255, float64(v+1)*127.5))) }
	for i := range a {
		d := q(a[i]) - q(b[i])
		se += d * d
	}
	mse := se / float64(len(a))
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}
