package app

import (
	"image"
	"image/color"
	"net/http"
	"testing"
)

// TestA1111ResizeAndFillOutpaints: img2img resize_mode 2 of a 32x32 image
// on a 64x32 canvas answers 64x32, the centre keeping the image's pixels.
func TestA1111ResizeAndFillOutpaints(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	src := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 5)
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	r := call(t, "POST", ts.URL+"/sdapi/v1/img2img", map[string]any{"prompt": "a wall", "steps": 2, "seed": 3,
		"init_images": []string{pngB64(t, src)}, "width": 64, "height": 32, "resize_mode": 2})
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	img, _ := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 32 {
		t.Fatalf("image is %v, want 64x32", b.Size())
	}
	for y := range 32 {
		for x := 28; x < 36; x++ { // the middle of the old image, away from the blurred seams at 16 and 48
			got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if want := src.RGBAAt(x-16, y); got != want {
				t.Fatalf("(%d,%d) = %v, want the original %v", x, y, got, want)
			}
		}
	}
}
