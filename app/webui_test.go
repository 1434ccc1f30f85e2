package app

import (
	"context"
	_ "embed"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeJS is axe-core, vendored unmodified (MPL-2.0, see testdata/axe-core).
//
//go:embed testdata/axe-core/axe.min.js
var axeJS string

// void drops an action's value, so that it fits chromedp.Do.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := a(ctx, t)
		return err
	})
}

// colorScheme emulates prefers-color-scheme ("light" or "dark").
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

// screenshot writes a PNG of the page to $LDM_SCREENSHOTS/name.png when
// that variable names a folder (CI keeps it); otherwise it does nothing.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LDM_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Error(err)
	}
}

// overflowJS lists the elements whose box reaches past the viewport's right
// edge, and the document's scroll width.
const overflowJS = `(() => {
	const w = document.documentElement.clientWidth, out = [];
	for (const el of document.querySelectorAll("body *")) {
		const r = el.getBoundingClientRect();
		if (r.width > 0 && (r.right > w + 0.5 || r.left < -0.5)) out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " + Math.round(r.left) + ".." + Math.round(r.right));
	}
	return {width: w, scroll: document.documentElement.scrollWidth, over: out};
})()`

type overflow struct {
	Width  int      `json:"width"`
	Scroll int      `json:"scroll"`
	Over   []string `json:"over"`
}

// TestPageFitsAPhone: at 390 and 360 px no element reaches past the
// viewport (no horizontal scroll), before and after an image is generated
// with Ctrl+Enter from the prompt.
func TestPageFitsAPhone(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	ctx, pageErrors := browser(t)
	for _, w := range []int64{390, 360} {
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(w, 800),
			chromedp.Navigate(ts.URL+"/"),
			chromedp.WaitVisible("#prompt"),
			chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		)
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](overflowJS))
			if err != nil {
				t.Fatal(err)
			}
			if o.Width > int(w) || o.Scroll > o.Width || len(o.Over) > 0 {
				t.Errorf("at %d px %s: viewport %d, page %d px wide; past the edge: %q", w, when, o.Width, o.Scroll, o.Over)
			}
		}
		check("empty")
		err = chromedp.Do(ctx,
			chromedp.SendKeys("#prompt", "a very long prompt without spaces "+strings.Repeat("x", 200)),
			chromedp.SendKeys("#width", "64"), chromedp.SendKeys("#height", "64"), chromedp.SendKeys("#steps", "1"),
			chromedp.Focus("#prompt"),
			chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
			chromedp.WaitVisible(".result img"),
		)
		if err != nil {
			t.Fatalf("Ctrl+Enter did not generate: %v", err)
		}
		check("with a result")
		if w == 390 {
			screenshot(t, ctx, "txt2img-phone")
		}
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}

type axeResult struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

// TestPageAccessibility runs axe-core in the page, light and dark, and
// fails on any serious or critical violation (contrast, labels, names,
// landmarks...). It also checks what axe cannot see: typed text has AA
// contrast against its field and is darker (lighter in dark mode) than
// the placeholder, and every form control has a label.
func TestPageAccessibility(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	ctx, pageErrors := browser(t)
	for _, scheme := range []string{"light", "dark"} {
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(1200, 900),
			colorScheme(scheme),
			chromedp.Navigate(ts.URL+"/"),
			chromedp.WaitReady(`#sampler option[value="Euler a"]`),
			chromedp.SendKeys("#prompt", "typed text"),
		)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axeJS+";true")); err != nil {
			t.Fatalf("injecting axe-core: %v", err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("running axe-core: %v", err)
		}
		var vs []axeResult
		if err := json.Unmarshal([]byte(raw), &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Impact == "serious" || v.Impact == "critical" {
				var where []string
				for _, n := range v.Nodes {
					where = append(where, n.HTML)
				}
				t.Errorf("%s: axe %s violation %s (%s) at %q", scheme, v.Impact, v.ID, v.Help, where)
			}
		}
		c, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](contrastJS))
		if err != nil {
			t.Fatal(err)
		}
		text, placeholder := c[0], c[1]
		if text < 4.5 || placeholder < 4.5 || text <= placeholder {
			t.Errorf("%s: typed text contrast %.2f, placeholder %.2f: want both >= 4.5 and the text above the placeholder", scheme, text, placeholder)
		}
		unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input, select, textarea, button")]
			.filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !(el.tagName === "BUTTON" && el.textContent.trim()))
			.map(el => el.outerHTML)`))
		if err != nil {
			t.Fatal(err)
		}
		if len(unlabelled) > 0 {
			t.Errorf("%s: controls without a label: %q", scheme, unlabelled)
		}
		screenshot(t, ctx, "txt2img-desktop-"+scheme)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}

// contrastJS returns the WCAG contrast ratios of the prompt's typed text
// and of its placeholder against the field's background.
const contrastJS = `(() => {
	const rgb = (s) => s.match(/[\d.]+/g).map(Number);
	const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
		.reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
	const ratio = (a, b) => { const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
	const el = document.getElementById("prompt"), cs = getComputedStyle(el);
	let bg = cs.backgroundColor;
	for (let e = el; rgb(bg).length === 4 && rgb(bg)[3] === 0 && e; e = e.parentElement) bg = getComputedStyle(e).backgroundColor;
	return [ratio(cs.color, bg), ratio(getComputedStyle(el, "::placeholder").color, bg)];
})()`

// TestBrowserHistorySurvivesReloadAndRestart: an image generated on the
// page is listed again after a reload and by a new server on the same
// outputs folder; "use these settings" fills the form with its
// parameters, and "delete" removes it from the server.
func TestBrowserHistorySurvivesReloadAndRestart(t *testing.T) {
	dir := t.TempDir()
	_, ts := testServer(t, fake(), Config{Outputs: dir})
	ctx, pageErrors := browser(t)
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		chromedp.SendKeys("#prompt", "kept across restarts"),
		chromedp.SendKeys("#width", "64"), chromedp.SendKeys("#height", "64"), chromedp.SendKeys("#steps", "3"),
		chromedp.SendKeys("#seed", "77"),
		clickCenter("#generate"),
		chromedp.WaitVisible(`.result[data-id] img`),
	)
	if err != nil {
		t.Fatalf("generating: %v", err)
	}
	gallery := func(when string) []string {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".result")].map(f => f.dataset.seed + "|" + f.querySelector("pre.params").textContent + "|" + f.querySelector("img").naturalWidth)`))
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		return got
	}
	want := "77|kept across restarts\nSteps: 3, Seed: 77|64"
	if g := gallery("after generating"); len(g) != 1 || g[0] != want {
		t.Fatalf("gallery after generating %q, want [%q]", g, want)
	}
	for _, step := range []struct {
		name string
		url  string
	}{{"reload", ts.URL}, {"restart", ""}} {
		if step.url == "" {
			_, ts2 := testServer(t, fake(), Config{Outputs: dir})
			step.url = ts2.URL
		}
		err := chromedp.Do(ctx, chromedp.Navigate(step.url+"/"), chromedp.WaitVisible(`.result[data-id] img`),
			void(chromedp.Poll[bool](`document.querySelector(".result img").naturalWidth > 0`)))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if g := gallery(step.name); len(g) != 1 || g[0] != want {
			t.Errorf("gallery after a %s %q, want [%q]", step.name, g, want)
		}
		if step.name == "restart" {
			screenshot(t, ctx, "history-desktop")
		}
	}
	form, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		document.querySelector(".result button.use").click();
		return ["prompt", "width", "steps", "seed"].map(id => document.getElementById(id).value);
	})()`))
	if err != nil || strings.Join(form, "|") != "kept across restarts|64|3|77" {
		t.Errorf("use these settings filled %q (%v), want the entry's prompt, width, steps, seed", form, err)
	}
	err = chromedp.Do(ctx, void(chromedp.Evaluate[bool](`document.querySelector(".result button.delete").click(), true`)),
		void(chromedp.Poll[bool](`document.querySelectorAll(".result").length === 0`)))
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Errorf("after delete the outputs folder holds %q", files)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}
