package app

import (
	"fmt"
	"image"
	"image/color"
	"net/http"
	"strings"
	"testing"
)

// A1111's img2img inpainting options reach the pipeline: each masked
// content mode and "Only masked" give their own image, unmasked pixels
// stay, and a bad mode names its field.
func TestA1111InpaintingOptions(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	init := image.NewRGBA(image.Rect(0, 0, 64, 64))
	mask := image.NewRGBA(init.Bounds())
	for y := range 64 {
		for x := range 64 {
			init.SetRGBA(x, y, color.RGBA{uint8(4 * x), 80, uint8(4 * y), 255})
			v := uint8(0)
			if x >= 40 && y >= 40 {
				v = 255
			}
			mask.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	gen := func(extra map[string]any) (string, int, []byte) {
		body := map[string]any{"prompt": "a wall", "steps": 2, "seed": 3, "denoising_strength": 0.7, "mask_blur": 0,
			"init_images": []string{pngB64(t, init)}, "mask": pngB64(t, mask)}
		for k, v := range extra {
			body[k] = v
		}
		r := call(t, "POST", ts.URL+"/sdapi/v1/img2img", body)
		if r.Status != http.StatusOK {
			return "", r.Status, r.Body
		}
		img, _ := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		for y := range 40 {
			for x := range 40 {
				r1, g1, b1, _ := img.At(x, y).RGBA()
				r0, g0, b0, _ := init.At(x, y).RGBA()
				if r1 != r0 || g1 != g0 || b1 != b0 {
					t.Fatalf("%v: pixel (%d,%d) outside the mask changed", extra, x, y)
				}
			}
		}
		return pix(img), r.Status, r.Body
	}
	seen := map[string]string{}
	for _, extra := range []map[string]any{
		{"inpainting_fill": 1}, {"inpainting_fill": 0}, {"inpainting_fill": 2}, {"inpainting_fill": 3},
		{"inpainting_fill": 1, "inpaint_full_res": true, "inpaint_full_res_padding": 8},
	} {
		got, status, body := gen(extra)
		if status != http.StatusOK {
			t.Fatalf("%v: %d %s", extra, status, body)
		}
		for k, v := range seen {
			if v == got {
				t.Errorf("%v gives the same image as %s", extra, k)
			}
		}
		seen[fmt.Sprint(extra)] = got
	}
	if _, status, body := gen(map[string]any{"inpainting_fill": 7}); status != http.StatusBadRequest || !strings.Contains(string(body), `"field":"inpainting_fill"`) {
		t.Errorf("inpainting_fill 7: %d %s", status, body)
	}
}
