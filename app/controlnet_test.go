package app

import (
	"context"
	"image"
	"image/color"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/controltest"
	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
)

// controlNetServer is a server on its own tiny pipeline whose ControlNet
// folder holds the golden tiny ControlNet; it returns the ControlNet's name
// and its control image.
func controlNetServer(t *testing.T) (*ldm.Pipeline, string, string, image.Image) {
	t.Helper()
	var dir, imgPath string
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "controlnet" {
			dir, imgPath = c.Path("model"), c.Path("control_image")
		}
	}
	if dir == "" {
		t.Skip("the golden manifest has no controlnet case")
	}
	m, err := loadTiny(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	p := m.Model.(*ldm.Pipeline)
	p.ControlNetDir = t.TempDir()
	copyDir(t, dir, filepath.Join(p.ControlNetDir, filepath.Base(dir)))
	_, ts := testServer(t, m, Config{})
	f, err := os.Open(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return p, ts.URL, filepath.Base(dir), img
}

func TestControlNetExtensionRoutes(t *testing.T) {
	_, url, name, _ := controlNetServer(t)
	r := call(t, "GET", url+"/controlnet/model_list", nil)
	list, _ := r.json(t)["model_list"].([]any)
	if r.Status != 200 || len(list) != 1 || !strings.HasPrefix(list[0].(string), name+" [") {
		t.Fatalf("model_list: %d %s, want [%q with its hash]", r.Status, r.Body, name)
	}
	r = call(t, "GET", url+"/controlnet/module_list", nil)
	mods, _ := r.json(t)["module_list"].([]any)
	if r.Status != 200 || !slices.Contains(mods, any("canny")) || !slices.Contains(mods, any("none")) {
		t.Errorf("module_list: %d %s", r.Status, r.Body)
	}

	sq := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := 8; y < 24; y++ {
		for x := 8; x < 24; x++ {
			sq.SetRGBA(x, y, color.RGBA{255, 255, 255, 255})
		}
	}
	for i := 0; i < len(sq.Pix); i += 4 {
		sq.Pix[i+3] = 255
	}
	r = call(t, "POST", url+"/controlnet/detect", map[string]any{"controlnet_module": "canny", "controlnet_input_images": []string{pngB64(t, sq)},
		"controlnet_threshold_a": 100, "controlnet_threshold_b": 200})
	imgs, _ := r.json(t)["images"].([]any)
	if r.Status != 200 || len(imgs) != 1 {
		t.Fatalf("detect: %d %s", r.Status, r.Body)
	}
	edges, _ := decodePNG(t, imgs[0].(string))
	white := func(x, y int) bool { c, _, _, _ := edges.At(x, y).RGBA(); return c > 0x8000 }
	if !white(7, 16) || white(16, 16) || white(2, 2) {
		t.Errorf("canny of a square: edge %v, inside %v, outside %v; want true, false, false", white(7, 16), white(16, 16), white(2, 2))
	}
	r = call(t, "POST", url+"/controlnet/detect", map[string]any{"controlnet_module": "depth_leres", "controlnet_input_images": []string{pngB64(t, sq)}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "not available") {
		t.Errorf("detect with a model-based module: %d %s", r.Status, r.Body)
	}
}

// An A1111 txt2img call with a ControlNet unit gives the image ldm gives for
// the same unit (so the pipeline's tests of what a map does hold for the
// API); a disabled unit changes nothing; the native API takes units too.
func TestA1111ControlNetUnitsReachThePipeline(t *testing.T) {
	p, url, name, img := controlNetServer(t)
	body := func(units ...map[string]any) map[string]any {
		b := map[string]any{"prompt": "a red apple", "seed": 5, "steps": 3, "sampler_name": "Euler", "width": 64, "height": 64, "cfg_scale": 7}
		if units != nil {
			b["alwayson_scripts"] = map[string]any{"controlnet": map[string]any{"args": units}}
		}
		return b
	}
	gen := func(b map[string]any) image.Image {
		t.Helper()
		r := call(t, "POST", url+"/sdapi/v1/txt2img", b)
		if r.Status != 200 {
			t.Fatalf("txt2img: %d %s", r.Status, r.Body)
		}
		out, _ := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		return out
	}
	unit := map[string]any{"enabled": true, "module": "none", "model": name + " [00000000]", "weight": 0.8,
		"image": pngB64(t, img), "resize_mode": "Crop and Resize", "control_mode": 0, "guidance_start": 0, "guidance_end": 1}
	plain := gen(body())
	with := gen(body(unit))
	if pix(plain) == pix(with) {
		t.Fatal("a ControlNet unit did not change the image")
	}
	off := map[string]any{}
	for k, v := range unit {
		off[k] = v
	}
	off["enabled"] = false
	if pix(gen(body(off))) != pix(plain) {
		t.Error("a disabled unit changed the image")
	}

	u := ldm.NewControlNetUnit()
	u.Model, u.Image, u.Weight = name, img, 0.8
	res, err := p.Generate(context.Background(), ldm.Request{Prompt: "a red apple", Seed: 5, Steps: 3, Sampler: "Euler", Width: 64, Height: 64,
		GuidanceScale: 7, ControlNets: []ldm.ControlNetUnit{u}}, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pix(res[0].Image) != pix(with) {
		t.Error("the A1111 unit gives another image than the same ldm.ControlNetUnit")
	}

	r := call(t, "POST", url+"/api/v1/generate", map[string]any{"prompt": "a red apple", "seed": 5, "steps": 3, "sampler": "Euler", "width": 64, "height": 64,
		"guidance_scale": 7, "controlnets": []map[string]any{{"model": name, "image": pngB64(t, img), "weight": 0.8}}})
	if r.Status != 200 {
		t.Fatalf("native generate: %d %s", r.Status, r.Body)
	}

	for _, c := range []struct {
		unit  map[string]any
		field string
	}{
		{map[string]any{"model": name, "weight": 0.8}, "alwayson_scripts.controlnet.args[0]"},
		{map[string]any{"model": "nosuch", "image": pngB64(t, img)}, "controlnets"},
		{map[string]any{"model": name, "image": pngB64(t, img), "control_mode": "loud"}, "controlnets"},
	} {
		r := call(t, "POST", url+"/sdapi/v1/txt2img", body(c.unit))
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+c.field) {
			t.Errorf("%v: %d %s, want 400 naming %s", c.unit, r.Status, r.Body, c.field)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pix is an image's RGB bytes as a string, for comparing.
func pix(img image.Image) string {
	var b strings.Builder
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			b.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8)})
		}
	}
	return b.String()
}

// The acceptance of issue 17: an A1111 txt2img call with a ControlNet unit
// (canny of a square) changes the image where the square's edges are, more
// than away from them, against the same call with a blank map. The
// ControlNet is hand-built to add its map to the first skip connection
// (controltest.EdgeControlNet), so where the change lands is the test.
func TestA1111CannyUnitSteersTheImageToTheEdges(t *testing.T) {
	var dir string
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "controlnet" {
			dir = c.Path("model")
		}
	}
	if dir == "" {
		t.Skip("the golden manifest has no controlnet case")
	}
	m, err := loadTiny(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	cn := controltest.EdgeControlNet(t, dir, 600)
	m.Model.(*ldm.Pipeline).ControlNetDir = filepath.Dir(cn)
	_, ts := testServer(t, m, Config{})
	const n, lo, hi = 64, 16, 48
	gen := func(img image.Image) image.Image {
		t.Helper()
		r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "a red (apple:1.2) on a table", "negative_prompt": "blurry",
			"seed": 42, "steps": 4, "sampler_name": "DDIM", "width": n, "height": n,
			"alwayson_scripts": map[string]any{"controlnet": map[string]any{"args": []map[string]any{{
				"module": "canny", "model": "edges", "image": pngB64(t, img), "threshold_a": 100, "threshold_b": 200}}}}})
		if r.Status != 200 {
			t.Fatalf("txt2img: %d %s", r.Status, r.Body)
		}
		out, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		if !strings.Contains(params, `ControlNet 0: "Module: canny, Model: edges`) {
			t.Errorf("infotext %q has no ControlNet unit", params)
		}
		return out
	}
	near, far := controltest.EdgeChange(gen(controltest.Square(n, lo, hi)), gen(image.NewRGBA(image.Rect(0, 0, n, n))), lo, hi)
	t.Logf("mean change near the edges %.2f, away from them %.2f (levels, summed over RGB)", near, far)
	if near < 3 || near < 1.5*far {
		t.Errorf("the canny unit changes the image by %.2f near the square's edges and %.2f away: want it concentrated on the edges", near, far)
	}
}
