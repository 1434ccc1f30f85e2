package controlnet

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"

	"github.com/disintegration/imaging"
)

// Preprocessor turns an input image into a control map. a and b are the
// module's two parameters (AUTOMATIC1111's threshold_a / threshold_b); a
// negative value takes the module's default.
type Preprocessor struct {
	Name   string
	A, B   Param // nil when the module has no such parameter
	Detect func(img image.Image, a, b float64) image.Image
}

// Param is one preprocessor parameter, as the ControlNet extension's
// module_list describes it (name, default, slider range).
type Param struct {
	Name     string
	Default  float64
	Min, Max float64
	Valid    bool
}

// Preprocessors are the modules that need no model, by AUTOMATIC1111's
// ControlNet extension names.
var Preprocessors = []Preprocessor{
	{Name: "none", Detect: func(img image.Image, _, _ float64) image.Image { return img }},
	{Name: "canny", A: Param{"Canny Low Threshold", 100, 1, 255, true}, B: Param{"Canny High Threshold", 200, 1, 255, true}, Detect: Canny},
	{Name: "threshold", A: Param{"Binarization Threshold", 127, 0, 255, true}, Detect: func(img image.Image, a, _ float64) image.Image { return Threshold(img, a) }},
	{Name: "scribble_xdog", A: Param{"XDoG Threshold", 32, 1, 64, true}, Detect: func(img image.Image, a, _ float64) image.Image { return ScribbleXDoG(img, a) }},
	{Name: "invert", Detect: func(img image.Image, _, _ float64) image.Image { return Invert(img) }},
}

// moduleAliases are other names clients send for these modules.
var moduleAliases = map[string]string{
	"": "none", "scribble": "scribble_xdog", "invert (from white bg & black line)": "invert", "binary": "threshold",
}

// FindPreprocessor returns the module of a name (case-insensitive; the
// aliases older clients use are understood).
func FindPreprocessor(name string) (Preprocessor, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if a, ok := moduleAliases[n]; ok {
		n = a
	}
	for _, p := range Preprocessors {
		if p.Name == n {
			return p, nil
		}
	}
	names := make([]string, len(Preprocessors))
	for i, p := range Preprocessors {
		names[i] = p.Name
	}
	return Preprocessor{}, fmt.Errorf("preprocessor %q is not available (modules that need a model are not): want one of %s, or a preprocessed map with \"none\"", name, strings.Join(names, ", "))
}

// Run applies the module with parameters a and b (negative: the default).
func (p Preprocessor) Run(img image.Image, a, b float64) image.Image {
	if a < 0 || !p.A.Valid {
		a = p.A.Default
	}
	if b < 0 || !p.B.Valid {
		b = p.B.Default
	}
	return p.Detect(img, a, b)
}

// gray is the luma of img (ITU-R 601, as OpenCV's RGB2GRAY), as floats.
func gray(img image.Image) ([]float64, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float64, w*h)
	for y := range h {
		for x := range w {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			out[y*w+x] = 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B)
		}
	}
	return out, w, h
}

// fromMask is a white-on-black RGB image of a boolean map.
func fromMask(on []bool, w, h int) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, v := range on {
		c := uint8(0)
		if v {
			c = 255
		}
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = c, c, c, 255
	}
	return out
}

// Canny is the Canny edge detector as OpenCV's cv2.Canny(img, low, high)
// (3×3 Sobel, L1 gradient magnitude, non-maximum suppression along the
// quantised gradient direction, hysteresis between the two thresholds), on
// the image's luma: white edges on black.
func Canny(img image.Image, low, high float64) image.Image {
	g, w, h := gray(img)
	at := func(x, y int) float64 { // replicated border
		x, y = min(max(x, 0), w-1), min(max(y, 0), h-1)
		return g[y*w+x]
	}
	gx, gy, mag := make([]float64, w*h), make([]float64, w*h), make([]float64, w*h)
	for y := range h {
		for x := range w {
			dx := at(x+1, y-1) + 2*at(x+1, y) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x-1, y) - at(x-1, y+1)
			dy := at(x-1, y+1) + 2*at(x, y+1) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x, y-1) - at(x+1, y-1)
			i := y*w + x
			gx[i], gy[i], mag[i] = dx, dy, math.Abs(dx)+math.Abs(dy)
		}
	}
	m := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return mag[y*w+x]
	}
	const tan22 = 0.4142135623730951 // tan(22.5°)
	strong, weak := make([]bool, w*h), make([]bool, w*h)
	for y := range h {
		for x := range w {
			i := y*w + x
			v := mag[i]
			if v <= low {
				continue
			}
			ax, ay := math.Abs(gx[i]), math.Abs(gy[i])
			var a, b float64
			switch {
			case ay <= tan22*ax: // horizontal gradient: compare left and right
				a, b = m(x-1, y), m(x+1, y)
			case ay >= ax/tan22: // vertical
				a, b = m(x, y-1), m(x, y+1)
			case (gx[i] > 0) == (gy[i] > 0): // diagonal ↘
				a, b = m(x-1, y-1), m(x+1, y+1)
			default: // diagonal ↗
				a, b = m(x+1, y-1), m(x-1, y+1)
			}
			if v > a && v >= b {
				if v > high {
					strong[i] = true
				} else {
					weak[i] = true
				}
			}
		}
	}
	// Hysteresis: weak pixels connected (8-neighbourhood) to strong ones.
	stack := make([]int, 0, w*h/8)
	for i, s := range strong {
		if s {
			stack = append(stack, i)
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := i%w, i/w
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				nx, ny := x+dx, y+dy
				if nx < 0 || ny < 0 || nx >= w || ny >= h {
					continue
				}
				if j := ny*w + nx; weak[j] {
					weak[j], strong[j] = false, true
					stack = append(stack, j)
				}
			}
		}
	}
	return fromMask(strong, w, h)
}

// Threshold binarises the luma: white where it exceeds t (the extension's
// "threshold" module).
func Threshold(img image.Image, t float64) image.Image {
	g, w, h := gray(img)
	on := make([]bool, len(g))
	for i, v := range g {
		on[i] = v > t
	}
	return fromMask(on, w, h)
}

// Invert makes a black-on-white drawing the white-on-black map line
// ControlNets read (the extension's "invert (from white bg & black line)").
func Invert(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	for i := 0; i < len(out.Pix); i += 4 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = 255-out.Pix[i], 255-out.Pix[i+1], 255-out.Pix[i+2]
		out.Pix[i+3] = 255
	}
	return out
}

// ScribbleXDoG is the extension's scribble_xdog: per pixel, the smallest
// (over the colour channels) difference between a Gaussian blur of σ 5 and
// one of σ 0.5; dark lines make it positive, and a pixel is a line where
// twice it exceeds t.
func ScribbleXDoG(img image.Image, t float64) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	g1 := imaging.Blur(img, 0.5)
	g2 := imaging.Blur(img, 5)
	on := make([]bool, w*h)
	for i := range on {
		d := math.Inf(1)
		for ch := range 3 {
			d = math.Min(d, float64(g2.Pix[4*i+ch])-float64(g1.Pix[4*i+ch]))
		}
		on[i] = 2*min(max(d, 0), 255) > t
	}
	return fromMask(on, w, h)
}
