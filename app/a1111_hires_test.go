package app

import (
	"net/http"
	"strings"
	"testing"
)

// TestA1111HiresFixDoublesTheSize: enable_hr with hr_scale 2 answers an
// image of twice the size, with A1111's hires infotext in the PNG and the
// info; a bad hires field is a 400 naming it.
func TestA1111HiresFixDoublesTheSize(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	body := map[string]any{"prompt": "a boat", "steps": 2, "width": 32, "height": 32, "seed": 7,
		"enable_hr": true, "hr_scale": 2, "hr_upscaler": "Latent (nearest-exact)", "hr_second_pass_steps": 2, "denoising_strength": 0.6}
	r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	img, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
		t.Errorf("hires image is %v, want 64x64", b.Size())
	}
	for _, want := range []string{"Size: 32x32", "Denoising strength: 0.6", "Hires upscale: 2", "Hires steps: 2", "Hires upscaler: Latent (nearest-exact)"} {
		if !strings.Contains(params, want) {
			t.Errorf("infotext lacks %q:\n%s", want, params)
		}
	}
	info, _ := r.json(t)["info"].(string)
	if !strings.Contains(info, "Hires upscale: 2") {
		t.Errorf("info lacks the hires infotext: %s", info)
	}
	body["hr_upscaler"] = "4x-UltraMagic"
	r = call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "hr_upscaler") {
		t.Errorf("unknown upscaler: status %d %s, want 400 naming hr_upscaler", r.Status, r.Body)
	}
}
