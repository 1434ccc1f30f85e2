package app

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/jpeg"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"

	"golang.org/x/image/webp"
)

// sdkRequest is a request the official OpenAI Node SDK (openai 7.60.0)
// sent, recorded by testdata/openai_sdk_record.mjs.
type sdkRequest struct {
	Method, URL, ContentType string
	Body                     []byte
}

func sdkRequests(t *testing.T) []sdkRequest {
	t.Helper()
	data, err := os.ReadFile("testdata/openai_sdk_requests.json")
	if err != nil {
		t.Fatal(err)
	}
	var rs []sdkRequest
	if err := json.Unmarshal(data, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// replay sends a recorded SDK request to the server unchanged.
func (r sdkRequest) replay(t *testing.T, base string) response {
	t.Helper()
	return call(t, r.Method, base+r.URL, r.Body, "Content-Type", r.ContentType)
}

// oaEvent is one server-sent event.
type oaEvent struct {
	Event string
	Data  map[string]any
}

// readSSE parses an event stream as the SDK does: "event:" and "data:"
// lines, a blank line ending each event.
func readSSE(t *testing.T, body []byte) []oaEvent {
	t.Helper()
	var out []oaEvent
	var cur oaEvent
	var data string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := json.Unmarshal([]byte(data), &cur.Data); err != nil {
					t.Fatalf("event %s: data is not JSON: %v", cur.Event, err)
				}
				out = append(out, cur)
			}
			cur, data = oaEvent{}, ""
		case strings.HasPrefix(line, "event: "):
			cur.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func b64Bytes(t *testing.T, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(data) == 0 {
		t.Fatalf("not base64 image data: %.60v", v)
	}
	return data
}

// TestOpenAISDKEditWithMask: the SDK's images.edit with two images (sent
// as image[]), a mask transparent on its left half, quality low and
// output_format jpeg runs as inpainting on the tiny model: a 64×64 JPEG
// comes back as b64_json (gpt-image), the right half (opaque in the mask)
// keeps the image, the left half is repainted, and the answer carries
// usage and the settings.
func TestOpenAISDKEditWithMask(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	r := sdkRequests(t)[0].replay(t, ts.URL)
	if r.Status != http.StatusOK {
		t.Fatalf("edit: %d %s", r.Status, r.Body)
	}
	v := r.json(t)
	data := v["data"].([]any)
	if len(data) != 1 || v["output_format"] != "jpeg" || v["quality"] != "low" || v["size"] != "64x64" {
		t.Fatalf("answer %v", v)
	}
	if get(v, "usage", "output_tokens") != float64(64) || get(v, "usage", "input_tokens_details", "image_tokens") != float64(64) || get(v, "usage", "input_tokens_details", "text_tokens") != float64(3) {
		t.Errorf("usage %v", v["usage"])
	}
	if !strings.Contains(r.Header.Get("X-Ldm-Note"), "2 images") {
		t.Errorf("no note that the second image is not used: %v", r.Header)
	}
	img, err := jpeg.Decode(bytes.NewReader(b64Bytes(t, data[0].(map[string]any)["b64_json"])))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	if img.Bounds() != image.Rect(0, 0, 64, 64) {
		t.Fatalf("bounds %v", img.Bounds())
	}
	diff := func(x0, x1 int) float64 { // mean |pixel - original gray (120,130,140)|
		var sum float64
		for y := range 64 {
			for x := x0; x < x1; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				sum += abs(float64(r>>8)-120) + abs(float64(g>>8)-130) + abs(float64(b>>8)-140)
			}
		}
		return sum / float64(3*64*(x1-x0))
	}
	if kept, repainted := diff(44, 64), diff(0, 20); kept > 4 || repainted < 3*kept+10 {
		t.Errorf("mean difference from the original: %.1f where the mask is opaque, %.1f where transparent", kept, repainted)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestOpenAISDKEditAndVariation: the SDK's plain edit (one image, no mask:
// img2img) and createVariation (n=2) answer b64_json PNGs of the asked
// size; a variation's infotext has the variation strength.
func TestOpenAISDKEditAndVariation(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	rs := sdkRequests(t)
	for i, want := range map[int]int{1: 1, 2: 2} {
		r := rs[i].replay(t, ts.URL)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", rs[i].URL, r.Status, r.Body)
		}
		data := r.json(t)["data"].([]any)
		if len(data) != want {
			t.Fatalf("%s: %d images, want %d", rs[i].URL, len(data), want)
		}
		for _, d := range data {
			img, _ := pngBytes(t, b64Bytes(t, d.(map[string]any)["b64_json"]))
			if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
				t.Errorf("%s: %v", rs[i].URL, img.Bounds())
			}
		}
	}
}

// TestOpenAISDKStreams: the SDK's streaming edit (partial_images 2) and
// streaming generation (partial_images 1, output_format webp, moderation
// low) answer OpenAI's events in order: the partial images with their
// indices, then the completed image with usage; the moderation is stated
// as not applied.
func TestOpenAISDKStreams(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	rs := sdkRequests(t)
	for _, c := range []struct {
		req      sdkRequest
		kind     string
		partials int
		format   string
	}{{rs[3], "image_edit", 2, "png"}, {rs[4], "image_generation", 1, "webp"}} {
		r := c.req.replay(t, ts.URL)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%s: %d %s %s", c.req.URL, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		evs := readSSE(t, r.Body)
		// As OpenAI documents, the final image may come before every partial
		// one: a reader that falls behind the job (a loaded machine) sees only
		// the newest preview. So 1..partials partials, then the completed.
		partials := len(evs) - 1
		if partials < 1 || partials > c.partials {
			t.Fatalf("%s: %d events, want 1..%d partial and 1 completed: %s", c.req.URL, len(evs), c.partials, r.Body)
		}
		for i, e := range evs {
			want := c.kind + ".partial_image"
			if i == partials {
				want = c.kind + ".completed"
			}
			if e.Event != want || e.Data["type"] != want || e.Data["output_format"] != c.format || e.Data["size"] != "512x512" && e.Data["size"] != "64x64" {
				t.Errorf("%s event %d: %s %v", c.req.URL, i, e.Event, e.Data["type"])
			}
			if i < partials && e.Data["partial_image_index"] != float64(i) {
				t.Errorf("%s: partial %d has index %v", c.req.URL, i, e.Data["partial_image_index"])
			}
			data := b64Bytes(t, e.Data["b64_json"])
			if c.format == "webp" {
				if _, err := webp.Decode(bytes.NewReader(data)); err != nil {
					t.Errorf("%s event %d: not a WebP: %v", c.req.URL, i, err)
				}
			} else {
				pngBytes(t, data)
			}
		}
		if last := evs[len(evs)-1].Data; get(last, "usage", "output_tokens") == nil {
			t.Errorf("%s: completed without usage: %v", c.req.URL, last["usage"])
		}
		if c.kind == "image_generation" && !strings.Contains(r.Header.Get("X-Ldm-Moderation"), "not applied") {
			t.Errorf("moderation not stated as not applied: %v", r.Header)
		}
	}
}

// TestOpenAIImageOptions: gpt-image semantics on generations: b64_json
// always for gpt-image (url for dall-e), quality maps to steps, size auto
// is the native size, output_format jpeg, background transparent is
// refused naming the field, a bad partial_images count too, and an
// edit's opaque mask.
func TestOpenAIImageOptions(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	gen := func(body map[string]any) response {
		return call(t, "POST", ts.URL+"/v1/images/generations", body)
	}
	r := gen(map[string]any{"model": "gpt-image-1", "prompt": "a", "quality": "medium", "size": "auto"})
	d := r.json(t)["data"].([]any)[0].(map[string]any)
	if d["url"] != nil || d["b64_json"] == nil {
		t.Fatalf("gpt-image answered %v", d)
	}
	img, params := pngBytes(t, b64Bytes(t, d["b64_json"]))
	if !strings.Contains(params, "Steps: 20") || img.Bounds().Dx() != 64 {
		t.Errorf("quality medium, size auto: %v, %q", img.Bounds(), params)
	}
	if d := gen(map[string]any{"model": "dall-e-2", "prompt": "a"}).json(t)["data"].([]any)[0].(map[string]any); d["url"] == nil {
		t.Errorf("dall-e-2 without response_format: %v, want a url", d)
	}
	r = gen(map[string]any{"prompt": "a", "output_format": "jpeg", "output_compression": 50})
	if _, err := jpeg.Decode(bytes.NewReader(b64Bytes(t, r.json(t)["data"].([]any)[0].(map[string]any)["b64_json"]))); err != nil {
		t.Errorf("output_format jpeg: %v", err)
	}
	for body, param := range map[string]string{
		`{"prompt":"a","background":"transparent"}`: "background",
		`{"prompt":"a","partial_images":5}`:         "partial_images",
		`{"prompt":"a","quality":"ultra"}`:          "quality",
		`{"prompt":"a","output_format":"gif"}`:      "output_format",
	} {
		r := call(t, "POST", ts.URL+"/v1/images/generations", body)
		if r.Status != http.StatusBadRequest || get(r.json(t), "error", "param") != param {
			t.Errorf("%s: %d %s, want 400 naming %s", body, r.Status, r.Body, param)
		}
	}
	r = call(t, "POST", ts.URL+"/v1/images/edits", "prompt=a", "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusBadRequest || get(r.json(t), "error", "param") != "body" {
		t.Errorf("an edit not in multipart: %d %s", r.Status, r.Body)
	}
}

// TestOpenAIEditOpaqueMask: a mask with no transparent pixel marks
// nothing to repaint: 400 naming mask.
func TestOpenAIEditOpaqueMask(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, name := range []string{"image", "mask"} {
		w, _ := mw.CreateFormFile(name, name+".png")
		data, _ := base64.StdEncoding.DecodeString(pngB64(t, blank(64, 64)))
		w.Write(data)
	}
	mw.WriteField("prompt", "a")
	mw.Close()
	r := call(t, "POST", ts.URL+"/v1/images/edits", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	if r.Status != http.StatusBadRequest || get(r.json(t), "error", "param") != "mask" {
		t.Errorf("opaque mask: %d %s", r.Status, r.Body)
	}
}
