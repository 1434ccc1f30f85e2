package controlnet

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"

	"github.com/disintegration/imaging"
)

// ImageTensor is a control image as the ControlNet reads it: NCHW
// [1,3,H,W] RGB in [0,1] (diffusers' prepare_image, u8/255; AUTOMATIC1111's
// extension the same), H and W the image's size.
func ImageTensor(img image.Image) ([]float32, []int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*h*w)
	for y := range h {
		for x := range w {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			i := y*w + x
			out[i] = float32(c.R) / 255
			out[h*w+i] = float32(c.G) / 255
			out[2*h*w+i] = float32(c.B) / 255
		}
	}
	return out, []int{1, 3, h, w}
}

// Resize modes of a control image whose aspect differs from the output's,
// as AUTOMATIC1111's ControlNet extension names them.
const (
	JustResize    = "Just Resize"     // stretch to the size
	CropAndResize = "Crop and Resize" // cover the size, crop the centre (the extension's default)
	ResizeAndFill = "Resize and Fill" // fit inside the size, pad with black
)

// ParseResizeMode reads a resize mode: the extension's names or indices
// (0, 1, 2), or just_resize / crop_resize / resize_fill; "" is the default.
func ParseResizeMode(s string) (string, error) {
	switch strings.ToLower(strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)) {
	case "justresize", "0", "resize", "stretch":
		return JustResize, nil
	case "", "cropandresize", "cropresize", "1", "innerfit", "crop":
		return CropAndResize, nil
	case "resizeandfill", "resizefill", "2", "outerfit", "fill":
		return ResizeAndFill, nil
	}
	return "", fmt.Errorf("resize mode %q: want %q, %q or %q", s, JustResize, CropAndResize, ResizeAndFill)
}

// Resize brings a control image to w×h by mode (see ParseResizeMode), with
// Lanczos resampling (area averaging when shrinking, as the extension does).
func Resize(img image.Image, w, h int, mode string) *image.NRGBA {
	b := img.Bounds()
	if b.Dx() == w && b.Dy() == h {
		return imaging.Clone(img)
	}
	filter := imaging.Lanczos
	if b.Dx() > w && b.Dy() > h {
		filter = imaging.Box
	}
	switch mode {
	case JustResize:
		return imaging.Resize(img, w, h, filter)
	case ResizeAndFill:
		s := math.Min(float64(w)/float64(b.Dx()), float64(h)/float64(b.Dy()))
		fit := imaging.Resize(img, max(1, int(math.Round(float64(b.Dx())*s))), max(1, int(math.Round(float64(b.Dy())*s))), filter)
		out := imaging.New(w, h, color.NRGBA{0, 0, 0, 255})
		return imaging.PasteCenter(out, fit)
	}
	return imaging.Fill(img, w, h, imaging.Center, filter)
}
