package ldm

import (
	"fmt"
	"image"
	"math"
	"strings"
)

// Upscale resizes img with a pixel upscaler (PixelUpscalers: "None" and
// "Lanczos" are Lanczos, "Nearest" nearest neighbour), to w×h when both are
// positive, else by scale (AUTOMATIC1111's extras: upscaling_resize_w/h or
// upscaling_resize). maxW/maxH bound the result (0: no bound). Errors are
// *FieldError.
func Upscale(img image.Image, name string, scale float64, w, h, maxW, maxH int) (*image.RGBA, error) {
	if img == nil {
		return nil, &FieldError{Field: "image", Msg: "is missing: give the image to upscale"}
	}
	c, ok := canonicalUpscaler(name)
	if name == "" {
		c, ok = "None", true
	}
	if !ok || isLatentUpscaler(c) {
		return nil, &FieldError{Field: "upscaler_1", Msg: fmt.Sprintf("%q is not a pixel upscaler: use one of %s", name, strings.Join(PixelUpscalers, ", "))}
	}
	b := img.Bounds()
	if w <= 0 || h <= 0 {
		if math.IsNaN(scale) || scale <= 0 || scale > 16 {
			return nil, &FieldError{Field: "upscaling_resize", Msg: fmt.Sprintf("%g must be in (0, 16]", scale)}
		}
		w, h = int(math.Round(float64(b.Dx())*scale)), int(math.Round(float64(b.Dy())*scale))
	}
	if w < 1 || h < 1 || (maxW > 0 && w > maxW) || (maxH > 0 && h > maxH) {
		return nil, &FieldError{Field: "upscaling_resize", Msg: fmt.Sprintf("the result %dx%d is outside 1x1…%dx%d", w, h, maxW, maxH)}
	}
	return upscaleImage(img, w, h, c), nil
}
