package app

import (
	"image"
	"image/color"
	"net/http"
	"strings"
	"testing"
)

// TestA1111Upscalers: the listings name ldm's upscalers; extra-single-image
// and extra-batch-images resize by a factor or to a size; a latent mode or
// an unknown name is a 400 naming upscaler_1.
func TestA1111Upscalers(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	r := call(t, "GET", ts.URL+"/sdapi/v1/upscalers", nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"name":"Lanczos"`) || !strings.Contains(string(r.Body), `"name":"Nearest"`) {
		t.Errorf("upscalers: %d %s", r.Status, r.Body)
	}
	r = call(t, "GET", ts.URL+"/sdapi/v1/latent-upscale-modes", nil)
	if !strings.Contains(string(r.Body), `"name":"Latent (bicubic antialiased)"`) {
		t.Errorf("latent-upscale-modes: %s", r.Body)
	}
	src := image.NewRGBA(image.Rect(0, 0, 4, 2))
	src.Set(0, 0, color.RGBA{255, 0, 0, 255})
	for i := range src.Pix {
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	r = call(t, "POST", ts.URL+"/sdapi/v1/extra-single-image", map[string]any{"image": pngB64(t, src), "upscaler_1": "Nearest", "upscaling_resize": 2})
	if r.Status != http.StatusOK {
		t.Fatalf("extra-single-image: %d %s", r.Status, r.Body)
	}
	img, _ := decodePNG(t, r.json(t)["image"].(string))
	if img.Bounds().Dx() != 8 || img.Bounds().Dy() != 4 {
		t.Errorf("upscaled to %v, want 8x4", img.Bounds().Size())
	}
	if c := color.RGBAModel.Convert(img.At(1, 1)).(color.RGBA); c.R != 255 || c.G != 0 {
		t.Errorf("nearest 2x: pixel (1,1) is %v, want the red of (0,0)", c)
	}
	r = call(t, "POST", ts.URL+"/sdapi/v1/extra-batch-images", map[string]any{"imageList": []map[string]any{{"data": pngB64(t, src), "name": "a"}, {"data": pngB64(t, src), "name": "b"}},
		"upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 12, "upscaling_resize_h": 6})
	if r.Status != http.StatusOK {
		t.Fatalf("extra-batch-images: %d %s", r.Status, r.Body)
	}
	imgs := r.json(t)["images"].([]any)
	if len(imgs) != 2 {
		t.Fatalf("%d images, want 2", len(imgs))
	}
	if img, _ := decodePNG(t, imgs[1].(string)); img.Bounds().Dx() != 12 || img.Bounds().Dy() != 6 {
		t.Errorf("batch image is %v, want 12x6", img.Bounds().Size())
	}
	for _, name := range []string{"Latent", "ESRGAN_4x"} {
		r = call(t, "POST", ts.URL+"/sdapi/v1/extra-single-image", map[string]any{"image": pngB64(t, src), "upscaler_1": name})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "upscaler_1") {
			t.Errorf("%s: %d %s, want 400 naming upscaler_1", name, r.Status, r.Body)
		}
	}
}
