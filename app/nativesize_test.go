package app

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestClientDefaultsGetAnUpscaledImage: the 512×512 defaults of Open WebUI
// (its AUTOMATIC1111 payload at 50 steps) and of the AUTOMATIC1111 web
// client (20 steps) on the tiny model (native 64×64) are drawn at 64×64
// and resized: 512×512 images, the infotext and the X-Ldm-Upscaled header
// say so.
func TestClientDefaultsGetAnUpscaledImage(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	for file, steps := range map[string]int{"testdata/openwebui_txt2img.json": 50, "testdata/a1111_api_defaults_txt2img.json": 20} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Fatal(err)
		}
		body["width"], body["height"], body["steps"] = 512, 512, steps
		body["batch_size"], body["n_iter"] = 1, 1
		r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", file, r.Status, r.Body)
		}
		if h := r.Header.Get("X-Ldm-Upscaled"); !strings.HasPrefix(h, "64x64 to 512x512") {
			t.Errorf("%s: X-Ldm-Upscaled %q", file, h)
		}
		img, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		if img.Bounds().Dx() != 512 || img.Bounds().Dy() != 512 {
			t.Errorf("%s: %v, want 512×512", file, img.Bounds())
		}
		if !strings.Contains(params, "Upscaled: 64x64 to 512x512 (Lanczos)") || !strings.Contains(params, "Size: 64x64") {
			t.Errorf("%s: infotext %q", file, params)
		}
	}
}

// TestUpscaleAboveOption: the aspect ratio is kept at about the native
// area (512×768 draws 56×80); within UpscaleAbove× the native size, or
// with the option off, the size asked for is drawn; a size over the
// limits is still refused.
func TestUpscaleAboveOption(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	r := call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "width": 512, "height": 768})
	if h := r.Header.Get("X-Ldm-Upscaled"); r.Status != http.StatusOK || !strings.HasPrefix(h, "56x80 to 512x768") {
		t.Errorf("512x768: %d %q %.200s", r.Status, h, r.Body)
	}
	r = call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "width": 128, "height": 128})
	if r.Status != http.StatusOK || r.Header.Get("X-Ldm-Upscaled") != "" {
		t.Errorf("128² (2× native) was upscaled: %d %v", r.Status, r.Header)
	}
	r = call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "width": 100000})
	if r.Status != http.StatusBadRequest {
		t.Errorf("width 100000: %d, want 400", r.Status)
	}
	_, off := testServer(t, fake(), Config{UpscaleAbove: -1})
	r = call(t, "POST", off.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "width": 512, "height": 512})
	if r.Status != http.StatusOK || r.Header.Get("X-Ldm-Upscaled") != "" || strings.Contains(string(r.Body), "Upscaled") {
		t.Errorf("UpscaleAbove -1 still upscaled: %d %v", r.Status, r.Header)
	}
}

// TestListingsStateTheNativeSize: the native, AUTOMATIC1111 and OpenAI
// model listings give the loaded model's native size.
func TestListingsStateTheNativeSize(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	want := map[string]any{"width": float64(64), "height": float64(64)}
	native := call(t, "GET", ts.URL+"/api/v1/models", nil).json(t)["models"].([]any)[0].(map[string]any)
	var sd []map[string]any
	json.Unmarshal(call(t, "GET", ts.URL+"/sdapi/v1/sd-models", nil).Body, &sd)
	oa := call(t, "GET", ts.URL+"/v1/models", nil).json(t)["data"].([]any)[0].(map[string]any)
	for name, m := range map[string]map[string]any{"native": native, "sd-models": sd[0], "openai": oa} {
		got, _ := m["native_size"].(map[string]any)
		if len(got) != 2 || got["width"] != want["width"] || got["height"] != want["height"] {
			t.Errorf("%s: native_size %v", name, m["native_size"])
		}
	}
}
