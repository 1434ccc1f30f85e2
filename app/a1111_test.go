package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"github.com/ldm-project/ldm/scheduler"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestA1111ClientPayloadsSucceedUnchanged sends txt2img bodies as Open
// WebUI, SillyTavern and a client echoing every A1111 API default send
// them, with HTTP Basic auth as A1111's --api-auth expects.
func TestA1111ClientPayloadsSucceedUnchanged(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{BasicAuth: []string{"webui:s3cret"}})
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("webui:s3cret"))
	cases := []struct {
		file     string
		images   int
		seeds    []int64 // nil: random
		contains []string
	}{
		{"openwebui_txt2img.json", 2, nil, []string{"Sampler: Euler a, CFG", "Negative prompt: blurry, low quality"}},
		{"sillytavern_txt2img.json", 1, []int64{1234}, []string{"Sampler: DPM++ 2M", "Schedule type: Karras", "Clip skip: 2", "Seed: 1234"}},
		{"a1111_api_defaults_txt2img.json", 2, nil, []string{"Sampler: DPM++ 2M, Schedule type: Karras", "CFG scale: 7"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body, "Authorization", basic)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			var resp struct {
				Images     []string       `json:"images"`
				Parameters map[string]any `json:"parameters"`
				Info       string         `json:"info"`
			}
			if err := json.Unmarshal(r.Body, &resp); err != nil {
				t.Fatal(err)
			}
			var sent map[string]any
			_ = json.Unmarshal(body, &sent)
			if !reflect.DeepEqual(resp.Parameters, sent) {
				t.Errorf("parameters do not echo the request:\n got %v\nwant %v", resp.Parameters, sent)
			}
			var info struct {
				Seed      int64    `json:"seed"`
				AllSeeds  []int64  `json:"all_seeds"`
				Infotexts []string `json:"infotexts"`
				Prompt    string   `json:"prompt"`
				Width     int      `json:"width"`
			}
			if err := json.Unmarshal([]byte(resp.Info), &info); err != nil {
				t.Fatalf("info is not a JSON string: %v", err)
			}
			if len(resp.Images) != c.images || len(info.AllSeeds) != c.images || len(info.Infotexts) != c.images {
				t.Fatalf("%d images, %d seeds, %d infotexts; want %d each", len(resp.Images), len(info.AllSeeds), len(info.Infotexts), c.images)
			}
			if c.seeds != nil && !reflect.DeepEqual(info.AllSeeds, c.seeds) {
				t.Errorf("seeds %v, want %v", info.AllSeeds, c.seeds)
			}
			if info.Seed != info.AllSeeds[0] || info.Prompt != sent["prompt"] || info.Width != 64 {
				t.Errorf("info: %+v", info)
			}
			for i, b := range resp.Images {
				img, params := decodePNG(t, b)
				if sz := img.Bounds().Size(); sz != image.Pt(64, 64) {
					t.Errorf("image %d is %v, want 64x64", i, sz)
				}
				if params != info.Infotexts[i] {
					t.Errorf("image %d: PNG parameters %q differ from infotexts[%d] %q", i, params, i, info.Infotexts[i])
				}
				for _, want := range c.contains {
					if !strings.Contains(params, want) {
						t.Errorf("image %d: parameters %q lack %q", i, params, want)
					}
				}
			}
		})
	}
}

func TestA1111LegacyAndSplitSamplerNamesGiveTheSameImage(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	pixels := func(body map[string]any) []byte {
		t.Helper()
		body["prompt"], body["steps"], body["width"], body["height"], body["seed"] = "a boat", 2, 32, 32, 7
		r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", body)
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		img, _ := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
		return img.(*image.RGBA).Pix
	}
	legacy := pixels(map[string]any{"sampler_name": "DPM++ 2M Karras"})
	split := pixels(map[string]any{"sampler_name": "DPM++ 2M", "scheduler": "Karras"})
	index := pixels(map[string]any{"sampler_index": "DPM++ 2M Karras"})
	if !bytes.Equal(legacy, split) || !bytes.Equal(legacy, index) {
		t.Error(`"DPM++ 2M Karras", "DPM++ 2M" + "Karras" and sampler_index gave different images`)
	}
}

func TestA1111Img2ImgKeepsUnmaskedPixels(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	init := image.NewRGBA(image.Rect(0, 0, 64, 64))
	mask := image.NewGray(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			init.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), 128, 255})
			if x < 32 {
				mask.SetGray(x, y, color.Gray{255}) // repaint the left half
			}
		}
	}
	for _, c := range []struct {
		name   string
		invert int
		keepX  [2]int // columns that must come back unchanged
		blur   any    // mask_blur sent (nil: absent)
		want   string // in the parameters
	}{
		{"mask", 0, [2]int{48, 64}, 4, "Mask blur: 4"},
		{"inverted mask", 1, [2]int{0, 16}, nil, "Mask blur: 4"}, // A1111's default
		{"unblurred mask", 0, [2]int{32, 64}, 0, "Mask blur: 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := map[string]any{
				"prompt": "a wall", "steps": 2, "seed": 3, "denoising_strength": 0.6,
				"init_images": []string{"data:image/png;base64," + pngB64(t, init)}, "mask": pngB64(t, mask),
				"inpainting_mask_invert": c.invert, "resize_mode": 0, "inpainting_fill": 1,
			}
			if c.blur != nil {
				body["mask_blur"] = c.blur
			}
			r := call(t, "POST", ts.URL+"/sdapi/v1/img2img", body)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			v := r.json(t)
			img, params := decodePNG(t, v["images"].([]any)[0].(string))
			if img.Bounds().Size() != image.Pt(64, 64) {
				t.Fatalf("image is %v", img.Bounds())
			}
			if !strings.Contains(params, "Denoising strength: 0.6") || !strings.Contains(params, c.want) {
				t.Errorf("parameters %q", params)
			}
			changed := 0
			for y := 0; y < 64; y++ {
				for x := c.keepX[0]; x < c.keepX[1]; x++ {
					r1, g1, b1, _ := img.At(x, y).RGBA()
					r0, g0, b0, _ := init.At(x, y).RGBA()
					if r1 != r0 || g1 != g0 || b1 != b0 {
						changed++
					}
				}
			}
			if changed != 0 {
				t.Errorf("%d pixels outside the mask changed", changed)
			}
			if get(v, "parameters", "init_images") != nil {
				t.Error("parameters echo the init image")
			}
		})
	}
}

func TestA1111ProgressAndInterrupt(t *testing.T) {
	m, f := gatedFake()
	_, ts := testServer(t, m, Config{PreviewEvery: 1})
	idle := call(t, "GET", ts.URL+"/sdapi/v1/progress", nil).json(t)
	if idle["progress"] != 0.0 || get(idle, "state", "job_count") != 0.0 || idle["current_image"] != nil {
		t.Errorf("idle progress: %v", idle)
	}
	done := make(chan response)
	go func() {
		done <- call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "a", "steps": 4, "width": 64, "height": 64})
	}()
	<-f.started
	f.gate <- struct{}{}
	var p map[string]any
	waitFor(t, "step 1", func() bool {
		p = call(t, "GET", ts.URL+"/sdapi/v1/progress", nil).json(t)
		return get(p, "state", "sampling_step") == 1.0
	})
	if p["progress"] != 0.25 || get(p, "state", "sampling_steps") != 4.0 || get(p, "state", "job_count") != 1.0 {
		t.Errorf("progress after 1 of 4 steps: %v", p)
	}
	if prev, _ := p["current_image"].(string); prev == "" {
		t.Error("no current_image")
	} else if img, _ := decodePNG(t, prev); img.Bounds().Size() != image.Pt(8, 8) {
		t.Errorf("preview is %v", img.Bounds())
	}
	if p := call(t, "GET", ts.URL+"/sdapi/v1/progress?skip_current_image=true", nil).json(t); p["current_image"] != nil {
		t.Error("skip_current_image=true still sent the image")
	}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/interrupt", nil); r.Status != http.StatusOK {
		t.Fatalf("interrupt: %d", r.Status)
	}
	r := <-done
	if r.Status != http.StatusOK || len(r.json(t)["images"].([]any)) != 0 {
		t.Errorf("interrupted txt2img: %d %s", r.Status, r.Body)
	}
	if f.ctxErrs.Load() != 1 {
		t.Error("the model did not see the interruption")
	}
}

func TestA1111ListingsAndOptions(t *testing.T) {
	tm := tinyModel(t)
	dir := t.TempDir()
	if err := os.Symlink(tm.Path, filepath.Join(dir, "other_model")); err != nil {
		t.Fatal(err)
	}
	_, ts := testServer(t, tm, Config{ModelsDir: dir, Loader: loadTiny})

	var models []map[string]any
	_ = json.Unmarshal(call(t, "GET", ts.URL+"/sdapi/v1/sd-models", nil).Body, &models)
	if len(models) != 2 || models[0]["title"] != "tiny_sd15 ["+tm.Hash+"]" || models[0]["model_name"] != "tiny_sd15" || models[1]["model_name"] != "other_model" {
		t.Errorf("sd-models: %v", models)
	}
	var samplers []map[string]any
	_ = json.Unmarshal(call(t, "GET", ts.URL+"/sdapi/v1/samplers", nil).Body, &samplers)
	found := false
	for _, s := range samplers {
		if s["name"] == "DPM++ 2M Karras" && get(s, "options", "scheduler") == "karras" {
			found = true
		}
	}
	if !found {
		t.Errorf("samplers lack DPM++ 2M Karras with its karras option: %v", samplers)
	}
	var schedulers []map[string]any
	_ = json.Unmarshal(call(t, "GET", ts.URL+"/sdapi/v1/schedulers", nil).Body, &schedulers)
	var names []string
	for _, s := range schedulers {
		names = append(names, s["name"].(string))
	}
	var want []string
	for _, si := range scheduler.Schedules() {
		want = append(want, si.Name)
	}
	if got := strings.Join(names, ","); got != strings.Join(want, ",") || !strings.Contains(got, "align_your_steps") || !strings.Contains(got, "sgm_uniform") {
		t.Errorf("schedulers %s, want %s", got, strings.Join(want, ","))
	}
	for _, s := range samplers {
		if s["name"] == "DPM++ 2M SDE" && get(s, "options", "scheduler") != "exponential" {
			t.Errorf("DPM++ 2M SDE lacks its automatic schedule: %v", s)
		}
	}
	for _, p := range []string{"/upscalers", "/sd-vae", "/loras", "/prompt-styles", "/embeddings", "/cmd-flags"} {
		if r := call(t, "GET", ts.URL+"/sdapi/v1"+p, nil); r.Status != http.StatusOK {
			t.Errorf("%s: %d", p, r.Status)
		}
	}

	opts := call(t, "GET", ts.URL+"/sdapi/v1/options", nil).json(t)
	if opts["sd_model_checkpoint"] != "tiny_sd15 ["+tm.Hash+"]" || opts["CLIP_stop_at_last_layers"] != 1.0 {
		t.Errorf("options: %v", opts)
	}
	for _, c := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"sd_model_checkpoint":"sdxl_base"}`, 400, "sd_model_checkpoint"},
		{`{"sd_model_checkpoint":7}`, 400, "sd_model_checkpoint"},
		{`{"CLIP_stop_at_last_layers":0}`, 400, "CLIP_stop_at_last_layers"},
		{`{"CLIP_stop_at_last_layers":2,"samples_format":"png","sd_vae":"Automatic"}`, 200, ""},
		{`{"sd_model_checkpoint":"other_model"}`, 200, ""},
	} {
		r := call(t, "POST", ts.URL+"/sdapi/v1/options", c.body)
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.body, r.Status, c.status, r.Body)
		} else if c.field != "" && r.json(t)["field"] != c.field {
			t.Errorf("%s: %s", c.body, r.Body)
		}
	}
	opts = call(t, "GET", ts.URL+"/sdapi/v1/options", nil).json(t)
	if !strings.HasPrefix(opts["sd_model_checkpoint"].(string), "other_model") || opts["CLIP_stop_at_last_layers"] != 2.0 || opts["samples_format"] != "png" {
		t.Errorf("options after POST: %v", opts)
	}
	r := call(t, "POST", ts.URL+"/sdapi/v1/txt2img", map[string]any{"prompt": "a", "steps": 1, "width": 32, "height": 32})
	_, params := decodePNG(t, r.json(t)["images"].([]any)[0].(string))
	if !strings.Contains(params, "Model: other_model") || !strings.Contains(params, "Clip skip: 2") {
		t.Errorf("after switching: parameters %q", params)
	}
}

func TestA1111PNGInfoReadsParameters(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	r := call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a tree", "negative_prompt": "fog", "steps": 1, "width": 32, "height": 32, "seed": 11})
	im := r.json(t)["images"].([]any)[0].(map[string]any)
	for _, prefix := range []string{"", "data:image/png;base64,"} {
		v := call(t, "POST", ts.URL+"/sdapi/v1/png-info", map[string]any{"image": prefix + im["png"].(string)}).json(t)
		if v["info"] != im["infotext"] {
			t.Errorf("info %q, want %q", v["info"], im["infotext"])
		}
		want := map[string]string{"Prompt": "a tree", "Negative prompt": "fog", "Steps": "1", "Seed": "11", "Size": "32x32"}
		for k, w := range want {
			if got := get(v, "parameters", k); got != w {
				t.Errorf("parameters[%q] = %v, want %q", k, got, w)
			}
		}
	}
	var jpg bytes.Buffer
	_ = jpeg.Encode(&jpg, blank(8, 8), nil)
	if r := call(t, "POST", ts.URL+"/sdapi/v1/png-info", map[string]any{"image": base64.StdEncoding.EncodeToString(jpg.Bytes())}); r.Status != 200 || r.json(t)["info"] != "" {
		t.Errorf("JPEG without parameters: %d %s", r.Status, r.Body)
	}
	if r := call(t, "POST", ts.URL+"/sdapi/v1/png-info", map[string]any{"image": "aGVsbG8="}); r.Status != 400 || r.json(t)["field"] != "image" {
		t.Errorf("garbage: %d %s", r.Status, r.Body)
	}
}
