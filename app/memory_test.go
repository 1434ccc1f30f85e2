package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

func TestMemoryBudgetRefusesWhatDoesNotFitNamingTheField(t *testing.T) {
	m := tinyModel(t)
	p := m.Model.(*ldm.Pipeline)
	small := ldm.Request{Prompt: "a", Width: 64, Height: 64, Steps: 1}
	small.Defaults(p.SampleSize())
	budget := p.EstimateMemory(small).Peak() * 3 / 2
	_, ts := testServer(t, m, Config{MaxMemory: budget, PreviewEvery: -1})
	for _, c := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"fits", "/api/v1/generate", `{"prompt":"a","steps":1,"width":64,"height":64}`, 200, ""},
		{"size", "/api/v1/generate", `{"prompt":"a","steps":1,"width":2048,"height":2048,"batch_size":16}`, 413, "width"},
		{"tall", "/api/v1/generate", `{"prompt":"a","steps":1,"width":64,"height":1024}`, 413, "height"},
		{"batch", "/api/v1/generate", `{"prompt":"a","steps":1,"width":64,"height":64,"batch_size":16}`, 413, "batch_size"},
		{"A1111 batch", "/sdapi/v1/txt2img", `{"prompt":"a","steps":1,"width":64,"height":64,"batch_size":16}`, 413, "batch_size"},
		{"OpenAI n", "/v1/images/generations", `{"prompt":"a","steps":1,"size":"64x64","n":16,"response_format":"b64_json"}`, 413, "n"},
		{"OpenAI size", "/v1/images/generations", `{"prompt":"a","steps":1,"size":"2048x2048"}`, 413, "size"},
	} {
		r := call(t, "POST", ts.URL+c.path, c.body)
		if r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
			continue
		}
		if c.status == 200 {
			continue
		}
		v := r.json(t)
		field, _ := v["field"].(string)
		if c.path == "/v1/images/generations" {
			field, _ = get(v, "error", "param").(string)
		}
		if field != c.field || !strings.Contains(string(r.Body), "memory budget") {
			t.Errorf("%s: %s, want field %q and the budget named", c.name, r.Body, c.field)
		}
	}
}

func TestOptionsKeepOnlyKnownKeys(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	big := strings.Repeat("x", 1<<20)
	for i := range 5 {
		body := fmt.Sprintf(`{"junk_%d":%q,"samples_format":"png","eta_noise_seed_delta":31337}`, i, big)
		if r := call(t, "POST", ts.URL+"/sdapi/v1/options", body); r.Status != http.StatusOK {
			t.Fatalf("options: %d %s", r.Status, r.Body)
		}
	}
	r := call(t, "GET", ts.URL+"/sdapi/v1/options", nil)
	if len(r.Body) > 4096 || bytes.Contains(r.Body, []byte("junk_")) {
		t.Errorf("GET options keeps unknown keys (%d bytes)", len(r.Body))
	}
	if v := r.json(t); v["eta_noise_seed_delta"] != 31337.0 || v["samples_format"] != "png" {
		t.Errorf("known options not kept: %v", v)
	}
	for _, body := range []string{`{"samples_format":"` + big + `"}`, `{"eta_noise_seed_delta":"x"}`, `{"sd_vae":7}`} {
		if r := call(t, "POST", ts.URL+"/sdapi/v1/options", body); r.Status != http.StatusBadRequest {
			t.Errorf("options %.40s: %d, want 400", body, r.Status)
		}
	}
}

// TestLoadWithAnOversizeClient runs 50 well-behaved clients on the tiny
// model and one that sends what would exhaust memory (a size and a batch
// beyond the budget, a body over the limit, 2000 LoRAs, a prompt of
// BREAKs, megabytes of options): every answer is 200, 400, 413 or 429 and
// the process's resident memory stays under the budget. 5 s, loopback.
func TestLoadWithAnOversizeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	m := tinyModel(t)
	// The budget is the process's: what it holds now (the model, earlier
	// tests' heap) and 1 GiB, which every oversize request below exceeds.
	budget := rssBytes() + 1<<30
	_, ts := testServer(t, m, Config{QueueSize: 8, PreviewEvery: -1, MaxMemory: budget, MaxBodyBytes: 4 << 20})
	good := `{"prompt":"a lighthouse","steps":2,"width":64,"height":64,"seed":-1}`
	if r := call(t, "POST", ts.URL+"/api/v1/generate", good); r.Status != http.StatusOK {
		t.Fatalf("warm-up: %d %s", r.Status, r.Body)
	}
	loras := make([]string, 2000)
	for i := range loras {
		loras[i] = `{"name":"x"}`
	}
	bad := []struct{ path, body string }{
		{"/api/v1/generate", `{"prompt":"a","steps":1,"width":512,"height":512,"batch_size":2}`},
		{"/api/v1/generate", `{"prompt":"a","steps":1,"width":2048,"height":2048,"batch_size":16}`},
		{"/sdapi/v1/txt2img", `{"prompt":"a","steps":1,"width":256,"height":256,"batch_size":16,"n_iter":100}`},
		{"/api/v1/generate", `{"prompt":"a","loras":[` + strings.Join(loras, ",") + `]}`},
		{"/api/v1/generate", `{"prompt":"` + strings.Repeat("BREAK ", 1600) + `"}`},
		{"/sdapi/v1/options", `{"junk":"` + strings.Repeat("x", 3<<20) + `"}`},
		{"/api/v1/generate", `{"prompt":"` + strings.Repeat("x", 5<<20) + `"}`},
	}
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, rssBytes())
			select {
			case <-time.After(50 * time.Millisecond):
			case <-stop:
				return
			}
		}
	}()
	var (
		mu    sync.Mutex
		codes = map[int]int{}
		ok    int
	)
	end := time.Now().Add(5 * time.Second)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(path, body string) int {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			time.Sleep(200 * time.Millisecond)
		}
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	for c := range 51 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				path, body := "/api/v1/generate", good
				if c == 50 {
					path, body = bad[i%len(bad)].path, bad[i%len(bad)].body
				}
				st := post(path, body)
				mu.Lock()
				codes[st]++
				if st == http.StatusOK && c < 50 {
					ok++
				}
				if c == 50 && st == http.StatusOK && path != "/sdapi/v1/options" {
					codes[-200]++ // an oversize request that ran
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if n := codes[-200]; n > 0 {
		t.Errorf("%d oversize requests ran", n)
	}
	delete(codes, -200)
	for code, n := range codes {
		switch code {
		case 200, 400, 413, 429:
		default:
			t.Errorf("%d answers with status %d", n, code)
		}
	}
	if ok == 0 {
		t.Error("no well-behaved request succeeded")
	}
	if peak > budget {
		t.Errorf("peak RSS %d MiB exceeds the %d MiB budget", peak>>20, budget>>20)
	}
	t.Logf("answers %v; peak RSS %d MiB (budget %d MiB)", codes, peak>>20, budget>>20)
}
