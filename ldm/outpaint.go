package ldm

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"
)

// Outpaint extends the init image's canvas by Left/Right/Top/Bottom pixels,
// fills the new area (OutpaintFills: "stretch" repeats the edge pixels,
// "noise" is random colours, "mean" the image's mean colour) and inpaints
// it: the mask is white over the new area (and over the request's own mask).
type Outpaint struct {
	Left   int    `json:"left,omitempty"`
	Right  int    `json:"right,omitempty"`
	Top    int    `json:"top,omitempty"`
	Bottom int    `json:"bottom,omitempty"`
	Fill   string `json:"fill,omitempty"`
}

// OutpaintFills are the fills of the new area ("stretch" by default).
var OutpaintFills = []string{"stretch", "noise", "mean"}

func (o *Outpaint) check(r *Request) error {
	bad := func(format string, a ...any) error {
		return &FieldError{Field: "outpaint", Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case r.InitImage == nil:
		return bad("needs an init image to extend")
	case o.Left < 0 || o.Right < 0 || o.Top < 0 || o.Bottom < 0:
		return bad("%d,%d,%d,%d: the sides (left, right, top, bottom) must not be negative", o.Left, o.Right, o.Top, o.Bottom)
	case o.Left+o.Right+o.Top+o.Bottom == 0:
		return bad("extends no side: give left, right, top or bottom pixels")
	case o.Left > 4096 || o.Right > 4096 || o.Top > 4096 || o.Bottom > 4096:
		return bad("a side of more than 4096 pixels")
	}
	switch o.Fill {
	case "", "stretch", "noise", "mean":
	default:
		return bad("fill %q: use stretch, noise or mean", o.Fill)
	}
	return nil
}

// applyOutpaint replaces the init image and mask by the extended ones and
// sets the size to the new canvas where it was not given; the request then
// inpaints as any other (its Outpaint is cleared, so it applies once).
func (r *Request) applyOutpaint() {
	o := r.Outpaint
	if o == nil || r.InitImage == nil || o.check(r) != nil {
		return
	}
	r.Outpaint = nil
	src := r.InitImage.Bounds()
	W, H := src.Dx()+o.Left+o.Right, src.Dy()+o.Top+o.Bottom
	canvas := image.NewRGBA(image.Rect(0, 0, W, H))
	inner := image.Rect(o.Left, o.Top, o.Left+src.Dx(), o.Top+src.Dy())
	draw.Draw(canvas, inner, r.InitImage, src.Min, draw.Src)
	fill := o.Fill
	if fill == "" {
		fill = "stretch"
	}
	var mean color.RGBA
	if fill == "mean" {
		var s [3]uint64
		for y := inner.Min.Y; y < inner.Max.Y; y++ {
			for x := inner.Min.X; x < inner.Max.X; x++ {
				c := canvas.RGBAAt(x, y)
				s[0], s[1], s[2] = s[0]+uint64(c.R), s[1]+uint64(c.G), s[2]+uint64(c.B)
			}
		}
		n := uint64(max(inner.Dx()*inner.Dy(), 1))
		mean = color.RGBA{uint8(s[0] / n), uint8(s[1] / n), uint8(s[2] / n), 255}
	}
	rnd := rand.New(rand.NewPCG(uint64(max(r.Seed, 0)), 0x6f757470))
	mask := image.NewGray(canvas.Bounds())
	for y := range H {
		for x := range W {
			if image.Pt(x, y).In(inner) {
				continue
			}
			mask.SetGray(x, y, color.Gray{255})
			switch fill {
			case "mean":
				canvas.SetRGBA(x, y, mean)
			case "noise":
				canvas.SetRGBA(x, y, color.RGBA{uint8(rnd.IntN(256)), uint8(rnd.IntN(256)), uint8(rnd.IntN(256)), 255})
			default:
				cx := min(max(x, inner.Min.X), inner.Max.X-1)
				cy := min(max(y, inner.Min.Y), inner.Max.Y-1)
				canvas.SetRGBA(x, y, canvas.RGBAAt(cx, cy))
			}
		}
	}
	if r.Mask != nil { // the request's own mask repaints inside the old canvas too
		m := r.Mask.Bounds()
		for y := range m.Dy() {
			for x := range m.Dx() {
				if g := color.GrayModel.Convert(r.Mask.At(m.Min.X+x, m.Min.Y+y)).(color.Gray); g.Y > 0 {
					mask.SetGray(o.Left+x, o.Top+y, g)
				}
			}
		}
	}
	r.InitImage, r.Mask = canvas, mask
	if r.Width == 0 && r.Height == 0 {
		r.Width, r.Height = W, H
	}
	if r.Strength == 0 {
		r.Strength = 1 // the new area has nothing to keep
	}
}
