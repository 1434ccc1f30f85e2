package train

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// WriteLossCurve draws losses (one per step) as a PNG: the raw values in
// light grey, a moving average of window steps in blue, on a log-scaled
// loss axis with a grid line per decade. Written atomically.
func WriteLossCurve(path string, losses []float32, window int) error {
	const w, h, pad = 800, 400, 20
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	if len(losses) > 0 {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, l := range losses {
			if l > 0 {
				lo, hi = math.Min(lo, float64(l)), math.Max(hi, float64(l))
			}
		}
		if hi <= lo {
			hi = lo * 10
		}
		llo, lhi := math.Log10(lo), math.Log10(hi)
		x := func(i int) int { return pad + i*(w-2*pad)/max(len(losses)-1, 1) }
		y := func(v float64) int {
			if v <= 0 {
				v = lo
			}
			return h - pad - int((math.Log10(v)-llo)/(lhi-llo)*float64(h-2*pad))
		}
		grid := color.RGBA{220, 220, 220, 255}
		for d := math.Floor(llo); d <= math.Ceil(lhi); d++ {
			if yy := y(math.Pow(10, d)); yy >= pad && yy <= h-pad {
				for xx := pad; xx < w-pad; xx++ {
					img.Set(xx, yy, grid)
				}
			}
		}
		raw := color.RGBA{190, 190, 190, 255}
		for i, l := range losses {
			img.Set(x(i), y(float64(l)), raw)
		}
		blue := color.RGBA{30, 80, 200, 255}
		window = max(window, 1)
		var sum float64
		prevX, prevY := -1, -1
		for i, l := range losses {
			sum += float64(l)
			if i >= window {
				sum -= float64(losses[i-window])
			}
			avg := sum / float64(min(i+1, window))
			cx, cy := x(i), y(avg)
			if prevX >= 0 {
				line(img, prevX, prevY, cx, cy, blue)
			}
			prevX, prevY = cx, cy
		}
	}
	return writePNG(path, img)
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		img.Set(x0+(x1-x0)*i/n, y0+(y1-y0)*i/n, c)
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
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
