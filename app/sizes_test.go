package app

import (
	"net/http"
	"testing"
)

// TestEverySizeOfTheVAEFactorRuns: 72 px is 9 latents on the tiny model,
// which its U-Net cannot halve; diffusers runs it and so must every route
// (it was a 500). A size off the VAE factor is a 400 naming the field.
func TestEverySizeOfTheVAEFactorRuns(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	for _, c := range []struct {
		path  string
		body  map[string]any
		field string
	}{
		{"/sdapi/v1/txt2img", map[string]any{"prompt": "a", "steps": 1, "width": 72, "height": 40}, ""},
		{"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "width": 40, "height": 72}, ""},
		{"/v1/images/generations", map[string]any{"prompt": "a", "size": "72x72"}, ""},
		{"/sdapi/v1/txt2img", map[string]any{"prompt": "a", "steps": 1, "width": 68}, "width"},
		{"/api/v1/generate", map[string]any{"prompt": "a", "steps": 1, "height": 68}, "height"},
	} {
		r := call(t, "POST", ts.URL+c.path, c.body)
		if c.field == "" {
			if r.Status != http.StatusOK {
				t.Errorf("%s %v: status %d: %s", c.path, c.body, r.Status, r.Body)
			}
			continue
		}
		if r.Status != http.StatusBadRequest || r.json(t)["field"] != c.field {
			t.Errorf("%s %v: status %d %s, want 400 naming %s", c.path, c.body, r.Status, r.Body, c.field)
		}
	}
}
