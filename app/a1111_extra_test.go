package app

import (
	"net/http"
	"testing"
)

// TestA1111ExtraRoutes: /memory reports this process's RSS within the
// machine's memory, /interrogate is a clear 501, the refreshes answer as
// A1111 (null), and POST /options with an empty sd_model_checkpoint (Open
// WebUI's default) keeps the model.
func TestA1111ExtraRoutes(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	m := call(t, "GET", ts.URL+"/sdapi/v1/memory", nil).json(t)
	used, _ := get(m, "ram", "used").(float64)
	total, _ := get(m, "ram", "total").(float64)
	free, _ := get(m, "ram", "free").(float64)
	if used <= 0 || total < used || free != total-used || get(m, "cuda", "error") == nil {
		t.Errorf("/memory: %v", m)
	}
	r := call(t, "POST", ts.URL+"/sdapi/v1/interrogate", map[string]any{"image": "", "model": "clip"})
	if r.Status != http.StatusNotImplemented || r.json(t)["detail"] == nil {
		t.Errorf("/interrogate: %d %s", r.Status, r.Body)
	}
	for _, p := range []string{"/refresh-vae", "/refresh-embeddings", "/refresh-checkpoints", "/refresh-loras"} {
		if r := call(t, "POST", ts.URL+"/sdapi/v1"+p, nil); r.Status != http.StatusOK || string(r.Body) != "null" {
			t.Errorf("%s: %d %s", p, r.Status, r.Body)
		}
	}
	r = call(t, "POST", ts.URL+"/sdapi/v1/options", map[string]any{"sd_model_checkpoint": "", "CLIP_stop_at_last_layers": 2})
	if r.Status != http.StatusOK {
		t.Errorf("options with an empty checkpoint: %d %s", r.Status, r.Body)
	}
	if o := call(t, "GET", ts.URL+"/sdapi/v1/options", nil).json(t); o["sd_model_checkpoint"] != "fake [0123456789]" {
		t.Errorf("the model changed: %v", o["sd_model_checkpoint"])
	}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/options", map[string]any{"sd_model_checkpoint": "nope"}); r.Status != http.StatusBadRequest {
		t.Errorf("an unknown checkpoint: %d", r.Status)
	}
}
