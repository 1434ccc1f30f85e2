package app

import (
	"context"
	"encoding/base64"
	"image"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestPageIsSelfContained(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	r := call(t, "GET", ts.URL+"/", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	page := string(r.Body)
	for _, id := range []string{"prompt", "negative", "width", "height", "steps", "guidance", "sampler", "seed", "generate", "preview", "bar", "gallery"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("the page has no #%s", id)
		}
	}
	// No external assets: every src/href/url() is relative or data:/blob:.
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import`)
	if m := ext.FindString(page); m != "" {
		t.Errorf("the page loads an external asset: %q", m)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

// clickCenter sends a real mouse click to the middle of the element.
// (chromedp.Click waits forever with Chromium 156 in headless mode; a click
// at the element's coordinates is the same input event.)
func clickCenter(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := chromedp.ScrollIntoView(sel)(ctx, t); err != nil {
			return err
		}
		box, err := chromedp.Dimensions(sel)(ctx, t)
		if err != nil {
			return err
		}
		q := box.Content // x1,y1 … x4,y4
		x, y := (q[0]+q[2]+q[4]+q[6])/4, (q[1]+q[3]+q[5]+q[7])/4
		_, err = chromedp.MouseClickXY(x, y)(ctx, t)
		return err
	})
}

// chromium finds a Chromium or Chrome binary.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the test (skipping when none is
// installed) and returns a context with a deadline and a function that
// reports what the page logged as errors.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium binary found (Debian: apt-get install -y chromium): skipping the browser test")
	}
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
	b, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(b); err != nil { // start the browser without a deadline
		t.Skipf("chromium at %s does not start: %v", bin, err)
	}
	var (
		mu     sync.Mutex
		errors []string
	)
	go func() {
		for msg, err := range chromedp.Console(b) {
			if err != nil {
				return
			}
			if msg.IsException() || msg.Type == "error" {
				mu.Lock()
				errors = append(errors, msg.String())
				mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(b, 90*time.Second)
	t.Cleanup(cancel)
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errors...)
	}
}

// TestBrowserGeneratesAnImage drives the page in a real headless Chromium:
// type a prompt, set the size, click Generate, wait for the gallery, then
// download the image through the page's own link and check it is a PNG of
// the requested size with its parameters.
func TestBrowserGeneratesAnImage(t *testing.T) {
	m := tinyModel(t)
	_, ts := testServer(t, m, Config{})
	ctx, pageErrors := browser(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible("#prompt"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`), // samplers loaded from the API
		chromedp.SendKeys("#prompt", "a lighthouse on a cliff"),
		chromedp.SendKeys("#width", "64"),
		chromedp.SendKeys("#height", "64"),
		chromedp.SendKeys("#steps", "2"),
		chromedp.SetValue("#sampler", "Euler a"),
		clickCenter("#generate"),
		chromedp.WaitVisible(".result img"),
	)
	if err != nil {
		t.Fatalf("driving the page: %v", err)
	}
	// Download through the page's link (a blob: URL) and hand back base64.
	b64, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const a = document.querySelector(".result a.download");
		const buf = new Uint8Array(await (await fetch(a.href)).arrayBuffer());
		let s = "";
		for (const b of buf) s += String.fromCharCode(b);
		return btoa(s);
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("downloading the image: %v", err)
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, params := pngBytes(t, data)
	if img.Bounds().Size() != image.Pt(64, 64) {
		t.Errorf("downloaded image is %v, want 64x64", img.Bounds())
	}
	for _, want := range []string{"a lighthouse on a cliff\n", "Steps: 2", "Sampler: Euler a", "Size: 64x64"} {
		if !strings.Contains(params, want) {
			t.Errorf("PNG parameters %q lack %q", params, want)
		}
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(".result pre.params"))
	if err != nil || shown != params {
		t.Errorf("gallery shows %q (%v), want the PNG's parameters %q", shown, err, params)
	}
	name, err := chromedp.Run(ctx, chromedp.AttributeValue(".result a.download", "download"))
	if err != nil || !regexp.MustCompile(`^ldm-\d+\.png$`).MatchString(name.Value) {
		t.Errorf("download name %q (%v)", name.Value, err)
	}
	state, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("status").textContent,
		String(document.getElementById("bar").value), (document.getElementById("preview").getAttribute("src") || "").slice(0, 22),
		String(document.getElementById("generate").disabled)]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"done", "1", "data:image/png;base64,", "false"}; strings.Join(state, "|") != strings.Join(want, "|") {
		t.Errorf("status, progress, preview, button = %q, want %q", state, want)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}
