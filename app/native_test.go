package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

func TestNativeGenerateReturnsReproduciblePNG(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	body := map[string]any{"prompt": "a red fox", "steps": 2, "width": 32, "height": 48, "seed": 5}
	first := call(t, "POST", ts.URL+"/api/v1/generate", body)
	if first.Status != http.StatusOK {
		t.Fatalf("status %d: %s", first.Status, first.Body)
	}
	v := first.json(t)
	if v["state"] != "succeeded" {
		t.Fatalf("state %v", v["state"])
	}
	images := v["images"].([]any)
	if len(images) != 1 {
		t.Fatalf("%d images, want 1", len(images))
	}
	im := images[0].(map[string]any)
	img, params := decodePNG(t, im["png"].(string))
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 48 {
		t.Errorf("image is %v, want 32x48", b)
	}
	for _, want := range []string{"a red fox\n", "Steps: 2", "Seed: 5", "Size: 32x48", "Model: tiny_sd15"} {
		if !strings.Contains(params, want) {
			t.Errorf("parameters %q lack %q", params, want)
		}
	}
	if im["seed"].(float64) != 5 || im["infotext"] != params {
		t.Errorf("image record %v does not match the PNG's parameters", im)
	}
	second := call(t, "POST", ts.URL+"/api/v1/generate", body)
	if got := second.json(t)["images"].([]any)[0].(map[string]any)["png"]; got != im["png"] {
		t.Error("the same seed gave different PNG bytes")
	}
}

// validationCases are requests each limit or rule refuses, with the field
// the 400 must name, per API family.
func TestValidationErrorsName400Field(t *testing.T) {
	limits := ldm.DefaultLimits
	limits.MaxPromptChars = 50
	_, ts := testServer(t, fake(), Config{Limits: limits})
	long := strings.Repeat("x", 51)
	cases := []struct {
		name, path string
		body       any
		field      string
	}{
		{"native empty prompt", "/api/v1/jobs", `{"prompt":"  "}`, "prompt"},
		{"native long prompt", "/api/v1/jobs", map[string]any{"prompt": long}, "prompt"},
		{"native long negative", "/api/v1/jobs", map[string]any{"prompt": "a", "negative_prompt": long}, "negative_prompt"},
		{"native steps over limit", "/api/v1/jobs", `{"prompt":"a","steps":151}`, "steps"},
		{"native width not multiple", "/api/v1/jobs", `{"prompt":"a","width":60}`, "width"},
		{"native height over limit", "/api/v1/jobs", `{"prompt":"a","height":4096}`, "height"},
		{"native batch over limit", "/api/v1/jobs", `{"prompt":"a","batch_size":17}`, "batch_size"},
		{"native batch count over limit", "/api/v1/jobs", `{"prompt":"a","batch_count":101}`, "batch_count"},
		{"native guidance", "/api/v1/jobs", `{"prompt":"a","guidance_scale":101}`, "guidance_scale"},
		{"native seed", "/api/v1/jobs", `{"prompt":"a","seed":-2}`, "seed"},
		{"native sampler", "/api/v1/jobs", `{"prompt":"a","sampler":"Euler z"}`, "sampler"},
		{"native schedule", "/api/v1/jobs", `{"prompt":"a","sampler":"Euler","schedule":"cosine"}`, "schedule"},
		{"native strength without image", "/api/v1/jobs", `{"prompt":"a","strength":0.5}`, "strength"},
		{"native init image not base64", "/api/v1/jobs", `{"prompt":"a","init_image":"%%%"}`, "init_image"},
		{"native init image not an image", "/api/v1/jobs", `{"prompt":"a","init_image":"aGVsbG8="}`, "init_image"},
		{"native wrong type", "/api/v1/jobs", `{"prompt":"a","steps":"many"}`, "steps"},
		{"native not JSON", "/api/v1/jobs", `{"prompt":`, "body"},
		{"native empty body", "/api/v1/jobs", ``, "body"},
		{"native sync steps", "/api/v1/generate", `{"prompt":"a","steps":151}`, "steps"},
		{"native LoRA by path", "/api/v1/jobs", `{"prompt":"a","loras":[{"path":"/etc/passwd"}]}`, "loras"},
		{"native LoRA tag weight", "/api/v1/jobs", `{"prompt":"a <lora:x:heavy>"}`, "prompt"},
		{"a1111 steps", "/sdapi/v1/txt2img", `{"prompt":"a","steps":151}`, "steps"},
		{"a1111 cfg", "/sdapi/v1/txt2img", `{"prompt":"a","cfg_scale":-1}`, "cfg_scale"},
		{"a1111 n_iter", "/sdapi/v1/txt2img", `{"prompt":"a","n_iter":1000}`, "n_iter"},
		{"a1111 sampler", "/sdapi/v1/txt2img", `{"prompt":"a","sampler_name":"Nope"}`, "sampler_name"},
		{"a1111 karras on DDIM", "/sdapi/v1/txt2img", `{"prompt":"a","sampler_name":"DDIM","scheduler":"Karras"}`, "scheduler"},
		{"a1111 width string", "/sdapi/v1/txt2img", `{"prompt":"a","width":"wide"}`, "width"},
		{"a1111 clip skip", "/sdapi/v1/txt2img", `{"prompt":"a","override_settings":{"CLIP_stop_at_last_layers":13}}`, "clip_skip"},
		{"a1111 other checkpoint", "/sdapi/v1/txt2img", `{"prompt":"a","override_settings":{"sd_model_checkpoint":"sdxl"}}`, "override_settings.sd_model_checkpoint"},
		{"a1111 img2img without image", "/sdapi/v1/img2img", `{"prompt":"a"}`, "init_images"},
		{"a1111 img2img strength", "/sdapi/v1/img2img", map[string]any{"prompt": "a", "init_images": []string{pngB64(t, blank(64, 64))}, "denoising_strength": 1.5}, "denoising_strength"},
		{"a1111 img2img mask size", "/sdapi/v1/img2img", map[string]any{"prompt": "a", "init_images": []string{pngB64(t, blank(64, 64))}, "mask": pngB64(t, blank(32, 32))}, "mask"},
		{"openai size", "/v1/images/generations", `{"prompt":"a","size":"big"}`, "size"},
		{"openai size multiple", "/v1/images/generations", `{"prompt":"a","size":"100x100"}`, "size"},
		{"openai n", "/v1/images/generations", `{"prompt":"a","n":17}`, "n"},
		{"openai prompt", "/v1/images/generations", `{"prompt":""}`, "prompt"},
		{"openai format", "/v1/images/generations", `{"prompt":"a","response_format":"jpeg"}`, "response_format"},
		{"openai model", "/v1/images/generations", `{"prompt":"a","model":"stable-diffusion-xl"}`, "model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, "POST", ts.URL+c.path, c.body)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			v := r.json(t)
			var field any
			switch styleFor(c.path) {
			case styleOpenAI:
				field = get(v, "error", "param")
				if get(v, "error", "type") != "invalid_request_error" || get(v, "error", "message") == "" {
					t.Errorf("not OpenAI's error shape: %s", r.Body)
				}
			case styleA1111:
				field = v["field"]
				if v["detail"] == nil {
					t.Errorf("no detail: %s", r.Body)
				}
			default:
				field = v["field"]
			}
			if field != c.field {
				t.Errorf("field %v, want %q: %s", field, c.field, r.Body)
			}
		})
	}
}

func TestQueueFullAnswers429WithRetryAfter(t *testing.T) {
	m, f := gatedFake()
	_, ts := testServer(t, m, Config{QueueSize: 2})
	body := map[string]any{"prompt": "a", "steps": 1}
	var ids []string
	for i := 0; i < 3; i++ { // one runs, two wait
		r := call(t, "POST", ts.URL+"/api/v1/jobs", body)
		if r.Status != http.StatusAccepted {
			t.Fatalf("job %d: status %d: %s", i, r.Status, r.Body)
		}
		v := r.json(t)
		ids = append(ids, v["id"].(string))
		if i == 0 {
			<-f.started // the first is running: the queue is empty again
		} else if v["position"].(float64) != float64(i) {
			t.Errorf("job %d: position %v, want %d", i, v["position"], i)
		}
	}
	for _, c := range []struct{ path, shape string }{
		{"/api/v1/jobs", "native"}, {"/api/v1/generate", "native"},
		{"/sdapi/v1/txt2img", "a1111"}, {"/v1/images/generations", "openai"},
	} {
		r := call(t, "POST", ts.URL+c.path, body)
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("%s: status %d, want 429: %s", c.path, r.Status, r.Body)
		}
		if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("%s: Retry-After %q", c.path, ra)
		}
		v := r.json(t)
		if c.shape == "openai" && get(v, "error", "code") != "rate_limit_exceeded" {
			t.Errorf("OpenAI 429 body %s", r.Body)
		}
	}
	r := call(t, "GET", ts.URL+"/api/v1/jobs/"+ids[2], nil)
	if v := r.json(t); v["state"] != "queued" || v["position"].(float64) != 2 {
		t.Errorf("third job: %s", r.Body)
	}
	close(f.gate)
	for _, id := range ids {
		waitFor(t, "job "+id, func() bool {
			return call(t, "GET", ts.URL+"/api/v1/jobs/"+id, nil).json(t)["state"] == "succeeded"
		})
	}
	if r := call(t, "POST", ts.URL+"/api/v1/jobs", body); r.Status != http.StatusAccepted {
		t.Errorf("after the queue drained: status %d", r.Status)
	}
	metrics := string(call(t, "GET", ts.URL+"/metrics", nil).Body)
	if !strings.Contains(metrics, `ldm_jobs_rejected_total{reason="queue_full"} 4`) {
		t.Errorf("metrics do not count 4 queue-full rejections:\n%s", metrics)
	}
}

func TestCancelQueuedAndRunningJobs(t *testing.T) {
	m, f := gatedFake()
	s, ts := testServer(t, m, Config{})
	post := func() string {
		r := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 3})
		if r.Status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		return r.json(t)["id"].(string)
	}
	running := post()
	<-f.started
	queued := post()

	r := call(t, "DELETE", ts.URL+"/api/v1/jobs/"+queued, nil)
	if v := r.json(t); r.Status != http.StatusOK || v["state"] != "cancelled" || get(v, "error", "code") != "cancelled" {
		t.Errorf("cancel queued: %d %s", r.Status, r.Body)
	}
	f.gate <- struct{}{} // one step done, then cancel mid-run
	waitFor(t, "first step", func() bool { return s.job(running).snapshot().Progress.Step == 1 })
	r = call(t, "DELETE", ts.URL+"/api/v1/jobs/"+running, nil)
	if v := r.json(t); r.Status != http.StatusOK || v["state"] != "cancelled" {
		t.Errorf("cancel running: %d %s", r.Status, r.Body)
	}
	if got := f.ctxErrs.Load(); got != 1 {
		t.Errorf("the model saw %d cancelled contexts, want 1", got)
	}
	if got := f.calls.Load(); got != 1 {
		t.Errorf("the model ran %d times, want 1 (the queued job never starts)", got)
	}
	if r := call(t, "DELETE", ts.URL+"/api/v1/jobs/"+running, nil); r.Status != http.StatusConflict {
		t.Errorf("cancel finished: status %d, want 409", r.Status)
	}
	if r := call(t, "DELETE", ts.URL+"/api/v1/jobs/nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("cancel unknown: status %d, want 404", r.Status)
	}
	if r := call(t, "GET", ts.URL+"/api/v1/jobs/nope", nil); r.Status != http.StatusNotFound || r.json(t)["field"] != "id" {
		t.Errorf("get unknown: %d %s", r.Status, r.Body)
	}
	metrics := string(call(t, "GET", ts.URL+"/metrics", nil).Body)
	if !strings.Contains(metrics, `ldm_jobs_finished_total{state="cancelled"} 2`) {
		t.Errorf("metrics do not count 2 cancelled jobs:\n%s", metrics)
	}
}

type sse struct {
	name string
	data map[string]any
}

// readEvents reads a server-sent event stream to its end.
func readEvents(t *testing.T, url string, header ...string) []sse {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var out []sse
	var cur sse
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				t.Fatalf("event %s: %v", cur.name, err)
			}
		case line == "" && cur.name != "":
			out = append(out, cur)
			cur = sse{}
		}
	}
	return out
}

func TestEventsComeInOrder(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{PreviewEvery: 1})
	r := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 3, "width": 32, "height": 32, "seed": 1})
	if r.Status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	v := r.json(t)
	events := readEvents(t, ts.URL+v["events_url"].(string))
	var names []string
	step := 0
	for _, e := range events {
		names = append(names, e.name)
		switch e.name {
		case "progress":
			step++
			if e.data["step"].(float64) != float64(step) || e.data["total"].(float64) != 3 {
				t.Errorf("progress %v, want step %d of 3", e.data, step)
			}
			if _, ok := e.data["eta_ms"]; !ok {
				t.Errorf("progress without eta_ms: %v", e.data)
			}
		case "preview":
			img, _ := decodePNG(t, e.data["image"].(string))
			if b := img.Bounds(); b.Dx() != 4 || b.Dy() != 4 {
				t.Errorf("preview is %v, want the 4x4 latent", b)
			}
		}
	}
	if len(names) < 6 || names[0] != "queued" || names[1] != "running" || names[len(names)-1] != "done" || step != 3 {
		t.Fatalf("events %v: want queued, running, 3 progress (previews between), done", names)
	}
	done := events[len(events)-1].data
	if done["state"] != "succeeded" || len(done["images"].([]any)) != 1 {
		t.Errorf("done event: %v", done)
	}
	// A late subscriber replays the history with only the last preview.
	again := readEvents(t, ts.URL+v["events_url"].(string))
	var later []string
	for _, e := range again {
		later = append(later, e.name)
	}
	if want := "queued running progress progress progress preview done"; strings.Join(later, " ") != want {
		t.Errorf("replay %v, want %q", later, want)
	}
	// A reconnecting EventSource resumes after the last id it saw.
	resumed := readEvents(t, ts.URL+v["events_url"].(string), "Last-Event-ID", "3")
	if len(resumed) == 0 || resumed[0].name != "progress" || resumed[0].data["step"] != 2.0 {
		t.Errorf("resumed after id 3: %v", resumed)
	}
}

func TestNativeImg2ImgTakesBase64InitImage(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	r := call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{
		"prompt": "a wall", "steps": 2, "width": 32, "height": 32, "seed": 2, "strength": 0.5,
		"init_image": pngB64(t, blank(48, 48)),
	})
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	im := r.json(t)["images"].([]any)[0].(map[string]any)
	img, params := decodePNG(t, im["png"].(string))
	if img.Bounds().Dx() != 32 || !strings.Contains(params, "Denoising strength: 0.5") {
		t.Errorf("image %v, parameters %q", img.Bounds(), params)
	}
}

func TestJobImagesAreServed(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	r := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 1, "width": 32, "height": 32, "batch_size": 2, "seed": 9})
	id := r.json(t)["id"].(string)
	var v map[string]any
	waitFor(t, "the job", func() bool {
		v = call(t, "GET", ts.URL+"/api/v1/jobs/"+id, nil).json(t)
		return v["state"] == "succeeded"
	})
	images := v["images"].([]any)
	if len(images) != 2 {
		t.Fatalf("%d images, want 2", len(images))
	}
	for i, want := range []int64{9, 10} {
		im := images[i].(map[string]any)
		r := call(t, "GET", ts.URL+im["url"].(string), nil)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("image %d: %d %s", i, r.Status, r.Header.Get("Content-Type"))
		}
		if base64.StdEncoding.EncodeToString(r.Body) != im["png"] {
			t.Errorf("image %d: the URL serves other bytes than the job's base64", i)
		}
		if int64(im["seed"].(float64)) != want {
			t.Errorf("image %d: seed %v, want %d", i, im["seed"], want)
		}
	}
	if r := call(t, "GET", ts.URL+"/api/v1/jobs/"+id+"/images/2.png", nil); r.Status != http.StatusNotFound {
		t.Errorf("image 2: status %d, want 404", r.Status)
	}
}

func TestSyncRequestCancelledWhenClientLeaves(t *testing.T) {
	m, f := gatedFake()
	s, ts := testServer(t, m, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan response)
	go func() {
		done <- callCtx(t, ctx, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 5})
	}()
	<-f.started
	cancel()
	if r := <-done; r.Status != -1 {
		t.Fatalf("the client got status %d after leaving", r.Status)
	}
	waitFor(t, "the model to see the cancellation", func() bool { return f.ctxErrs.Load() == 1 })
	waitFor(t, "the job to be forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.jobs) == 0
	})
}

func TestJobTimeoutAnswers504(t *testing.T) {
	m, _ := gatedFake() // never opened: the job runs until its deadline
	_, ts := testServer(t, m, Config{JobTimeout: 50 * time.Millisecond})
	r := call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 2})
	if r.Status != http.StatusGatewayTimeout || !strings.Contains(r.json(t)["error"].(string), "50ms") {
		t.Errorf("status %d: %s", r.Status, r.Body)
	}
}

func TestShutdownFinishesRunningJobAndCancelsQueued(t *testing.T) {
	m, f := gatedFake()
	s, ts := testServer(t, m, Config{})
	running := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 2}).json(t)["id"].(string)
	<-f.started
	queued := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 2}).json(t)["id"].(string)
	stopped := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	waitFor(t, "the queued job to be cancelled", func() bool { return s.job(queued).snapshot().State == Cancelled })
	if r := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a"}); r.Status != http.StatusServiceUnavailable {
		t.Errorf("submit while stopping: status %d, want 503", r.Status)
	}
	if r := call(t, "GET", ts.URL+"/healthz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("healthz while stopping: status %d, want 503", r.Status)
	}
	close(f.gate)
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if sn := s.job(running).snapshot(); sn.State != Succeeded {
		t.Errorf("running job ended %s (%v), want succeeded", sn.State, sn.Err)
	}
	if sn := s.job(queued).snapshot(); sn.Code != "shutdown" {
		t.Errorf("queued job code %q, want shutdown", sn.Code)
	}
}

func TestShutdownDeadlineCancelsRunningJob(t *testing.T) {
	m, f := gatedFake()
	s, ts := testServer(t, m, Config{})
	id := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": "a", "steps": 2}).json(t)["id"].(string)
	<-f.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Error("Shutdown past its deadline returned nil")
	}
	if sn := s.job(id).snapshot(); sn.State != Cancelled || sn.Code != "shutdown" {
		t.Errorf("job ended %s/%s, want cancelled/shutdown", sn.State, sn.Code)
	}
}

func TestListingsAndProbes(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	v := call(t, "GET", ts.URL+"/api/v1/models", nil).json(t)
	models := v["models"].([]any)
	if len(models) != 1 || get(models[0].(map[string]any), "name") != "fake" || get(models[0].(map[string]any), "loaded") != true {
		t.Errorf("models: %v", v)
	}
	v = call(t, "GET", ts.URL+"/api/v1/samplers", nil).json(t)
	names := map[string]bool{}
	for _, s := range v["samplers"].([]any) {
		names[s.(map[string]any)["name"].(string)] = true
	}
	for _, want := range []string{"Euler a", "DPM++ 2M Karras", "DDIM"} {
		if !names[want] {
			t.Errorf("samplers lack %q", want)
		}
	}
	r := call(t, "GET", ts.URL+"/healthz", nil)
	if r.Status != http.StatusOK || r.json(t)["status"] != "ok" {
		t.Errorf("healthz: %d %s", r.Status, r.Body)
	}
	if r := call(t, "GET", ts.URL+"/nope", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown route: %d", r.Status)
	}
}

func TestMetricsCountJobsAndSteps(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	for i := 0; i < 2; i++ {
		if r := call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": "a", "steps": 3}); r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	}
	call(t, "POST", ts.URL+"/api/v1/generate", map[string]any{"prompt": ""})
	r := call(t, "GET", ts.URL+"/metrics", nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	text := string(r.Body)
	for _, want := range []string{
		"# TYPE ldm_queue_depth gauge\nldm_queue_depth 0\n",
		`ldm_jobs{state="running"} 0`,
		"ldm_jobs_submitted_total 2\n",
		`ldm_jobs_finished_total{state="succeeded"} 2`,
		`ldm_jobs_rejected_total{reason="invalid"} 1`,
		"ldm_images_total 2\n",
		"# TYPE ldm_step_seconds histogram\n",
		`ldm_step_seconds_bucket{le="+Inf"} 6`,
		"ldm_step_seconds_count 6\n",
		"ldm_job_seconds_count 2\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Every sample line is "name{labels} value" with a numeric value.
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Errorf("malformed sample %q", line)
		}
	}
}

// GET /api/v1/defaults is Request.Defaults on the loaded model, not a copy:
// every value equals what an absent field becomes when a job runs.
func TestDefaultsRouteIsTheLibrarysDefaults(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	got := call(t, "GET", ts.URL+"/api/v1/defaults", nil).json(t)
	want := ldm.Blank()
	px := image.NewGray(image.Rect(0, 0, 1, 1))
	want.InitImage, want.Mask = px, px
	want.Defaults(fake().Model.SampleSize())
	for name, v := range map[string]any{"width": want.Width, "height": want.Height, "steps": want.Steps,
		"guidance_scale": want.GuidanceScale, "sampler": want.Sampler, "seed": want.Seed, "batch_size": want.BatchSize,
		"batch_count": want.BatchCount, "noise": want.Noise, "strength": want.Strength, "mask_blur": *want.MaskBlur} {
		if fmt.Sprint(got[name]) != fmt.Sprint(v) {
			t.Errorf("defaults %s = %v, want %v (all: %v)", name, got[name], v, got)
		}
	}
}
