package app

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHistoryKeepsResultsAcrossRestarts: every generated image lands in
// the outputs folder; GET /api/v1/history pages through them newest first,
// serves each PNG with its parameters, survives a new server on the same
// folder, deletes one entry, and keeps at most OutputsMax.
func TestHistoryKeepsResultsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	_, ts := testServer(t, fake(), Config{Outputs: dir, OutputsMax: 3})
	for i := 1; i <= 2; i++ {
		r := call(t, "POST", ts.URL+"/api/v1/generate", fmt.Sprintf(`{"prompt":"p%d","width":64,"height":64,"steps":1,"seed":%d,"batch_size":%d}`, i, 10*i, i))
		if r.Status != http.StatusOK {
			t.Fatalf("generate: %d %s", r.Status, r.Body)
		}
	}
	// 1 + 2 images, newest first: p2's seeds 21, 20, then p1's 10.
	list := call(t, "GET", ts.URL+"/api/v1/history?limit=2", nil).json(t)
	items, _ := list["items"].([]any)
	if list["total"] != 3.0 || len(items) != 2 {
		t.Fatalf("history total %v with %d items, want 3 and a page of 2: %v", list["total"], len(items), list)
	}
	first := items[0].(map[string]any)
	if first["seed"] != 21.0 || !strings.HasPrefix(first["infotext"].(string), "p2\n") {
		t.Errorf("newest entry %v, want seed 21 of prompt p2", first)
	}
	if req, _ := first["request"].(map[string]any); req["prompt"] != "p2" || req["seed"] != 21.0 || req["batch_size"] != 2.0 {
		t.Errorf("entry's request %v, want prompt p2, seed 21, batch_size 2", req)
	}
	page2 := call(t, "GET", ts.URL+"/api/v1/history?offset=2&limit=2", nil).json(t)
	if it, _ := page2["items"].([]any); len(it) != 1 || it[0].(map[string]any)["seed"] != 10.0 {
		t.Errorf("second page %v, want the one image of seed 10", page2)
	}
	img := call(t, "GET", ts.URL+first["image_url"].(string), nil)
	if img.Status != http.StatusOK || img.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("image: %d %s", img.Status, img.Header.Get("Content-Type"))
	}
	if _, params := pngBytes(t, img.Body); params != first["infotext"] {
		t.Errorf("PNG parameters %q, want the entry's infotext %q", params, first["infotext"])
	}

	// A new server on the same folder lists the same entries.
	_, ts2 := testServer(t, fake(), Config{Outputs: dir, OutputsMax: 3})
	again := call(t, "GET", ts2.URL+"/api/v1/history", nil).json(t)
	if again["total"] != 3.0 || again["items"].([]any)[0].(map[string]any)["id"] != first["id"] {
		t.Errorf("after a restart: %v, want the 3 entries, newest %v", again, first["id"])
	}
	if r := call(t, "DELETE", ts2.URL+"/api/v1/history/"+first["id"].(string), nil); r.Status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := call(t, "DELETE", ts2.URL+"/api/v1/history/"+first["id"].(string), nil); r.Status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", r.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, first["id"].(string)+".png")); !os.IsNotExist(err) {
		t.Errorf("the deleted PNG is still there: %v", err)
	}
	// The cap: two more images make 4 > 3, so the oldest (seed 10) goes.
	call(t, "POST", ts2.URL+"/api/v1/generate", `{"prompt":"p3","width":64,"height":64,"steps":1,"seed":30,"batch_size":2}`)
	final := call(t, "GET", ts2.URL+"/api/v1/history", nil).json(t)
	var seeds []float64
	for _, it := range final["items"].([]any) {
		seeds = append(seeds, it.(map[string]any)["seed"].(float64))
	}
	if fmt.Sprint(seeds) != "[31 30 20]" {
		t.Errorf("seeds kept %v, want [31 30 20] (cap 3)", seeds)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 6 {
		t.Errorf("%d files in the outputs folder, want 3 PNGs + 3 JSON: %v", len(files), files)
	}
	for _, bad := range []string{"?limit=0", "?limit=201", "?offset=-1", "?offset=x"} {
		if r := call(t, "GET", ts2.URL+"/api/v1/history"+bad, nil); r.Status != http.StatusBadRequest {
			t.Errorf("GET history%s: %d, want 400", bad, r.Status)
		}
	}
	for _, id := range []string{"nope", "..%2Fetc", "20260101-000000-x"} {
		if r := call(t, "GET", ts2.URL+"/api/v1/history/"+id+"/image", nil); r.Status != http.StatusNotFound {
			t.Errorf("GET history/%s/image: %d, want 404", id, r.Status)
		}
	}
	_, off := testServer(t, fake(), Config{})
	if r := call(t, "GET", off.URL+"/api/v1/history", nil); r.Status != http.StatusOK || r.json(t)["enabled"] != false || !strings.Contains(string(r.Body), "--outputs") {
		t.Errorf("history without an outputs folder: %d %s, want enabled false and a note naming --outputs", r.Status, r.Body)
	}
	if r := call(t, "DELETE", off.URL+"/api/v1/history/20260101-000000-x", nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "--outputs") {
		t.Errorf("DELETE without an outputs folder: %d %s, want 404 naming --outputs", r.Status, r.Body)
	}
}
