package app

import (
	"image"
	"math"

	"github.com/disintegration/imaging"

	"github.com/ldm-project/ldm/ldm"
)

// a1111OutpaintFields: img2img's resize_mode 2 ("Resize and fill") on a
// canvas of another shape than the init image outpaints: the image is
// fitted inside width×height and the rest is filled from its edges and
// inpainted (ldm.Outpaint).
type a1111OutpaintFields struct {
	ResizeMode flexInt `json:"resize_mode"`
}

// resizeAndFill sets req.Outpaint for resize_mode 2 when the canvas is
// larger than the fitted image on some side.
func (f *a1111OutpaintFields) resizeAndFill(req *ldm.Request) {
	if f.ResizeMode.V != 2 || req.InitImage == nil || req.Width <= 0 || req.Height <= 0 || req.Mask != nil {
		return
	}
	b := req.InitImage.Bounds()
	r := math.Min(float64(req.Width)/float64(b.Dx()), float64(req.Height)/float64(b.Dy()))
	fw, fh := max(int(math.Round(float64(b.Dx())*r)), 1), max(int(math.Round(float64(b.Dy())*r)), 1)
	fw, fh = min(fw, req.Width), min(fh, req.Height)
	if fw == req.Width && fh == req.Height {
		return
	}
	req.InitImage = image.Image(imaging.Resize(req.InitImage, fw, fh, imaging.Lanczos))
	dx, dy := req.Width-fw, req.Height-fh
	req.Outpaint = &ldm.Outpaint{Left: dx / 2, Right: dx - dx/2, Top: dy / 2, Bottom: dy - dy/2, Fill: "stretch"}
}
