package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ldm-project/ldm/app"
	"github.com/ldm-project/ldm/ldm"
)

// TestEveryFrontEndGivesTheSamePNG asks one generation through the CLI, the
// native API, the AUTOMATIC1111 route, the OpenAI route and the web page (in
// headless Chromium): the PNGs are byte-identical, infotext included. Then
// each is asked without a seed: each draws one and says which it used.
func TestEveryFrontEndGivesTheSamePNG(t *testing.T) {
	model := tinyFolder(t)
	p, err := ldm.Load(model, ldm.LoadOptions{Backend: "go"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := app.New(&app.Loaded{Model: p, Name: p.Name, Hash: p.Hash, Path: model}, app.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Shutdown(context.Background())
	})
	post := func(path string, body map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		r, err := http.Post(ts.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		data, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.StatusCode, data)
		}
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	unb64 := func(s any) []byte {
		t.Helper()
		b, err := base64.StdEncoding.DecodeString(s.(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const prompt, negative = "a red apple", "blurry"
	// One generation, as each front end spells it; seed nil: absent.
	cli := func(seed any) ([]byte, int64) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "cli.png")
		args := []string{"generate", prompt, "--negative", negative, "--model", model, "--backend", "go",
			"-W", "64", "-H", "64", "--steps", "2", "--cfg", "7", "--sampler", "Euler a", "-o", out}
		if seed != nil {
			args = append(args, "--seed", strconv.Itoa(seed.(int)))
		}
		stdout, stderr, err := runSplit(args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		m := regexp.MustCompile(`seed (\d+)`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("the CLI did not say the seed: %q", stdout)
		}
		used, _ := strconv.ParseInt(m[1], 10, 64)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b, used
	}
	with := func(body map[string]any, seed any) map[string]any {
		if seed != nil {
			body["seed"] = seed
		}
		return body
	}
	native := func(seed any) ([]byte, int64) {
		t.Helper()
		v := post("/api/v1/generate", with(map[string]any{"prompt": prompt, "negative_prompt": negative, "width": 64, "height": 64,
			"steps": 2, "guidance_scale": 7, "sampler": "Euler a"}, seed))
		im := v["images"].([]any)[0].(map[string]any)
		if echoed := v["request"].(map[string]any)["seed"]; echoed != im["seed"] {
			t.Errorf("native: the job echoes seed %v, the image has %v", echoed, im["seed"])
		}
		return unb64(im["png"]), int64(im["seed"].(float64))
	}
	a1111 := func(seed any) ([]byte, int64) {
		t.Helper()
		v := post("/sdapi/v1/txt2img", with(map[string]any{"prompt": prompt, "negative_prompt": negative, "width": 64, "height": 64,
			"steps": 2, "cfg_scale": 7, "sampler_name": "Euler a"}, seed))
		var info map[string]any
		if err := json.Unmarshal([]byte(v["info"].(string)), &info); err != nil {
			t.Fatal(err)
		}
		return unb64(v["images"].([]any)[0]), int64(info["seed"].(float64))
	}
	openai := func(seed any) ([]byte, int64) {
		t.Helper()
		v := post("/v1/images/generations", with(map[string]any{"prompt": prompt, "negative_prompt": negative, "size": "64x64",
			"steps": 2, "guidance_scale": 7, "sampler": "Euler a", "response_format": "b64_json"}, seed))
		d := v["data"].([]any)[0].(map[string]any)
		return unb64(d["b64_json"]), int64(d["seed"].(float64))
	}
	routes := []struct {
		name string
		gen  func(seed any) ([]byte, int64)
	}{{"cli", cli}, {"native", native}, {"a1111", a1111}, {"openai", openai}}
	if bin := browser(); bin != "" {
		routes = append(routes, struct {
			name string
			gen  func(seed any) ([]byte, int64)
		}{"web page", func(seed any) ([]byte, int64) { return webPage(t, bin, ts.URL, prompt, negative, seed) }})
	} else {
		t.Log("no chromium binary found (Debian: apt-get install -y chromium): the web page is left out")
	}

	want, _ := cli(1234)
	for _, r := range routes[1:] {
		got, used := r.gen(1234)
		if used != 1234 {
			t.Errorf("%s: seed %d, want 1234", r.name, used)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the PNG differs from the CLI's (%d vs %d bytes; parameters %q vs %q)", r.name, len(got), len(want), pngParams(got), pngParams(want))
		}
	}
	for _, r := range routes {
		var seeds []int64
		for range 2 {
			got, used := r.gen(nil)
			if p := pngParams(got); used < 0 || !regexp.MustCompile(`Seed: `+strconv.FormatInt(used, 10)+`,`).MatchString(p) {
				t.Errorf("%s without a seed: reported seed %d, the PNG says %q", r.name, used, p)
			}
			seeds = append(seeds, used)
		}
		if seeds[0] == seeds[1] { // two random draws of 2^32 seeds agree once in 4·10⁹
			t.Errorf("%s without a seed: seed %d twice, want a random one each time", r.name, seeds[0])
		}
	}
}

func pngParams(b []byte) string {
	text, err := ldm.ReadPNGText(bytes.NewReader(b))
	if err != nil {
		return err.Error()
	}
	return text["parameters"]
}

// browser finds a Chromium or Chrome binary.
func browser() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// webPage fills the page's form, generates and downloads the image through
// the page's own link; the seed is the one the gallery shows.
func webPage(t *testing.T, bin, url, prompt, negative string, seed any) ([]byte, int64) {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	b, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(b); err != nil {
		t.Skipf("chromium at %s does not start: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(b, 60*time.Second)
	defer cancel()
	actions := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(url + "/"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		chromedp.SendKeys("#prompt", prompt),
		chromedp.SendKeys("#negative", negative),
		chromedp.SetValue("#width", "64"), chromedp.SetValue("#height", "64"),
		chromedp.SetValue("#steps", "2"), chromedp.SetValue("#guidance", "7"),
		chromedp.SetValue("#sampler", "Euler a"),
	}
	if seed != nil {
		actions = append(actions, chromedp.SetValue("#seed", strconv.Itoa(seed.(int))))
	}
	actions = append(actions, chromedp.Evaluate[chromedp.Void](`document.getElementById("generate").click()`), chromedp.WaitVisible(".result img"))
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("driving the page: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(async () => {
		const fig = document.querySelector(".result");
		const buf = new Uint8Array(await (await fetch(fig.querySelector("a.download").href)).arrayBuffer());
		let s = "";
		for (const b of buf) s += String.fromCharCode(b);
		return [btoa(s), fig.dataset.seed];
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("downloading the image: %v", err)
	}
	data, err := base64.StdEncoding.DecodeString(got[0])
	if err != nil {
		t.Fatal(err)
	}
	used, _ := strconv.ParseInt(got[1], 10, 64)
	return data, used
}
