package ldm

import (
	"context"
	"image"
	"image/color"
	"testing"
)

func TestOutpaintCanvasAndFills(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for i := range src.Pix {
		src.Pix[i] = 255
	}
	src.SetRGBA(3, 1, color.RGBA{10, 20, 30, 255})
	for _, fill := range []string{"stretch", "mean", "noise"} {
		r := Request{Prompt: "x", InitImage: src, Outpaint: &Outpaint{Right: 2, Bottom: 1, Fill: fill}}
		r.applyOutpaint()
		if r.Outpaint != nil || r.Width != 6 || r.Height != 3 || r.Strength != 1 {
			t.Fatalf("%s: outpaint %v size %dx%d strength %g", fill, r.Outpaint, r.Width, r.Height, r.Strength)
		}
		m := r.Mask.(*image.Gray)
		if m.GrayAt(3, 1).Y != 0 || m.GrayAt(4, 1).Y != 255 || m.GrayAt(0, 2).Y != 255 {
			t.Errorf("%s: mask is not white exactly over the new area", fill)
		}
		got := r.InitImage.(*image.RGBA).RGBAAt(5, 2)
		switch fill {
		case "stretch":
			if got != (color.RGBA{10, 20, 30, 255}) {
				t.Errorf("stretch: corner %v, want the nearest edge pixel", got)
			}
		case "mean":
			if want := (color.RGBA{(7*255 + 10) / 8, (7*255 + 20) / 8, (7*255 + 30) / 8, 255}); got != want {
				t.Errorf("mean: %v, want %v", got, want)
			}
		}
	}
	r := Request{Prompt: "x", Outpaint: &Outpaint{Left: 8}}
	if err := r.Check(DefaultLimits); err == nil {
		t.Error("outpaint without an init image passed Check")
	}
	r = Request{Prompt: "x", InitImage: src, Outpaint: &Outpaint{Left: 8, Fill: "plaid"}}
	if _, ok := IsFieldError(r.Check(DefaultLimits)); !ok {
		t.Error("an unknown fill passed Check")
	}
}

// TestOutpaintRunsAsInpainting: the tiny model extends a 32x32 image to
// 64x32; the old canvas away from the seam keeps its pixels.
func TestOutpaintRunsAsInpainting(t *testing.T) {
	p := loadTiny(t)
	src := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	req := Request{Prompt: "a wall", Steps: 2, Seed: 3, InitImage: src, Outpaint: &Outpaint{Right: 32}}
	res, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := res[0].Image
	if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 32 {
		t.Fatalf("outpainted image is %v, want 64x32", img.Bounds().Size())
	}
	for y := range 32 {
		for x := range 16 { // the mask blur (σ 2) reaches a few pixels past the seam at x=32
			if img.RGBAAt(x, y) != src.RGBAAt(x, y) {
				t.Fatalf("(%d,%d) = %v, want the original %v", x, y, img.RGBAAt(x, y), src.RGBAAt(x, y))
			}
		}
	}
}
