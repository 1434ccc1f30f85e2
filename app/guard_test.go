package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// send is call with a Host and a Content-Type of the test's choosing.
func send(t *testing.T, method, url, host, ctype, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

func TestHostHeaderIsCheckedAgainstDNSRebinding(t *testing.T) {
	_, ts := testServer(t, fake(), Config{AllowedHosts: []string{"ldm.lan"}})
	for _, c := range []struct {
		host string
		want int
	}{
		{"", http.StatusOK}, // 127.0.0.1:port
		{"localhost:7860", http.StatusOK},
		{"LOCALHOST", http.StatusOK},
		{"ui.localhost:80", http.StatusOK},
		{"[::1]:7860", http.StatusOK},
		{"192.168.1.20:7860", http.StatusOK}, // an address: no name to rebind
		{"ldm.lan:7860", http.StatusOK},
		{"attacker.example:7860", http.StatusForbidden},
		{"localhost.attacker.example", http.StatusForbidden},
		{"ldm.lan.attacker.example", http.StatusForbidden},
	} {
		r := send(t, "GET", ts.URL+"/api/v1/models", c.host, "", "")
		if r.Status != c.want {
			t.Errorf("Host %q: %d %s, want %d", c.host, r.Status, r.Body, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(string(r.Body), "--allowed-hosts") {
			t.Errorf("Host %q: the refusal does not say how to allow it: %s", c.host, r.Body)
		}
	}
}

func TestForeignOriginsAndNonJSONBodiesCannotChangeState(t *testing.T) {
	m := fake()
	f := m.Model.(*fakeModel)
	_, ts := testServer(t, m, Config{CORSOrigins: []string{"http://ui.example:3000"}, CORSOriginRegex: `https://[a-z]+\.trusted\.example`})
	body := `{"prompt":"a cat","steps":1}`
	for _, c := range []struct {
		name, origin, ctype string
		want                int
	}{
		{"no origin (curl)", "", "application/json", http.StatusOK},
		{"same origin (the page)", ts.URL, "application/json; charset=utf-8", http.StatusOK},
		{"listed origin", "http://ui.example:3000", "application/json", http.StatusOK},
		{"regex origin", "https://app.trusted.example", "application/json", http.StatusOK},
		{"regex must match whole origin", "https://app.trusted.example.evil.example", "application/json", http.StatusForbidden},
		{"foreign origin", "http://evil.example", "application/json", http.StatusForbidden},
		{"sandboxed page", "null", "application/json", http.StatusForbidden},
		{"foreign text/plain (no preflight)", "http://evil.example", "text/plain", http.StatusForbidden},
		{"text/plain", "", "text/plain", http.StatusUnsupportedMediaType},
		{"form", "", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"no content type", "", "", http.StatusUnsupportedMediaType},
	} {
		before := f.calls.Load()
		var hdr []string
		if c.origin != "" {
			hdr = []string{"Origin", c.origin}
		}
		r := send(t, "POST", ts.URL+"/api/v1/generate", "", c.ctype, body, hdr...)
		if r.Status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.want)
		}
		if ran := f.calls.Load() - before; (c.want == http.StatusOK) != (ran == 1) {
			t.Errorf("%s: the model ran %d times", c.name, ran)
		}
	}
	// Every state-changing family is covered by the same check.
	for _, p := range []string{"/sdapi/v1/txt2img", "/sdapi/v1/options", "/sdapi/v1/interrupt", "/v1/images/generations", "/api/v1/jobs"} {
		if r := send(t, "POST", ts.URL+p, "", "text/plain", body, "Origin", "http://evil.example"); r.Status != http.StatusForbidden {
			t.Errorf("POST %s from a foreign origin: %d", p, r.Status)
		}
	}
	if r := send(t, "DELETE", ts.URL+"/api/v1/jobs/x", "", "", "", "Origin", "http://evil.example"); r.Status != http.StatusForbidden {
		t.Errorf("DELETE from a foreign origin: %d", r.Status)
	}
}

func TestCORSPreflightAndAllowOriginOnEveryAnswer(t *testing.T) {
	const ui = "http://ui.example:3000"
	_, ts := testServer(t, fake(), Config{APIKey: "k", CORSOrigins: []string{ui}})
	pre := send(t, "OPTIONS", ts.URL+"/api/v1/generate", "", "", "", "Origin", ui,
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,authorization")
	if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != ui ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") ||
		!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Errorf("preflight: %d %v", pre.Status, pre.Header)
	}
	if r := send(t, "OPTIONS", ts.URL+"/api/v1/generate", "", "", "", "Origin", "http://evil.example",
		"Access-Control-Request-Method", "POST"); r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a foreign origin: %d %v", r.Status, r.Header)
	}
	auth := []string{"Origin", ui, "Authorization", "Bearer k"}
	for _, c := range []struct {
		name, method, path, body string
		header                   []string
		want                     int
	}{
		{"success", "POST", "/api/v1/generate", `{"prompt":"a","steps":1}`, auth, http.StatusOK},
		{"validation error", "POST", "/api/v1/generate", `{"prompt":"a","steps":-3}`, auth, http.StatusBadRequest},
		{"auth error", "POST", "/api/v1/generate", `{"prompt":"a"}`, []string{"Origin", ui}, http.StatusUnauthorized},
		{"not found", "GET", "/nope", "", auth, http.StatusNotFound},
		{"A1111 listing", "GET", "/sdapi/v1/sd-models", "", auth, http.StatusOK},
		{"OpenAI error", "POST", "/v1/images/generations", `{"prompt":"a","size":"x"}`, auth, http.StatusBadRequest},
	} {
		ctype := ""
		if c.body != "" {
			ctype = "application/json"
		}
		r := send(t, c.method, ts.URL+c.path, "", ctype, c.body, c.header...)
		if r.Status != c.want || r.Header.Get("Access-Control-Allow-Origin") != ui {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q; want %d and %q", c.name, r.Status, r.Header.Get("Access-Control-Allow-Origin"), c.want, ui)
		}
	}
	if r := send(t, "GET", ts.URL+"/healthz", "", "", "", "Origin", "http://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a foreign origin got Access-Control-Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestBrowserCrossOriginClient runs a page served on one loopback origin
// that calls the API on another, in a real headless Chromium: with the
// page's origin allowed, it generates (through a preflight, as it sends
// Authorization) and reads the server's error messages; without, the
// browser's request never runs a job, even as a text/plain POST that needs
// no preflight.
func TestBrowserCrossOriginClient(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium binary found (Debian: apt-get install -y chromium): skipping the browser test")
	}
	page, pageURL := pageServer(t)
	_ = page
	allowedModel := fake()
	_, allowed := testServer(t, allowedModel, Config{APIKey: "k", CORSOrigins: []string{pageURL}})
	closedModel := fake()
	_, closed := testServer(t, closedModel, Config{})
	// The API under another loopback name, so the origins differ in host as well as port.
	allowedAPI := strings.Replace(allowed.URL, "127.0.0.1", "localhost", 1)
	closedAPI := strings.Replace(closed.URL, "127.0.0.1", "localhost", 1)

	ctx := browserContext(t, bin)
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	run := func(js string) string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return out
	}
	got := run(`(async () => {
		const r = await fetch("` + allowedAPI + `/api/v1/generate", {method: "POST",
			headers: {"Content-Type": "application/json", "Authorization": "Bearer k"},
			body: JSON.stringify({prompt: "a lighthouse", steps: 1})});
		const j = await r.json();
		return r.status + " " + j.state + " " + j.images.length;
	})()`)
	if got != "200 succeeded 1" {
		t.Errorf("allowed origin, generate: %q, want \"200 succeeded 1\"", got)
	}
	got = run(`(async () => {
		const r = await fetch("` + allowedAPI + `/api/v1/generate", {method: "POST",
			headers: {"Content-Type": "application/json", "Authorization": "Bearer k"},
			body: JSON.stringify({prompt: "a lighthouse", steps: 0.5})});
		const j = await r.json();
		return r.status + " " + j.field;
	})()`)
	if got != "400 steps" {
		t.Errorf("allowed origin, bad request: the page read %q, want \"400 steps\"", got)
	}
	got = run(`(async () => {
		const r = await fetch("` + allowedAPI + `/api/v1/models");
		return r.status + " " + r.headers.get("WWW-Authenticate");
	})()`)
	if !strings.HasPrefix(got, "401 Bearer") {
		t.Errorf("allowed origin, no key: the page read %q, want a 401 with WWW-Authenticate", got)
	}
	got = run(`(async () => {
		try {
			await fetch("` + closedAPI + `/api/v1/generate", {method: "POST", headers: {"Content-Type": "text/plain"},
				body: JSON.stringify({prompt: "a lighthouse", steps: 1})});
			return "read";
		} catch (e) { return "blocked"; }
	})()`)
	if got != "blocked" {
		t.Errorf("foreign origin, text/plain: %q", got)
	}
	got = run(`(async () => {
		try {
			await fetch("` + closedAPI + `/api/v1/generate", {method: "POST", headers: {"Content-Type": "application/json"},
				body: JSON.stringify({prompt: "a lighthouse", steps: 1})});
			return "read";
		} catch (e) { return "blocked"; }
	})()`)
	if got != "blocked" {
		t.Errorf("foreign origin, JSON: %q", got)
	}
	if n := closedModel.Model.(*fakeModel).calls.Load(); n != 0 {
		t.Errorf("a foreign page's requests ran %d jobs", n)
	}
	if n := allowedModel.Model.(*fakeModel).calls.Load(); n != 1 {
		t.Errorf("the allowed page's request ran %d jobs, want 1", n)
	}
}

// pageServer serves an empty page on loopback; it returns the page's URL
// and origin.
func pageServer(t *testing.T) (string, string) {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<!doctype html><title>another origin</title><p>a web UI")
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/", ts.URL
}

// browserContext starts a headless Chromium for the test.
func browserContext(t *testing.T, bin string) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Skipf("chromium at %s does not start: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
