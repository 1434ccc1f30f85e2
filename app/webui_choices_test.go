package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserChoicesFromServer: the page lists the server's models (the
// loaded one selected), size presets from its native size, and its LoRAs;
// "Add to prompt" inserts <lora:name:w>, the active list edits the weight
// and removes the tag; a batch count of 2 gives two results and "reuse
// last seed" puts the first one's seed in the form.
func TestBrowserChoicesFromServer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "style_a.safetensors"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := tinyModel(t)
	_, ts := testServer(t, m, Config{LoRADir: dir})
	ctx, pageErrors := browser(t)
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 900),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(`#sampler option[value="Euler a"]`),
		chromedp.WaitReady(`#lora option[value="style_a"]`),
		chromedp.WaitReady(`#preset option:nth-child(2)`),
	)
	if err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("model").value, document.getElementById("preset").options[1].value, String(document.getElementById("loras").hidden), String(document.getElementById("embeddings").hidden)]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := m.Name + "|64x64|false|true"; strings.Join(got, "|") != want {
		t.Errorf("model, first preset, LoRAs hidden, embeddings hidden: %q, want %q", strings.Join(got, "|"), want)
	}
	o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](overflowJS))
	if err != nil || o.Scroll > o.Width || len(o.Over) > 0 {
		t.Errorf("at 390 px: page %d px wide, past the edge %q (%v)", o.Scroll, o.Over, err)
	}
	prompt := func() string {
		p, err := chromedp.Run(ctx, chromedp.Value("#prompt"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys("#prompt", "a red fox"),
		chromedp.SetValue(`#preset`, "56x72"),
		void(chromedp.Evaluate[bool](`document.getElementById("preset").dispatchEvent(new Event("change")), true`)),
		chromedp.SetValue("#loraweight", "0.8"),
		chromedp.Click("#addlora"),
	)
	if err != nil {
		t.Fatal(err)
	}
	size, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("width").value + "x" + document.getElementById("height").value`))
	if err != nil || size != "56x72" {
		t.Errorf("the 3:4 preset of a 64 px model set the size to %q (%v), want 56x72", size, err)
	}
	if p := prompt(); p != "a red fox <lora:style_a:0.8>" {
		t.Errorf("after Add: prompt %q", p)
	}
	// With the LoRA picker and an active LoRA shown: axe, light and dark.
	for _, scheme := range []string{"light", "dark"} {
		for _, v := range axeViolations(t, ctx, scheme) {
			if v.Impact == "serious" || v.Impact == "critical" {
				t.Errorf("%s: axe %s violation %s (%s), %d nodes", scheme, v.Impact, v.ID, v.Help, len(v.Nodes))
			}
		}
	}
	if o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](overflowJS)); err != nil || o.Scroll > o.Width || len(o.Over) > 0 {
		t.Errorf("at 390 px with an active LoRA: page %d px wide, past the edge %q (%v)", o.Scroll, o.Over, err)
	}
	err = chromedp.Do(ctx,
		chromedp.SetValue("#active .loraw", "0.5"),
		void(chromedp.Evaluate[bool](`document.querySelector("#active .loraw").dispatchEvent(new Event("change")), true`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if p := prompt(); p != "a red fox <lora:style_a:0.5>" {
		t.Errorf("after the weight edit: prompt %q", p)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`#active button`)); err != nil {
		t.Fatal(err)
	}
	if p := prompt(); p != "a red fox" {
		t.Errorf("after Remove: prompt %q", p)
	}
	err = chromedp.Do(ctx,
		chromedp.SetValue("#width", "32"), chromedp.SetValue("#height", "32"),
		chromedp.SendKeys("#steps", "1"),
		chromedp.SendKeys("#seed", "77"),
		chromedp.SetValue("#count", "2"),
		void(chromedp.Evaluate[bool](`document.getElementById("form").requestSubmit(), true`)),
		void(chromedp.Poll[bool](`document.querySelectorAll(".result img").length === 2 && !document.getElementById("generate").disabled`)),
		chromedp.SetValue("#seed", ""),
		chromedp.Click("#seedlast"),
	)
	if err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Text("#status"))
		bad, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(":invalid")].map(e => e.id + "=" + e.value)`))
		t.Fatalf("batch count 2: %v (status %q, invalid fields %q)", err, st, bad)
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("seed").value, ...[...document.querySelectorAll(".result")].map(f => f.dataset.seed + ":" + f.querySelector("img").naturalWidth)]`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res, "|") != "77|78:32|77:32" && strings.Join(res, "|") != "77|77:32|78:32" {
		t.Errorf("seed after reuse, results (seed:width): %q, want 77 and seeds 77, 78 at 32 px", res)
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}

// axeViolations runs axe-core in the page under the colour scheme given.
func axeViolations(t *testing.T, ctx context.Context, scheme string) []axeResult {
	t.Helper()
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
	return vs
}

// TestBrowserHiresFix: in txt2img the hires fix controls, listed
// upscalers included, send the native "hires" object: a 32 px image
// upscaled by 2 comes back 64 px with the hires parameters in its
// infotext; the controls pass axe (light, dark) and fit 390 px.
func TestBrowserHiresFix(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	ctx, pageErrors := browser(t)
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 900),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(`#hrup option[value="Lanczos"]`),
		chromedp.WaitReady(`#hrup option[value="Latent (bicubic)"]`),
		void(chromedp.Evaluate[bool](`document.getElementById("hr").click(), true`)),
		chromedp.WaitVisible("#hrscale"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"light", "dark"} {
		for _, v := range axeViolations(t, ctx, scheme) {
			if v.Impact == "serious" || v.Impact == "critical" {
				t.Errorf("%s: axe %s violation %s (%s), %d nodes", scheme, v.Impact, v.ID, v.Help, len(v.Nodes))
			}
		}
	}
	if o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](overflowJS)); err != nil || o.Scroll > o.Width || len(o.Over) > 0 {
		t.Errorf("at 390 px with hires fix open: page %d px wide, past the edge %q (%v)", o.Scroll, o.Over, err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys("#prompt", "a lighthouse"),
		chromedp.SetValue("#width", "32"), chromedp.SetValue("#height", "32"),
		chromedp.SetValue("#steps", "1"), chromedp.SetValue("#seed", "5"),
		chromedp.SetValue("#hrup", "Lanczos"), chromedp.SetValue("#hrsteps", "2"), chromedp.SetValue("#hrstrength", "0.5"),
		void(chromedp.Evaluate[bool](`document.getElementById("form").requestSubmit(), true`)),
		void(chromedp.Poll[bool](`document.querySelectorAll(".result img").length === 1 && !document.getElementById("generate").disabled`)),
	)
	if err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Text("#status"))
		t.Fatalf("hires job: %v (status %q)", err, st)
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[String(document.querySelector(".result img").naturalWidth), document.querySelector(".result .params").textContent]`))
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != "64" {
		t.Errorf("hires by 2 of 32 px: image %s px wide, want 64", res[0])
	}
	for _, want := range []string{"Hires upscale: 2", "Hires upscaler: Lanczos", "Denoising strength: 0.5"} {
		if !strings.Contains(res[1], want) {
			t.Errorf("infotext %q lacks %q", res[1], want)
		}
	}
	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %q", errs)
	}
}
