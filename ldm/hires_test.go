package ldm

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestResizeLatentsModes(t *testing.T) {
	x := []float32{0, 1}
	for _, c := range []struct {
		mode string
		want []float32
	}{
		{"Latent", []float32{0, 0.25, 0.75, 1}}, // torch bilinear, align_corners=False
		{"Latent (antialiased)", []float32{0, 0.25, 0.75, 1}},
		{"Latent (nearest)", []float32{0, 0, 1, 1}},
		{"Latent (nearest-exact)", []float32{0, 0, 1, 1}},
		{"Latent (bicubic)", []float32{-0.10546875, 0.2265625, 0.7734375, 1.10546875}}, // a = −0.75, edges clamped
	} {
		got := resizeLatents(x, 1, 1, 2, 1, 4, c.mode)
		for i := range got {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
				t.Errorf("%s: %v, want %v", c.mode, got, c.want)
				break
			}
		}
	}
	// Shrinking with antialiasing widens the triangle to two inputs each
	// side (torch's _upsample_bilinear2d_aa: weights 1/4, 3/4, 3/4 over 7/4).
	aa := resizeLatents([]float32{0, 1, 2, 3}, 1, 1, 4, 1, 2, "Latent (antialiased)")
	if math.Abs(float64(aa[0])-5.0/7) > 1e-6 || math.Abs(float64(aa[1])-16.0/7) > 1e-6 {
		t.Errorf("antialiased 4→2: %v, want [5/7 16/7]", aa)
	}
}

func TestHiresTarget(t *testing.T) {
	for _, c := range []struct {
		h             HiresFix
		w, hh, fw, fh int
	}{
		{HiresFix{Scale: 2}, 64, 48, 128, 96},
		{HiresFix{ResizeX: 128}, 64, 48, 128, 96},
		{HiresFix{ResizeY: 96}, 64, 48, 128, 96},
		{HiresFix{ResizeX: 128, ResizeY: 128}, 64, 48, 128, 128}, // upscaled to cover, then cropped
	} {
		if fw, fh := c.h.finalSize(c.w, c.hh); fw != c.fw || fh != c.fh {
			t.Errorf("%+v of %dx%d: %dx%d, want %dx%d", c.h, c.w, c.hh, fw, fh, c.fw, c.fh)
		}
	}
	if w, h, cx, cy := (&HiresFix{ResizeX: 128, ResizeY: 128}).target(64, 48); w != 170 || h != 128 || cx != 21 || cy != 0 {
		t.Errorf("cover of 64x48 for 128x128: %dx%d crop %d,%d", w, h, cx, cy)
	}
}

func TestHiresValidation(t *testing.T) {
	for _, c := range []struct {
		h     HiresFix
		field string
	}{
		{HiresFix{Upscaler: "ESRGAN_9x"}, "hr_upscaler"},
		{HiresFix{Scale: 0.5}, "hr_scale"},
		{HiresFix{Strength: 1.5}, "denoising_strength"},
		{HiresFix{Steps: -1}, "hr_second_pass_steps"},
		{HiresFix{Sampler: "no such"}, "hr_sampler_name"},
		{HiresFix{Scale: 64}, "hr_scale"},
	} {
		r := quick()
		r.Hires = &c.h
		_, err := PrepareRequest(r, DefaultLimits, 64, 8)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want an error on %s", c.h, err, c.field)
		}
	}
}

// TestHiresFixIsImg2ImgOfTheUpscaledImage: the result is twice the size,
// carries A1111's hires fields (which read back), and for a pixel upscaler
// equals img2img of the Lanczos-upscaled first image with the same seed.
func TestHiresFixIsImg2ImgOfTheUpscaledImage(t *testing.T) {
	p := loadTiny(t)
	ctx := context.Background()
	base := quick()
	base.Steps = 2
	first, err := p.Generate(ctx, base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, up := range []string{"Lanczos", "Latent"} {
		req := base
		req.Hires = &HiresFix{Scale: 2, Upscaler: up, Steps: 2}
		var streamed int
		res, err := p.Generate(ctx, req, Options{OnImage: func(r Result) {
			if r.Image.Bounds().Dx() == 128 {
				streamed++
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Image.Bounds().Dx() != 128 || res[0].Image.Bounds().Dy() != 128 {
			t.Fatalf("%s: got %d images of %v, want one 128x128", up, len(res), res[0].Image.Bounds())
		}
		if streamed != 1 {
			t.Errorf("%s: OnImage saw %d hires images, want 1 (and no first-pass one)", up, streamed)
		}
		want := map[string]string{"Size": "64x64", "Hires upscale": "2", "Hires steps": "2", "Hires upscaler": up, "Denoising strength": "0.7", "Seed": "42"}
		for k, v := range want {
			if got, _ := res[0].Infotext.Get(k); got != v {
				t.Errorf("%s: infotext %s = %q, want %q\n%s", up, k, got, v, res[0].Infotext)
			}
		}
		it, err := ParseInfotext(res[0].Infotext.String())
		if err != nil {
			t.Fatal(err)
		}
		back, err := it.Request()
		if err != nil {
			t.Fatal(err)
		}
		if back.Hires == nil || !reflect.DeepEqual(*back.Hires, *req.Hires) && !reflect.DeepEqual(*back.Hires, HiresFix{Scale: 2, Upscaler: up, Steps: 2, Strength: 0.7}) {
			t.Errorf("%s: infotext read back %+v, want %+v", up, back.Hires, req.Hires)
		}
		if back.Strength != 0 {
			t.Errorf("%s: the hires denoising strength read back as an img2img strength %g", up, back.Strength)
		}
		if up != "Lanczos" {
			continue
		}
		i2i := base
		i2i.InitImage = upscaleImage(first[0].Image, 128, 128, "Lanczos")
		i2i.Width, i2i.Height, i2i.Strength = 128, 128, 0.7
		manual, err := p.Generate(ctx, i2i, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(manual[0].Image.Pix, res[0].Image.Pix) {
			t.Error("Lanczos hires fix differs from img2img of the upscaled first image with the same seed")
		}
	}
}
