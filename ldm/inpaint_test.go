package ldm

import (
	"context"
	"image"
	"image/color"
	"strings"
	"testing"
)

func TestCropRegionGrowsToTheOutputAspectInsideTheImage(t *testing.T) {
	mask := func(r image.Rectangle) *image.Gray {
		m := image.NewGray(image.Rect(0, 0, 64, 64))
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.Pix[y*64+x] = 255
			}
		}
		return m
	}
	for _, c := range []struct {
		mask       image.Rectangle
		pad        int
		outW, outH int
		want       image.Rectangle
	}{
		{image.Rect(10, 30, 20, 40), 4, 64, 64, image.Rect(6, 26, 24, 44)},  // square stays square
		{image.Rect(10, 30, 20, 40), 4, 128, 64, image.Rect(0, 26, 36, 44)}, // widened to 2:1, shifted off the left edge
		{image.Rect(40, 0, 50, 60), 0, 64, 64, image.Rect(4, 0, 64, 60)},    // widened to 60, pushed back inside the right edge
		{image.Rect(0, 0, 64, 64), 32, 64, 64, image.Rect(0, 0, 64, 64)},
	} {
		got, ok := cropRegion(mask(c.mask), c.pad, c.outW, c.outH)
		if !ok || got != c.want {
			t.Errorf("mask %v pad %d out %dx%d: %v, want %v", c.mask, c.pad, c.outW, c.outH, got, c.want)
		}
	}
	if _, ok := cropRegion(image.NewGray(image.Rect(0, 0, 8, 8)), 4, 8, 8); ok {
		t.Error("an empty mask gave a region")
	}
}

func TestFillTakesTheColoursAroundTheHole(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	mask := image.NewGray(img.Bounds())
	for y := range 64 {
		for x := range 64 {
			c := color.RGBA{200, 0, 0, 255}
			if x >= 32 {
				c = color.RGBA{0, 0, 200, 255}
			}
			img.SetRGBA(x, y, c)
			if x >= 8 && x < 20 && y >= 24 && y < 40 {
				mask.Pix[y*64+x] = 255
				img.SetRGBA(x, y, color.RGBA{0, 255, 0, 255}) // what the fill must hide
			}
		}
	}
	out := fillMasked(img, mask)
	for y := 24; y < 40; y++ {
		for x := 8; x < 20; x++ {
			c := out.RGBAAt(x, y)
			if c.G > 10 || c.R < 120 || c.B > 80 {
				t.Fatalf("filled pixel (%d,%d) = %v, want the red around it", x, y, c)
			}
		}
	}
	if out.RGBAAt(2, 2) != img.RGBAAt(2, 2) || out.RGBAAt(60, 60) != img.RGBAAt(60, 60) {
		t.Error("fill changed kept pixels")
	}
}

// inpaintRequest is a masked img2img request on the tiny model: a square
// hole in a two-coloured image.
func inpaintRequest() Request {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	mask := image.NewRGBA(img.Bounds())
	for y := range 64 {
		for x := range 64 {
			img.SetRGBA(x, y, color.RGBA{uint8(4 * x), 90, uint8(255 - 4*y), 255})
			v := uint8(0)
			if x >= 8 && x < 24 && y >= 8 && y < 24 {
				v = 255
			}
			mask.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	req := quick()
	req.InitImage, req.Mask, req.Strength, req.MaskBlur = img, mask, 0.8, Blur(0)
	return req
}

// The A1111 inpainting options each change the result, keep the unmasked
// pixels, and an inverted mask is the same as the mask inverted by hand.
func TestInpaintingOptionsAsA1111(t *testing.T) {
	p := loadTiny(t)
	run := func(edit func(*Request)) *image.RGBA {
		t.Helper()
		req := inpaintRequest()
		edit(&req)
		res, err := p.Generate(context.Background(), req, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Image
	}
	outside := func(img *image.RGBA, hole image.Rectangle) bool { // every pixel outside hole is the init image's
		init := inpaintRequest().InitImage.(*image.RGBA)
		for y := range 64 {
			for x := range 64 {
				if !image.Pt(x, y).In(hole) && img.RGBAAt(x, y) != init.RGBAAt(x, y) {
					return false
				}
			}
		}
		return true
	}
	hole := image.Rect(8, 8, 24, 24)
	base := run(func(*Request) {})
	if !outside(base, hole) {
		t.Fatal("masked img2img changed pixels outside the mask")
	}
	for _, fill := range []string{FillColors, FillNoise, FillNothing} {
		got := run(func(r *Request) { r.InpaintingFill = fill })
		if !outside(got, hole) || string(got.Pix) == string(base.Pix) {
			t.Errorf("inpainting_fill %s: same as original %v, kept the outside %v; want different, true", fill, string(got.Pix) == string(base.Pix), outside(got, hole))
		}
	}
	full := run(func(r *Request) { r.InpaintFullRes, r.InpaintFullResPadding = true, 4 })
	if full.Bounds() != base.Bounds() || !outside(full, hole) || string(full.Pix) == string(base.Pix) {
		t.Errorf("inpaint_full_res: size %v, kept the outside %v, differs %v", full.Bounds(), outside(full, hole), string(full.Pix) != string(base.Pix))
	}
	inv := run(func(r *Request) {
		m := r.Mask.(*image.RGBA)
		for i := range m.Pix {
			if i%4 != 3 {
				m.Pix[i] = 255 - m.Pix[i]
			}
		}
		r.MaskInvert = true
	})
	if string(inv.Pix) != string(base.Pix) {
		t.Error("inpainting_mask_invert of the inverted mask differs from the mask")
	}

	for _, c := range []struct {
		edit        func(*Request)
		field, want string
	}{
		{func(r *Request) { r.InpaintingFill = "blur" }, "inpainting_fill", "want one of fill, original"},
		{func(r *Request) { r.InpaintFullResPadding = 999 }, "inpaint_full_res_padding", "between 0 and 256"},
		{func(r *Request) { r.Mask = nil; r.InpaintFullRes = true }, "inpaint_full_res", "only meaningful with a mask"},
		{func(r *Request) { r.Mask = nil; r.MaskInvert = true }, "inpainting_mask_invert", "only meaningful with a mask"},
	} {
		req := inpaintRequest()
		c.edit(&req)
		_, err := p.Generate(context.Background(), req, Options{})
		if field, _ := IsFieldError(err); err == nil || field != c.field || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v (field %q), want %q in %s", err, field, c.want, c.field)
		}
	}
}
