package app

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// sourcePNG is a 64x64 test picture: a colour gradient, so that any pixel
// that changes is seen.
func sourcePNG(t *testing.T) (*image.RGBA, string) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), uint8(255 - 2*x - 2*y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return img, base64.StdEncoding.EncodeToString(buf.Bytes())
}

// dropJS drops a PNG (base64 in %q) on the page's drop zone, as a file
// dragged from the desktop arrives.
const dropJS = `(() => {
	const bytes = Uint8Array.from(atob(%q), c => c.charCodeAt(0));
	const dt = new DataTransfer();
	dt.items.add(new File([bytes], "source.png", {type: "image/png"}));
	document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
	return true;
})()`

// resultPNG downloads the newest gallery image through its link.
func resultPNG(t *testing.T, ctx context.Context) (image.Image, string) {
	t.Helper()
	b64, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const buf = new Uint8Array(await (await fetch(document.querySelector(".result a.download").href)).arrayBuffer());
		let s = "";
		for (const b of buf) s += String.fromCharCode(b);
		return btoa(s);
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("downloading the result: %v", err)
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return pngBytes(t, data)
}

// TestBrowserImg2ImgAndInpaint: a PNG dropped on the page is the source of
// img2img (the result carries its denoising strength); then in inpaint
// mode the test draws a horizontal brush stroke with the mouse, and the
// result keeps every pixel farther from the stroke than the brush radius
// plus the mask blur exactly as it was, while the stroke's middle changes.
func TestBrowserImg2ImgAndInpaint(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	ctx, pageErrors := browser(t)
	src, srcB64 := sourcePNG(t)
	step, cancelStep := context.WithTimeout(ctx, 120*time.Second) // the first img2img compiles the encoder: minutes on a loaded machine
	defer cancelStep()
	err := chromedp.Do(step,
		chromedp.EmulateViewport(1200, 900),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		clickCenter(`input[name="mode"][value="img2img"]`),
		void(chromedp.Poll[bool](`!document.getElementById("source").hidden`)), // (WaitVisible misses an element that was hidden when first looked at)
		void(chromedp.Evaluate[bool](fmt.Sprintf(dropJS, srcB64))),
		void(chromedp.Poll[bool](`sourceLoaded`)),
		chromedp.SendKeys("#prompt", "a painting"),
		chromedp.SetValue("#steps", "2"),
		chromedp.SetValue("#strength", "0.5"),
		clickCenter("#generate"),
		chromedp.WaitVisible(".result img"),
	)
	if err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | source loaded: " + sourceLoaded + " | mode " + mode()`))
		t.Fatalf("img2img: %v (page status %q)", err, st)
	}
	img, params := resultPNG(t, ctx)
	if img.Bounds().Size() != image.Pt(64, 64) || !strings.Contains(params, "Denoising strength: 0.5") {
		t.Errorf("img2img result %v with parameters %q, want 64x64 with Denoising strength: 0.5", img.Bounds(), params)
	}
	screenshot(t, ctx, "img2img-desktop")

	// Inpaint: a stroke of brush 12 along y=32 from x=16 to x=48 (image
	// pixels; the canvas is shown at its own size or smaller).
	const brush, blur, y0, x0, x1 = 12, 4, 32, 16, 48
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		document.querySelector('input[name="mode"][value="inpaint"]').click();
		const mc = document.getElementById("maskcanvas");
		mc.scrollIntoView({block: "center"});
		const r = mc.getBoundingClientRect();
		return [r.left, r.top, r.width / 64];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	px := func(x, y float64) (float64, float64) { return box[0] + x*box[2], box[1] + y*box[2] }
	ax, ay := px(x0, y0)
	bx, by := px(x1, y0)
	err = chromedp.Do(ctx,
		chromedp.SetValue("#brush", fmt.Sprint(brush)),
		chromedp.SetValue("#maskblur", fmt.Sprint(blur)),
		chromedp.SetValue("#strength", "1"),
		chromedp.MouseEvent(chromedp.MousePressed, ax, ay, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, (ax+bx)/2, ay, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, bx, by, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, bx, by, chromedp.ButtonLeft),
		void(chromedp.Evaluate[bool](`document.getElementById("gallery").replaceChildren(), true`)),
		clickCenter("#generate"),
		chromedp.WaitVisible(".result img"),
	)
	if err != nil {
		t.Fatalf("inpaint: %v", err)
	}
	screenshot(t, ctx, "inpaint-desktop")
	out, params := resultPNG(t, ctx)
	if !strings.Contains(params, "Mask blur: 4") {
		t.Errorf("inpaint parameters %q lack Mask blur: 4", params)
	}
	// Distance from the stroke's segment; beyond radius + 3σ of the blur
	// (σ = blur/2) the mask is 0 and the pixel is the source's.
	dist := func(x, y int) float64 {
		cx := math.Max(x0, math.Min(x1, float64(x)+0.5))
		return math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-y0)
	}
	keep := float64(brush)/2 + 1.5*blur + 1
	var kept, changedInside, inside int
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			r0, g0, b0, _ := src.At(x, y).RGBA()
			r1, g1, b1, _ := out.At(x, y).RGBA()
			same := r0 == r1 && g0 == g1 && b0 == b1
			switch d := dist(x, y); {
			case d > keep:
				if !same {
					t.Errorf("pixel (%d,%d), %.1f px from the stroke, changed: %v -> %v", x, y, d, src.At(x, y), out.At(x, y))
				} else {
					kept++
				}
			case d < float64(brush)/2-1:
				inside++
				if !same {
					changedInside++
				}
			}
		}
	}
	t.Logf("inpaint: %d pixels beyond %.0f px of the stroke kept exactly; %d of %d inside it changed", kept, keep, changedInside, inside)
	if kept == 0 || changedInside < inside/2 {
		t.Errorf("%d pixels kept outside the stroke; %d of %d inside it changed: want most of them", kept, changedInside, inside)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}

// TestBrowserPNGInfoDropFillsTheForm: a PNG made by ldm, dropped on the
// page, has its parameters read through /sdapi/v1/png-info and put in the
// form (prompt, negative prompt, steps, CFG, seed, size, sampler).
func TestBrowserPNGInfoDropFillsTheForm(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	r := call(t, "POST", ts.URL+"/api/v1/generate", `{"prompt":"a castle at dusk","negative_prompt":"fog","width":64,"height":64,"steps":2,"guidance_scale":5,"seed":4242,"sampler":"Euler a"}`)
	if r.Status != http.StatusOK {
		t.Fatalf("generate: %d %s", r.Status, r.Body)
	}
	png := call(t, "GET", ts.URL+r.json(t)["images"].([]any)[0].(map[string]any)["url"].(string), nil)
	if png.Status != http.StatusOK {
		t.Fatalf("image: %d", png.Status)
	}
	ctx, pageErrors := browser(t)
	drop := strings.Replace(dropJS, `document.getElementById("drop")`, `document.body`, 1)
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		void(chromedp.Evaluate[bool](fmt.Sprintf(drop, base64.StdEncoding.EncodeToString(png.Body)))),
		void(chromedp.Poll[bool](`document.getElementById("status").textContent === "parameters read from the image"`)),
	)
	if err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Text("#status"))
		t.Fatalf("dropping the PNG: %v (status %q)", err, st)
	}
	form, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`["prompt", "negative", "steps", "guidance", "seed", "width", "height", "sampler"].map(id => document.getElementById(id).value)`))
	if want := "a castle at dusk|fog|2|5|4242|64|64|Euler a"; err != nil || strings.Join(form, "|") != want {
		t.Errorf("form after the drop %q (%v), want %q", strings.Join(form, "|"), err, want)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}

// TestEveryModeFitsAPhoneAndPassesAxe: in each mode, with a source image
// loaded, no element reaches past a 390 px viewport, and axe-core finds no
// serious or critical violation (light and dark) at desktop width.
func TestEveryModeFitsAPhoneAndPassesAxe(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	ctx, pageErrors := browser(t)
	_, srcB64 := sourcePNG(t)
	for _, width := range []int64{390, 1200} {
		for _, m := range []string{"txt2img", "img2img", "inpaint"} {
			err := chromedp.Do(ctx,
				chromedp.EmulateViewport(width, 900),
				colorScheme("light"),
				chromedp.Navigate(ts.URL+"/"),
				chromedp.WaitReady(`#sampler option[value="Euler a"]`),
				void(chromedp.Evaluate[bool](`setMode(`+fmt.Sprintf("%q", m)+`), true`)),
				void(chromedp.Evaluate[bool](fmt.Sprintf(dropJS, srcB64))),
				void(chromedp.Poll[bool](`sourceLoaded`)),
			)
			if err != nil {
				t.Fatalf("%s at %d px: %v", m, width, err)
			}
			o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](overflowJS))
			if err != nil {
				t.Fatal(err)
			}
			if o.Width > int(width) || o.Scroll > o.Width || len(o.Over) > 0 {
				t.Errorf("%s at %d px: page %d px wide; past the edge: %q", m, width, o.Scroll, o.Over)
			}
			kind := map[bool]string{true: "phone", false: "desktop"}[width < 700]
			screenshot(t, ctx, m+"-mode-"+kind)
			if width < 700 {
				continue
			}
			for _, scheme := range []string{"light", "dark"} {
				if err := chromedp.Do(ctx, colorScheme(scheme)); err != nil {
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
						t.Errorf("%s, %s: axe %s violation %s (%s), %d nodes", m, scheme, v.Impact, v.ID, v.Help, len(v.Nodes))
					}
				}
			}
		}
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}
