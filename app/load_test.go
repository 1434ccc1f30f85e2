package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoadFiftyClients runs 50 concurrent clients against the tiny model on
// loopback, spread over the native, A1111 and OpenAI routes. Clients that
// get 429 wait Retry-After, as a well-behaved client does. Every response
// must be 200 or 429, the server must stay healthy and its RSS bounded.
// It runs 5 s with a queue of 8 by default; LDM_LOAD_SECONDS=60
// LDM_LOAD_QUEUE=16 gives the figures recorded in docs/PERFORMANCE.md;
// LDM_LOAD_BATCH sets Config.BatchJobs (1: request batching off).
func TestLoadFiftyClients(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	seconds := 5
	if v := os.Getenv("LDM_LOAD_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 600 {
			t.Fatalf("LDM_LOAD_SECONDS=%q: want 1 to 600", v)
		}
		seconds = n
	}
	const clients = 50
	steps := 4
	if v := os.Getenv("LDM_LOAD_STEPS"); v != "" {
		steps, _ = strconv.Atoi(v)
	}
	queue := 8 // keeps the default run's drain short
	if v := os.Getenv("LDM_LOAD_QUEUE"); v != "" {
		queue, _ = strconv.Atoi(v)
	}
	batch := 0 // the server's default
	if v := os.Getenv("LDM_LOAD_BATCH"); v != "" {
		batch, _ = strconv.Atoi(v)
	}
	m := tinyModel(t)
	_, ts := testServer(t, m, Config{QueueSize: queue, PreviewEvery: -1, BatchJobs: batch})
	st := strconv.Itoa(steps)
	routes := []struct{ path, body string }{
		{"/api/v1/generate", `{"prompt":"a lighthouse, load test","steps":` + st + `,"width":64,"height":64,"seed":-1}`},
		{"/sdapi/v1/txt2img", `{"prompt":"a lighthouse, load test","steps":` + st + `,"width":64,"height":64,"sampler_name":"Euler a"}`},
		{"/v1/images/generations", `{"prompt":"a lighthouse, load test","size":"64x64","response_format":"b64_json","steps":` + st + `}`},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	// Warm the graphs for this shape so the first clients do not pay for it.
	if r := call(t, "POST", ts.URL+routes[0].path, routes[0].body); r.Status != http.StatusOK {
		t.Fatalf("warm-up: %d %s", r.Status, r.Body)
	}

	baseRSS := rssBytes()
	var peakRSS int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := rssBytes(); r > peakRSS {
				peakRSS = r
			}
			select {
			case <-tick.C:
			case <-stopSampling:
				return
			}
		}
	}()

	var (
		mu        sync.Mutex
		ok        []time.Duration
		rejected  []time.Duration
		failures  = map[string]int{}
		lastReply time.Time
	)
	start := time.Now()
	end := start.Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rt := routes[c%len(routes)]
			for time.Now().Before(end) {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(context.Background(), "POST", ts.URL+rt.path, strings.NewReader(rt.body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					failures["transport: "+err.Error()]++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(t0)
				mu.Lock()
				lastReply = time.Now()
				switch resp.StatusCode {
				case http.StatusOK:
					ok = append(ok, lat)
				case http.StatusTooManyRequests:
					rejected = append(rejected, lat)
				default:
					failures[rt.path+": "+resp.Status]++
				}
				mu.Unlock()
				if resp.StatusCode == http.StatusTooManyRequests {
					wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(min(time.Duration(max(wait, 1))*time.Second, time.Until(end)))
				}
			}
		}(c)
	}
	wg.Wait()
	close(stopSampling)
	<-sampled

	elapsed := lastReply.Sub(start)
	if len(failures) > 0 {
		t.Errorf("responses other than 200 and 429: %v", failures)
	}
	if len(ok) == 0 {
		t.Fatal("no request succeeded")
	}
	if r := call(t, "GET", ts.URL+"/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("after the load: healthz %d", r.Status)
	}
	growth := peakRSS - baseRSS
	if growth > 768<<20 {
		t.Errorf("RSS grew by %d MiB under load (from %d MiB)", growth>>20, baseRSS>>20)
	}
	batches := "request batching off"
	if r := call(t, "GET", ts.URL+"/metrics", nil); r.Status == http.StatusOK {
		var sum, count float64
		for _, line := range strings.Split(string(r.Body), "\n") {
			if v, ok := strings.CutPrefix(line, "ldm_batch_jobs_sum "); ok {
				sum, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(line, "ldm_batch_jobs_count "); ok {
				count, _ = strconv.ParseFloat(v, 64)
			}
		}
		if count > 0 {
			batches = fmt.Sprintf("%.0f model batches, %.2f jobs each on average", count, sum/count)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i] < ok[j] })
	pct := func(p float64) time.Duration { return ok[min(len(ok)-1, int(p*float64(len(ok))))] }
	t.Logf("load: %d clients, queue %d, %d s (+%.1f s drain), steps %d, 64x64: %d ok, %d rejected (429); latency of 200s p50 %v p99 %v max %v; %.2f images/s; RSS %d MiB → peak %d MiB; %s",
		clients, queue, seconds, elapsed.Seconds()-float64(seconds), steps, len(ok), len(rejected),
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), ok[len(ok)-1].Round(time.Millisecond),
		float64(len(ok))/elapsed.Seconds(), baseRSS>>20, peakRSS>>20, batches)
}

// rssBytes is this process's resident set size (Linux; 0 elsewhere).
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
