package app

import (
	"encoding/json"
	"image"
	"net/http"
	"strings"
	"testing"
	"time"
)

// openAISDKHeaders are what the official Python SDK sends with every call.
var openAISDKHeaders = []string{
	"Authorization", "Bearer sk-test-123",
	"User-Agent", "OpenAI/Python 1.54.4",
	"X-Stainless-Lang", "python",
	"X-Stainless-Package-Version", "1.54.4",
	"X-Stainless-Runtime", "CPython",
	"X-Stainless-Retry-Count", "0",
	"Accept", "application/json",
}

func TestOpenAISDKCallSucceedsUnchanged(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{APIKey: "sk-test-123"})
	// client.images.generate(model="dall-e-2", prompt=..., n=2, size="32x32", response_format="b64_json")
	r := call(t, "POST", ts.URL+"/v1/images/generations",
		`{"model":"dall-e-2","prompt":"a lighthouse at night","n":2,"size":"32x32","response_format":"b64_json","user":"user-1234"}`,
		openAISDKHeaders...)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var resp struct {
		Created int64 `json:"created"`
		Data    []struct {
			B64JSON       string `json:"b64_json"`
			URL           string `json:"url"`
			RevisedPrompt string `json:"revised_prompt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || time.Since(time.Unix(resp.Created, 0)) > time.Minute {
		t.Fatalf("response: %s", r.Body)
	}
	for i, d := range resp.Data {
		img, params := decodePNG(t, d.B64JSON)
		if img.Bounds().Size() != image.Pt(32, 32) || d.URL != "" || d.RevisedPrompt != "a lighthouse at night" {
			t.Errorf("image %d: %v, url %q, revised %q", i, img.Bounds(), d.URL, d.RevisedPrompt)
		}
		if !strings.HasPrefix(params, "a lighthouse at night\n") {
			t.Errorf("image %d: parameters %q", i, params)
		}
	}
}

func TestOpenAIURLsServeImagesForALimitedTime(t *testing.T) {
	s, ts := testServer(t, fake(), Config{APIKey: "sk-test-123", FileTTL: time.Minute})
	// response_format is left out: OpenAI's default is "url".
	r := call(t, "POST", ts.URL+"/v1/images/generations", `{"prompt":"a","size":"32x32"}`, openAISDKHeaders...)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	url, _ := get(r.json(t), "data").([]any)[0].(map[string]any)["url"].(string)
	if !strings.HasPrefix(url, ts.URL+"/v1/files/") || !strings.HasSuffix(url, ".png") {
		t.Fatalf("url %q", url)
	}
	// Fetched without credentials, as an <img> tag or a download would.
	img := call(t, "GET", url, nil)
	if img.Status != http.StatusOK || img.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET url: %d %s", img.Status, img.Header.Get("Content-Type"))
	}
	if im, _ := pngBytes(t, img.Body); im.Bounds().Size() != image.Pt(32, 32) {
		t.Errorf("image %v", im.Bounds())
	}
	s.files.mu.Lock()
	s.files.now = func() time.Time { return time.Now().Add(time.Minute + time.Second) }
	s.files.mu.Unlock()
	gone := call(t, "GET", url, nil)
	if gone.Status != http.StatusNotFound || get(gone.json(t), "error", "type") != "invalid_request_error" {
		t.Errorf("expired url: %d %s", gone.Status, gone.Body)
	}
	if r := call(t, "GET", ts.URL+"/v1/files/nope.png", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown file: %d", r.Status)
	}
}

func TestOpenAIModelsListsTheLoadedModel(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	v := call(t, "GET", ts.URL+"/v1/models", nil).json(t)
	data := v["data"].([]any)
	if v["object"] != "list" || len(data) != 1 || get(data[0].(map[string]any), "id") != "fake" {
		t.Errorf("models: %v", v)
	}
	for _, model := range []string{"fake", "dall-e-3", "gpt-image-1", ""} {
		r := call(t, "POST", ts.URL+"/v1/images/generations", map[string]any{"prompt": "a", "model": model, "size": "32x32", "response_format": "b64_json"})
		if r.Status != http.StatusOK {
			t.Errorf("model %q: %d %s", model, r.Status, r.Body)
		}
	}
}

func TestFileStoreEvictsOldestBeyondCap(t *testing.T) {
	f := newFileStore(time.Hour, 10)
	a := f.put([]byte("123456"))
	b := f.put([]byte("7890"))
	c := f.put([]byte("abc")) // 6+4+3 > 10: a goes
	for _, x := range []struct {
		name string
		ok   bool
	}{{a, false}, {b, true}, {c, true}} {
		if _, ok := f.get(x.name); ok != x.ok {
			t.Errorf("file %s present=%v, want %v", x.name, ok, x.ok)
		}
	}
	if f.size != 7 {
		t.Errorf("size %d, want 7", f.size)
	}
}
