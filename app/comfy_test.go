package app

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// openWebUIWorkflow is Open WebUI's default ComfyUI txt2img workflow
// (written from backend/open_webui/config.py's COMFYUI_DEFAULT_WORKFLOW),
// with the node inputs its comfyui.py sets filled in as it fills them.
func openWebUIWorkflow(t *testing.T, ckpt, prompt string, width, height, steps int, seed int64) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/comfy/openwebui_txt2img.json")
	if err != nil {
		t.Fatal(err)
	}
	var wf map[string]map[string]any
	if err := json.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	in := func(id string) map[string]any { return wf[id]["inputs"].(map[string]any) }
	in("4")["ckpt_name"] = ckpt
	in("6")["text"] = prompt
	in("5")["width"], in("5")["height"] = width, height
	in("3")["steps"], in("3")["seed"] = steps, seed
	return wf
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

type wsMsg struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// readUntilDone reads a client's messages until ComfyUI's end of a prompt,
// {"type": "executing", "data": {"node": null, "prompt_id": id}}, as Open
// WebUI waits for it; it returns the text messages and the binary frames.
func readUntilDone(t *testing.T, ctx context.Context, c *websocket.Conn, id func() string) ([]wsMsg, [][]byte) {
	t.Helper()
	var msgs []wsMsg
	var bins [][]byte
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("websocket read: %v (after %d messages)", err, len(msgs))
		}
		if typ == websocket.MessageBinary {
			bins = append(bins, data)
			continue
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("websocket text is not JSON: %s", data)
		}
		msgs = append(msgs, m)
		if m.Type == "executing" && m.Data["node"] == nil && m.Data["prompt_id"] == id() {
			return msgs, bins
		}
	}
}

func TestComfyOpenWebUIWorkflow(t *testing.T) {
	_, ts := testServer(t, fake(), Config{APIKey: "k"})
	auth := []string{"Authorization", "Bearer k"}
	// The checkpoint choices are the server's models.
	r := call(t, "GET", ts.URL+"/object_info/CheckpointLoaderSimple", nil, auth...)
	if r.Status != 200 {
		t.Fatalf("object_info: %d %s", r.Status, r.Body)
	}
	choices := get(r.json(t), "CheckpointLoaderSimple", "input", "required", "ckpt_name").([]any)[0].([]any)
	if len(choices) != 1 || choices[0] != "fake" {
		t.Fatalf("ckpt_name choices %v, want the server's model [fake]", choices)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clientID := "3f0e7c9a-client"
	ws, _, err := websocket.Dial(ctx, wsURL(ts.URL)+"/ws?clientId="+clientID, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer k"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_, first, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var st wsMsg
	_ = json.Unmarshal(first, &st)
	if st.Type != "status" || st.Data["sid"] != clientID || get(st.Data, "status", "exec_info", "queue_remaining") == nil {
		t.Fatalf("first message %s, want status with sid and exec_info.queue_remaining", first)
	}

	wf := openWebUIWorkflow(t, choices[0].(string), "a red fox", 512, 512, 4, 1234)
	r = call(t, "POST", ts.URL+"/prompt", map[string]any{"prompt": wf, "client_id": clientID}, auth...)
	if r.Status != 200 {
		t.Fatalf("POST /prompt: %d %s", r.Status, r.Body)
	}
	body := r.json(t)
	id, _ := body["prompt_id"].(string)
	if id == "" || body["number"] == nil || len(body["node_errors"].(map[string]any)) != 0 {
		t.Fatalf("POST /prompt answered %s", r.Body)
	}
	msgs, bins := readUntilDone(t, ctx, ws, func() string { return id })
	seen := map[string]int{}
	var progress []float64
	for _, m := range msgs {
		if m.Data["prompt_id"] != nil && m.Data["prompt_id"] != id {
			t.Fatalf("message of another prompt: %+v", m)
		}
		seen[m.Type]++
		if m.Type == "progress" {
			if m.Data["node"] != "3" || m.Data["max"] != 4.0 {
				t.Fatalf("progress %+v, want node 3 (the KSampler) of max 4", m.Data)
			}
			progress = append(progress, m.Data["value"].(float64))
		}
		if m.Type == "executed" {
			if m.Data["node"] != "9" {
				t.Fatalf("executed %+v, want the SaveImage node 9", m.Data)
			}
		}
	}
	for _, want := range []string{"execution_start", "executing", "progress", "executed", "execution_success"} {
		if seen[want] == 0 {
			t.Fatalf("no %q message among %v", want, seen)
		}
	}
	if fmt.Sprint(progress) != "[1 2 3 4]" {
		t.Fatalf("progress values %v, want [1 2 3 4]", progress)
	}
	if len(bins) == 0 {
		t.Fatal("no binary preview frame")
	}
	for _, b := range bins {
		if len(b) < 8 || binary.BigEndian.Uint32(b) != 1 || binary.BigEndian.Uint32(b[4:]) != 2 {
			t.Fatalf("preview frame header % x, want event 1 (preview), format 2 (PNG)", b[:min(8, len(b))])
		}
		if _, err := png.Decode(bytes.NewReader(b[8:])); err != nil {
			t.Fatalf("preview frame is not a PNG: %v", err)
		}
	}

	// Open WebUI's next calls: /history/{id}, then /view of each image.
	r = call(t, "GET", ts.URL+"/history/"+id, nil, auth...)
	h := r.json(t)
	entry, ok := h[id].(map[string]any)
	if !ok {
		t.Fatalf("history has no %s: %s", id, r.Body)
	}
	if get(entry, "status", "status_str") != "success" || get(entry, "status", "completed") != true {
		t.Fatalf("history status %v", entry["status"])
	}
	images := get(entry, "outputs", "9", "images").([]any)
	if len(images) != 1 {
		t.Fatalf("outputs of node 9: %v", images)
	}
	im := images[0].(map[string]any)
	if im["type"] != "output" || !strings.HasPrefix(im["filename"].(string), "ComfyUI_") {
		t.Fatalf("image entry %v", im)
	}
	q := fmt.Sprintf("/view?filename=%s&subfolder=%s&type=%s", im["filename"], im["subfolder"], im["type"])
	r = call(t, "GET", ts.URL+q, nil, auth...)
	if r.Status != 200 || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("view: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	img, info := pngBytes(t, r.Body)
	if img.Bounds().Dx() != 512 || img.Bounds().Dy() != 512 || !strings.Contains(info, "a red fox") {
		t.Fatalf("viewed image %v, infotext %q", img.Bounds(), info)
	}
	// The seed reached the request: the fake model writes it into pixel (0,0).
	if rr, _, _, _ := img.At(0, 0).RGBA(); rr>>8 != 1234%256 {
		t.Fatalf("pixel (0,0) red %d, want the seed's low byte %d", rr>>8, 1234%256)
	}
	// Without credentials, every ComfyUI route and the websocket are refused.
	if r := call(t, "GET", ts.URL+"/history/"+id, nil); r.Status != 401 {
		t.Fatalf("history without the key: %d", r.Status)
	}
	if _, resp, err := websocket.Dial(ctx, wsURL(ts.URL)+"/ws?clientId=x", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("websocket without the key: err %v, resp %v", err, resp)
	}
	// /history lists it; a deleted entry is gone.
	if r := call(t, "GET", ts.URL+"/history?max_items=5", nil, auth...); r.json(t)[id] == nil {
		t.Fatalf("/history lacks %s: %s", id, r.Body)
	}
	call(t, "POST", ts.URL+"/history", map[string]any{"delete": []string{id}}, auth...)
	if r := call(t, "GET", ts.URL+"/history/"+id, nil, auth...); len(r.json(t)) != 0 {
		t.Fatalf("deleted history still answers %s", r.Body)
	}
	if r := call(t, "GET", ts.URL+q, nil, auth...); r.Status != 404 {
		t.Fatalf("view of a deleted prompt's image: %d", r.Status)
	}
}

func TestComfyWebsocketOrigin(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, wsURL(ts.URL)+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-origin websocket: err %v, resp %v; want 403", err, resp)
	}
	c, _, err := websocket.Dial(ctx, wsURL(ts.URL)+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {ts.URL}}})
	if err != nil {
		t.Fatalf("same-origin websocket: %v", err)
	}
	c.CloseNow()
}

// comfyPost posts a workflow and returns the status and the decoded body.
func comfyPost(t *testing.T, url string, wf any) (int, map[string]any) {
	t.Helper()
	r := call(t, "POST", url+"/prompt", map[string]any{"prompt": wf})
	return r.Status, r.json(t)
}

func TestComfyValidationErrors(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	base := func() map[string]map[string]any { return openWebUIWorkflow(t, "fake", "p", 64, 64, 2, 1) }
	set := func(wf map[string]map[string]any, node, input string, v any) map[string]map[string]any {
		wf[node]["inputs"].(map[string]any)[input] = v
		return wf
	}
	cases := []struct {
		name    string
		wf      map[string]map[string]any
		node    string // "" : a prompt-level error
		errType string
	}{
		{"unknown node", func() map[string]map[string]any {
			wf := base()
			wf["10"] = map[string]any{"class_type": "UltimateSDUpscale", "inputs": map[string]any{}}
			return wf
		}(), "", "missing_node_type"},
		{"bad int", set(base(), "3", "steps", "many"), "3", "invalid_input_type"},
		{"below min", set(base(), "3", "steps", 0), "3", "value_smaller_than_min"},
		{"seed beyond 64 bits", set(base(), "3", "seed", json.Number("18446744073709551615")), "3", "value_bigger_than_max"},
		{"unknown sampler", set(base(), "3", "sampler_name", "euler_magic"), "3", "value_not_in_list"},
		{"unknown checkpoint", set(base(), "4", "ckpt_name", "sdxl.safetensors"), "4", "value_not_in_list"},
		{"missing input", func() map[string]map[string]any {
			wf := base()
			delete(wf["6"]["inputs"].(map[string]any), "clip")
			return wf
		}(), "6", "required_input_missing"},
		{"type mismatch", set(base(), "3", "positive", []any{"4", 1}), "3", "return_type_mismatch"},
		{"dangling link", set(base(), "3", "latent_image", []any{"99", 0}), "3", "bad_linked_input"},
		{"over the server's limit", set(base(), "5", "width", 4096), "5", "value_not_valid"},
		{"two samplers", func() map[string]map[string]any {
			wf := base()
			wf["10"] = map[string]any{"class_type": "KSampler", "inputs": map[string]any{"seed": 1, "steps": 2, "cfg": 7, "sampler_name": "euler",
				"scheduler": "karras", "denoise": 0.5, "model": []any{"4", 0}, "positive": []any{"6", 0}, "negative": []any{"7", 0}, "latent_image": []any{"3", 0}}}
			set(wf, "8", "samples", []any{"10", 0})
			return wf
		}(), "10", "unsupported_by_ldm"},
		{"no outputs", func() map[string]map[string]any {
			wf := base()
			delete(wf, "9")
			return wf
		}(), "", "prompt_no_outputs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := comfyPost(t, ts.URL, tc.wf)
			if status != 400 {
				t.Fatalf("status %d, want 400: %v", status, body)
			}
			if tc.node == "" {
				if get(body, "error", "type") != tc.errType {
					t.Fatalf("error %v, want type %s", body["error"], tc.errType)
				}
				return
			}
			if get(body, "error", "type") != "prompt_outputs_failed_validation" {
				t.Fatalf("error %v", body["error"])
			}
			ne, ok := get(body, "node_errors", tc.node).(map[string]any)
			if !ok {
				t.Fatalf("node_errors %v lack node %s", body["node_errors"], tc.node)
			}
			errs := ne["errors"].([]any)
			e := errs[0].(map[string]any)
			if e["type"] != tc.errType || e["message"] == "" || ne["class_type"] == "" {
				t.Fatalf("node %s errors %v, want type %s", tc.node, errs, tc.errType)
			}
			if deps := ne["dependent_outputs"].([]any); len(deps) != 1 || deps[0] != "9" {
				t.Fatalf("dependent_outputs %v, want [9]", deps)
			}
		})
	}
}

func uploadImage(t *testing.T, url, name string, img image.Image) map[string]any {
	t.Helper()
	var buf, pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", name)
	fw.Write(pngBuf.Bytes())
	mw.WriteField("overwrite", "true")
	mw.Close()
	resp, err := http.Post(url+"/upload/image", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %v", resp.StatusCode, out)
	}
	return out
}

func TestComfyInpaintLoRAClipSkip(t *testing.T) {
	s, ts := testServer(t, fake(), Config{})
	src := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := range src.Pix {
		src.Pix[i] = 255
	}
	src.SetNRGBA(3, 4, color.NRGBA{0, 0, 0, 0}) // transparent: repaint here
	up := uploadImage(t, ts.URL, "in.png", src)
	if up["name"] != "in.png" || up["type"] != "input" {
		t.Fatalf("upload answered %v", up)
	}
	if r := call(t, "GET", ts.URL+"/view?filename=in.png&type=input", nil); r.Status != 200 {
		t.Fatalf("view of the upload: %d", r.Status)
	}
	r := call(t, "GET", ts.URL+"/object_info/LoadImage", nil)
	if ch := get(r.json(t), "LoadImage", "input", "required", "image").([]any)[0].([]any); len(ch) != 1 || ch[0] != "in.png" {
		t.Fatalf("LoadImage choices %v", ch)
	}
	wf := map[string]any{
		"1":  map[string]any{"class_type": "CheckpointLoaderSimple", "inputs": map[string]any{"ckpt_name": "fake"}},
		"2":  map[string]any{"class_type": "CLIPSetLastLayer", "inputs": map[string]any{"clip": []any{"1", 1}, "stop_at_clip_layer": -2}},
		"3":  map[string]any{"class_type": "CLIPTextEncode", "inputs": map[string]any{"text": "a cat", "clip": []any{"2", 0}}},
		"4":  map[string]any{"class_type": "CLIPTextEncode", "inputs": map[string]any{"text": "blurry", "clip": []any{"2", 0}}},
		"5":  map[string]any{"class_type": "LoadImage", "inputs": map[string]any{"image": "in.png"}},
		"6":  map[string]any{"class_type": "VAEEncode", "inputs": map[string]any{"pixels": []any{"5", 0}, "vae": []any{"1", 2}}},
		"7":  map[string]any{"class_type": "SetLatentNoiseMask", "inputs": map[string]any{"samples": []any{"6", 0}, "mask": []any{"5", 1}}},
		"8":  map[string]any{"class_type": "KSamplerAdvanced", "inputs": map[string]any{"add_noise": "enable", "noise_seed": 7, "steps": 10, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "positive": []any{"3", 0}, "negative": []any{"4", 0}, "latent_image": []any{"7", 0}, "model": []any{"1", 0}, "start_at_step": 4, "end_at_step": 10000, "return_with_leftover_noise": "disable"}},
		"9":  map[string]any{"class_type": "VAEDecode", "inputs": map[string]any{"samples": []any{"8", 0}, "vae": []any{"1", 2}}},
		"10": map[string]any{"class_type": "PreviewImage", "inputs": map[string]any{"images": []any{"9", 0}}},
	}
	status, body := comfyPost(t, ts.URL, wf)
	if status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	j := s.job(body["prompt_id"].(string))
	req := j.Req
	if req.Prompt != "a cat" || req.NegativePrompt != "blurry" || req.ClipSkip != 2 || req.Steps != 10 || req.GuidanceScale != 6.5 ||
		req.Seed != 7 || req.Sampler != "dpmpp_2m" || req.Schedule != "karras" || req.Width != 64 || req.Height != 48 {
		t.Fatalf("request %+v", req)
	}
	if req.InitImage == nil || req.Strength != 0.6 || req.Mask == nil {
		t.Fatalf("img2img: init %v strength %v mask %v; want the upload, (10-4)/10, the alpha mask", req.InitImage != nil, req.Strength, req.Mask != nil)
	}
	if g := color.GrayModel.Convert(req.Mask.At(3, 4)).(color.Gray); g.Y != 255 {
		t.Fatalf("mask at the transparent pixel %v, want white (repaint)", g)
	}
	if g := color.GrayModel.Convert(req.Mask.At(0, 0)).(color.Gray); g.Y != 0 {
		t.Fatalf("mask at an opaque pixel %v, want black (keep)", g)
	}
	<-j.Done()
	waitFor(t, "history", func() bool { return call(t, "GET", ts.URL+"/history/"+j.ID, nil).json(t)[j.ID] != nil })
	im := get(call(t, "GET", ts.URL+"/history/"+j.ID, nil).json(t), j.ID, "outputs", "10", "images").([]any)[0].(map[string]any)
	if im["type"] != "temp" {
		t.Fatalf("PreviewImage output %v, want type temp", im)
	}
	// A LoRA the folder lacks is not in the list.
	wf["11"] = map[string]any{"class_type": "LoraLoader", "inputs": map[string]any{"model": []any{"1", 0}, "clip": []any{"1", 1}, "lora_name": "nope.safetensors", "strength_model": 1, "strength_clip": 1}}
	wf["8"].(map[string]any)["inputs"].(map[string]any)["model"] = []any{"11", 0}
	if status, body := comfyPost(t, ts.URL, wf); status != 400 || get(body, "node_errors", "11", "errors") == nil {
		t.Fatalf("unknown LoRA: %d %v", status, body)
	}
}

func TestComfyQueueInterruptAndInfo(t *testing.T) {
	m, f := gatedFake()
	_, ts := testServer(t, m, Config{})
	wf := openWebUIWorkflow(t, "fake", "p", 64, 64, 3, 1)
	_, a := comfyPost(t, ts.URL, wf)
	<-f.started
	_, b := comfyPost(t, ts.URL, wf)
	_, c := comfyPost(t, ts.URL, wf)
	q := call(t, "GET", ts.URL+"/queue", nil).json(t)
	run, pend := q["queue_running"].([]any), q["queue_pending"].([]any)
	if len(run) != 1 || run[0].([]any)[1] != a["prompt_id"] || len(pend) != 2 {
		t.Fatalf("queue %v", q)
	}
	if n := get(call(t, "GET", ts.URL+"/prompt", nil).json(t), "exec_info", "queue_remaining"); n != 3.0 {
		t.Fatalf("queue_remaining %v, want 3", n)
	}
	call(t, "POST", ts.URL+"/queue", map[string]any{"delete": []string{c["prompt_id"].(string)}})
	if r := call(t, "POST", ts.URL+"/interrupt", nil); r.Status != 200 {
		t.Fatalf("interrupt: %d", r.Status)
	}
	waitFor(t, "interrupted history", func() bool {
		e, _ := call(t, "GET", ts.URL+"/history/"+a["prompt_id"].(string), nil).json(t)[a["prompt_id"].(string)].(map[string]any)
		return e != nil && get(e, "status", "status_str") == "error"
	})
	q = call(t, "GET", ts.URL+"/queue", nil).json(t)
	if run := q["queue_running"].([]any); len(run) != 1 || run[0].([]any)[1] != b["prompt_id"] || len(q["queue_pending"].([]any)) != 0 {
		t.Fatalf("after interrupt and delete: %v", q)
	}
	close(f.gate)

	info := call(t, "GET", ts.URL+"/object_info", nil).json(t)
	for _, n := range []string{"CheckpointLoaderSimple", "CLIPTextEncode", "CLIPSetLastLayer", "EmptyLatentImage", "KSampler", "KSamplerAdvanced",
		"VAEDecode", "VAEEncode", "LoadImage", "SaveImage", "LoraLoader", "SetLatentNoiseMask", "ControlNetLoader", "ControlNetApply", "VAELoader"} {
		if info[n] == nil {
			t.Fatalf("object_info lacks %s", n)
		}
	}
	if d := get(info, "EmptyLatentImage", "input", "required", "width").([]any)[1].(map[string]any)["default"]; d != 64.0 {
		t.Fatalf("EmptyLatentImage width default %v, want the model's native 64", d)
	}
	samplers := get(info, "KSampler", "input", "required", "sampler_name").([]any)[0].([]any)
	if len(samplers) < 10 || fmt.Sprint(samplers[0]) != "euler" {
		t.Fatalf("sampler choices %v", samplers)
	}
	st := call(t, "GET", ts.URL+"/system_stats", nil).json(t)
	if get(st, "system", "ram_total") == nil || len(st["devices"].([]any)) != 1 {
		t.Fatalf("system_stats %v", st)
	}
	if r := call(t, "GET", ts.URL+"/models/checkpoints", nil); string(r.Body) != `["fake"]` {
		t.Fatalf("/models/checkpoints %s, want the server's model", r.Body)
	}
	if r := call(t, "GET", ts.URL+"/models", nil); !strings.Contains(string(r.Body), `"checkpoints"`) {
		t.Fatalf("/models %s", r.Body)
	}
	if r := call(t, "GET", ts.URL+"/models/upscale_models", nil); r.Status != 404 {
		t.Fatalf("/models/upscale_models: %d, want 404", r.Status)
	}
	if r := call(t, "GET", ts.URL+"/embeddings", nil); string(r.Body) != "[]" {
		t.Fatalf("embeddings %s", r.Body)
	}
}

// An interrupted prompt tells its client execution_interrupted (never
// execution_success), then the end of the prompt.
func TestComfyWebsocketInterrupt(t *testing.T) {
	m, f := gatedFake()
	_, ts := testServer(t, m, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(ts.URL)+"/ws?clientId=c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	r := call(t, "POST", ts.URL+"/prompt", map[string]any{"prompt": openWebUIWorkflow(t, "fake", "p", 64, 64, 5, 1), "client_id": "c1"})
	id, _ := r.json(t)["prompt_id"].(string)
	<-f.started
	f.gate <- struct{}{} // one step
	if r := call(t, "POST", ts.URL+"/interrupt", map[string]any{"prompt_id": id}); r.Status != 200 {
		t.Fatalf("interrupt: %d", r.Status)
	}
	msgs, _ := readUntilDone(t, ctx, ws, func() string { return id })
	var types []string
	for _, m := range msgs {
		types = append(types, m.Type)
		if m.Type == "execution_success" || m.Type == "executed" {
			t.Fatalf("an interrupted prompt sent %s: %v", m.Type, types)
		}
	}
	if !strings.Contains(strings.Join(types, " "), "execution_interrupted") {
		t.Fatalf("messages %v lack execution_interrupted", types)
	}
}
