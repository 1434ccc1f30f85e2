package app

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/ldm"
)

// TestSDVAEOptionsAndOverride covers AUTOMATIC1111's VAE controls: the
// /sdapi/v1/sd-vae listing of the VAE folder, sd_vae in /sdapi/v1/options
// (set, read back, in the infotext as VAE and VAE hash), an unknown name
// refused with 400, and override_settings.sd_vae for one request only.
func TestSDVAEOptionsAndOverride(t *testing.T) {
	path := tinyPath(t)
	t.Setenv("LDM_CACHE", t.TempDir())
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(path, "vae"), filepath.Join(dir, "tiny-vae")); err != nil {
		t.Fatal(err)
	}
	p, err := ldm.Load(path, ldm.LoadOptions{Backend: "go", VAEDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, ts := testServer(t, &Loaded{Model: p, Name: p.Name, Hash: p.Hash, Path: path}, Config{})
	list := call(t, "GET", ts.URL+"/sdapi/v1/sd-vae", nil)
	if list.Status != http.StatusOK || !strings.Contains(string(list.Body), `"model_name":"tiny-vae"`) {
		t.Fatalf("sd-vae: %d %s", list.Status, list.Body)
	}
	params := func(body map[string]any) string {
		t.Helper()
		r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body)
		if r.Status != http.StatusOK {
			t.Fatalf("txt2img: %d %s", r.Status, r.Body)
		}
		_, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		return params
	}
	gen := map[string]any{"prompt": "a", "steps": 1, "width": 32, "height": 32, "seed": 3}
	if ps := params(gen); strings.Contains(ps, "VAE") {
		t.Errorf("checkpoint VAE named in the infotext: %q", ps)
	}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/options", `{"sd_vae":"nope"}`); r.Status != http.StatusBadRequest || r.json(t)["field"] != "sd_vae" {
		t.Errorf("unknown sd_vae: %d %s", r.Status, r.Body)
	}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/options", `{"sd_vae":"tiny-vae"}`); r.Status != http.StatusOK {
		t.Fatalf("sd_vae: %d %s", r.Status, r.Body)
	}
	if v := call(t, "GET", ts.URL+"/sdapi/v1/options", nil).json(t)["sd_vae"]; v != "tiny-vae" {
		t.Errorf("options sd_vae %v after setting tiny-vae", v)
	}
	if ps := params(gen); !strings.Contains(ps, "VAE: tiny-vae") || !strings.Contains(ps, "VAE hash: ") {
		t.Errorf("infotext after sd_vae: %q", ps)
	}
	r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", gen)
	if info := r.json(t)["info"].(string); !strings.Contains(info, `"sd_vae_name":"tiny-vae"`) {
		t.Errorf("info after sd_vae: %s", info)
	}
	over := map[string]any{"prompt": "a", "steps": 1, "width": 32, "height": 32, "override_settings": map[string]any{"sd_vae": "Automatic"}}
	if ps := params(over); strings.Contains(ps, "VAE") {
		t.Errorf("override_settings sd_vae Automatic: %q", ps)
	}
	if ps := params(gen); !strings.Contains(ps, "VAE: tiny-vae") {
		t.Errorf("the override outlived its request: %q", ps)
	}
	over["override_settings"] = map[string]any{"sd_vae": "nope"}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", over); r.Status != http.StatusBadRequest || r.json(t)["field"] != "override_settings.sd_vae" {
		t.Errorf("override_settings sd_vae nope: %d %s", r.Status, r.Body)
	}
}
