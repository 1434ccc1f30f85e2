package app

import (
	"context"
	"fmt"
	"image"
	"testing"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

// comfyRun posts a workflow, polls /history as SillyTavern does and fetches
// the output node's first image through /view.
func comfyRun(t *testing.T, url string, wf any, out string) image.Image {
	t.Helper()
	status, body := comfyPost(t, url, wf)
	if status != 200 {
		t.Fatalf("POST /prompt: %d %v", status, body)
	}
	id := body["prompt_id"].(string)
	var entry map[string]any
	// The tiny model's run takes seconds, more under -race on a busy
	// machine: a generous bound only against a hang.
	for deadline := time.Now().Add(3 * time.Minute); entry == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the prompt never reached /history")
		}
		entry, _ = call(t, "GET", url+"/history", nil).json(t)[id].(map[string]any)
	}
	if get(entry, "status", "status_str") != "success" {
		t.Fatalf("prompt failed: %v", entry["status"])
	}
	im := get(entry, "outputs", out, "images").([]any)[0].(map[string]any)
	r := call(t, "GET", fmt.Sprintf("%s/view?filename=%s&subfolder=%s&type=%s", url, im["filename"], im["subfolder"], im["type"]), nil)
	if r.Status != 200 {
		t.Fatalf("view: %d %s", r.Status, r.Body)
	}
	img, _ := pngBytes(t, r.Body)
	return img
}

// comfyChoices reads a COMBO input's choices from /object_info, as
// SillyTavern and Open WebUI list models, samplers and VAEs.
func comfyChoices(t *testing.T, url, class, input string) []any {
	t.Helper()
	info := call(t, "GET", url+"/object_info/"+class, nil).json(t)
	return get(info, class, "input", "required", input).([]any)[0].([]any)
}

// The Open WebUI workflow on the tiny model draws exactly what the same
// ldm.Request draws: the nodes' values reach the plan (sampler and
// scheduler names, cfg, seed, ComfyUI's torch noise).
func TestComfyWorkflowDrawsWhatTheRequestDraws(t *testing.T) {
	m := tinyModel(t)
	_, ts := testServer(t, m, Config{})
	wf := openWebUIWorkflow(t, entryOf(m, true).File, "a red apple", 64, 64, 3, 42)
	wf["3"]["inputs"].(map[string]any)["sampler_name"] = "dpmpp_2m"
	wf["3"]["inputs"].(map[string]any)["scheduler"] = "karras"
	got := comfyRun(t, ts.URL, wf, "9")
	res, err := m.Model.(*ldm.Pipeline).Generate(context.Background(), ldm.Request{Prompt: "a red apple", Seed: 42, Steps: 3,
		Width: 64, Height: 64, GuidanceScale: 8, Sampler: "dpmpp_2m", Schedule: "karras", Noise: "torch"}, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pix(got) != pix(res[0].Image) {
		t.Fatal("the workflow's image differs from the equivalent request's")
	}
	wf["3"]["inputs"].(map[string]any)["seed"] = 43
	if pix(comfyRun(t, ts.URL, wf, "9")) == pix(got) {
		t.Fatal("another seed drew the same image")
	}
}

// ControlNetLoader + ControlNetApply on an uploaded control image is the
// same ldm.ControlNetUnit the A1111 and native routes build.
func TestComfyControlNetWorkflow(t *testing.T) {
	p, url, name, img := controlNetServer(t)
	if ch := comfyChoices(t, url, "ControlNetLoader", "control_net_name"); len(ch) != 1 || ch[0] != name {
		t.Fatalf("control_net_name choices %v, want [%s]", ch, name)
	}
	up := uploadImage(t, url, "control.png", img)
	wf := openWebUIWorkflow(t, comfyChoices(t, url, "CheckpointLoaderSimple", "ckpt_name")[0].(string), "a red apple", 64, 64, 3, 5)
	wf["3"]["inputs"].(map[string]any)["cfg"] = 7
	wf["10"] = map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": up["name"]}}
	wf["11"] = map[string]any{"class_type": "ControlNetLoader", "inputs": map[string]any{"control_net_name": name}}
	wf["12"] = map[string]any{"class_type": "ControlNetApply", "inputs": map[string]any{"conditioning": []any{"6", 0}, "control_net": []any{"11", 0}, "image": []any{"10", 0}, "strength": 0.8}}
	wf["3"]["inputs"].(map[string]any)["positive"] = []any{"12", 0}
	got := comfyRun(t, url, wf, "9")

	u := ldm.NewControlNetUnit()
	u.Model, u.Image, u.Weight = name, img, 0.8
	base := ldm.Request{Prompt: "a red apple", Seed: 5, Steps: 3, Sampler: "euler", Schedule: "normal", Noise: "torch", Width: 64, Height: 64, GuidanceScale: 7}
	with := base
	with.ControlNets = []ldm.ControlNetUnit{u}
	res, err := p.Generate(context.Background(), with, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := p.Generate(context.Background(), base, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pix(got) != pix(res[0].Image) {
		t.Fatal("the ControlNet workflow's image differs from the request with the same unit")
	}
	if pix(got) == pix(plain[0].Image) {
		t.Fatal("the ControlNet did not change the image")
	}
}
