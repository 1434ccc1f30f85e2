package app

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSyncGenerateImageURLLivesUntilItsExpiry(t *testing.T) {
	const ttl = 3 * time.Second
	_, ts := testServer(t, fake(), Config{JobTTL: ttl})
	r := call(t, "POST", ts.URL+"/api/v1/generate", `{"prompt":"a cat","steps":1}`)
	v := r.json(t)
	expires, err := time.Parse(time.RFC3339Nano, v["expires"].(string))
	if err != nil {
		t.Fatalf("expires %v: %v", v["expires"], err)
	}
	finished, _ := time.Parse(time.RFC3339Nano, v["finished"].(string))
	if got := expires.Sub(finished); got != ttl {
		t.Errorf("expires %v after finishing, want the job TTL %v", got, ttl)
	}
	url := ts.URL + get(map[string]any{"i": v["images"].([]any)[0]}, "i", "url").(string)
	if g := call(t, "GET", url, nil); g.Status != http.StatusOK || g.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s right after the answer: %d", url, g.Status)
	}
	time.Sleep(time.Until(expires) - time.Second)
	if g := call(t, "GET", url, nil); g.Status != http.StatusOK {
		t.Errorf("GET %s before it expires: %d", url, g.Status)
	}
	time.Sleep(time.Until(expires) + 100*time.Millisecond)
	if g := call(t, "GET", url, nil); g.Status != http.StatusNotFound {
		t.Errorf("GET %s after it expired: %d", url, g.Status)
	}
}

func TestA1111LoRAsListsTheLoRAFolder(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"style_a.safetensors", "sub/char_b.SAFETENSORS", ".hidden/c.safetensors", "notes.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, ts := testServer(t, fake(), Config{LoRADir: dir})
	var got []map[string]any
	if err := json.Unmarshal(call(t, "GET", ts.URL+"/sdapi/v1/loras", nil).Body, &got); err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, path string }{{"char_b", filepath.Join(dir, "sub/char_b.SAFETENSORS")}, {"style_a", filepath.Join(dir, "style_a.safetensors")}}
	if len(got) != len(want) {
		t.Fatalf("loras: %v", got)
	}
	for i, w := range want {
		if got[i]["name"] != w.name || got[i]["alias"] != w.name || got[i]["path"] != w.path || got[i]["metadata"] == nil {
			t.Errorf("lora %d: %v, want name/alias %q, path %q, metadata {}", i, got[i], w.name, w.path)
		}
	}
	_, open := testServer(t, fake(), Config{})
	if r := call(t, "GET", open.URL+"/sdapi/v1/loras", nil); string(r.Body) != "[]" {
		t.Errorf("no LoRA folder: %s", r.Body)
	}
}
