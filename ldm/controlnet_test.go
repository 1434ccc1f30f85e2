package ldm

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/controltest"
	"github.com/ldm-project/ldm/internal/golden"
)

// tinyControlNet is the golden ControlNet for the tiny model (a diffusers
// folder) and its control image.
func tinyControlNet(t *testing.T) (string, image.Image) {
	t.Helper()
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "controlnet" {
			return c.Path("model"), readPNG(t, c.Path("control_image"))
		}
	}
	t.Skip("the golden manifest has no controlnet case")
	return "", nil
}

func TestControlNetUnitsAreValidated(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	ok := NewControlNetUnit()
	ok.Model, ok.Image = "canny", img
	noPaths := DefaultLimits
	noPaths.LoRAPaths = false
	for _, c := range []struct {
		edit   func(*ControlNetUnit)
		limits Limits
		want   string
	}{
		{func(u *ControlNetUnit) {}, DefaultLimits, ""},
		{func(u *ControlNetUnit) { u.Model = "" }, DefaultLimits, "exactly one of model"},
		{func(u *ControlNetUnit) { u.Path = "/x.safetensors" }, DefaultLimits, "exactly one of model"},
		{func(u *ControlNetUnit) { u.Model, u.Path = "", "/x.safetensors" }, noPaths, "not by path"},
		{func(u *ControlNetUnit) { u.Model = "../x" }, DefaultLimits, "path separator"},
		{func(u *ControlNetUnit) { u.Image = nil }, DefaultLimits, "no control image"},
		{func(u *ControlNetUnit) { u.Weight = math.NaN() }, DefaultLimits, "weight"},
		{func(u *ControlNetUnit) { u.Weight = 3 }, DefaultLimits, "between 0 and 2"},
		{func(u *ControlNetUnit) { u.GuidanceStart = 0.8; u.GuidanceEnd = 0.2 }, DefaultLimits, "start ≤ end"},
		{func(u *ControlNetUnit) { u.GuidanceEnd = 1.5 }, DefaultLimits, "start ≤ end"},
		{func(u *ControlNetUnit) { u.ControlMode = "loud" }, DefaultLimits, "control mode"},
		{func(u *ControlNetUnit) { u.ControlMode = "ControlNet is more important" }, DefaultLimits, ""},
		{func(u *ControlNetUnit) { u.ResizeMode = "zoom" }, DefaultLimits, "resize mode"},
		{func(u *ControlNetUnit) { u.ResizeMode = "Resize and Fill" }, DefaultLimits, ""},
		{func(u *ControlNetUnit) { u.Module = "openpose" }, DefaultLimits, "not available"},
	} {
		u := ok
		c.edit(&u)
		req := quick()
		req.ControlNets = []ControlNetUnit{u}
		req.Defaults(64)
		err := req.Validate(c.limits, 8)
		field, _ := IsFieldError(err)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", u, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || field != "controlnets"):
			t.Errorf("%+v: error %v (field %q), want one in controlnets saying %q", u, err, field, c.want)
		}
	}
}

// latentsOf runs a request and returns its final latents.
func latentsOf(t *testing.T, p *Pipeline, req Request) []float32 {
	t.Helper()
	var last []float32
	if _, err := p.Generate(context.Background(), req, Options{onStep: func(_ int, x []float32) { last = append(last[:0], x...) }}); err != nil {
		t.Fatal(err)
	}
	return last
}

// The knobs of a unit do what they say: weight 0 and an empty guidance
// window change nothing; two units add their residuals (two at 0.4 give one
// at 0.8); the guidance window, the control modes and the weight each
// change the result; a ControlNet by name is found in the folder.
func TestControlNetUnitsCombineAndScale(t *testing.T) {
	p := loadTiny(t)
	dir, img := tinyControlNet(t)
	base := quick()
	base.Sampler, base.Steps = "DDIM", 4
	plain := latentsOf(t, p, base)
	with := func(units ...func(*ControlNetUnit)) []float32 {
		req := base
		for _, edit := range units {
			u := NewControlNetUnit()
			u.Path, u.Image = dir, img
			edit(&u)
			req.ControlNets = append(req.ControlNets, u)
		}
		return latentsOf(t, p, req)
	}
	diff := func(a, b []float32) float64 { d, _ := golden.MaxAbsDiff(a, b); return d }
	if d := diff(with(func(u *ControlNetUnit) { u.Weight = 0 }), plain); d != 0 {
		t.Errorf("weight 0 changes the latents by %g", d)
	}
	if d := diff(with(func(u *ControlNetUnit) { u.GuidanceEnd = 0 }), plain); d != 0 {
		t.Errorf("an empty guidance window changes the latents by %g", d)
	}
	one := with(func(u *ControlNetUnit) { u.Weight = 0.8 })
	if d := diff(one, plain); d < 1e-2 {
		t.Fatalf("a ControlNet at 0.8 changes the latents by only %g", d)
	}
	two := with(func(u *ControlNetUnit) { u.Weight = 0.4 }, func(u *ControlNetUnit) { u.Weight = 0.4 })
	if d := diff(two, one); d > 1e-4 {
		t.Errorf("two units at 0.4 differ from one at 0.8 by %g", d)
	}
	for name, edit := range map[string]func(*ControlNetUnit){
		"guidance_end 0.5":   func(u *ControlNetUnit) { u.Weight, u.GuidanceEnd = 0.8, 0.5 },
		"guidance_start 0.5": func(u *ControlNetUnit) { u.Weight, u.GuidanceStart = 0.8, 0.5 },
		"prompt mode":        func(u *ControlNetUnit) { u.Weight, u.ControlMode = 0.8, ControlPrompt },
		"control mode":       func(u *ControlNetUnit) { u.Weight, u.ControlMode = 0.8, ControlControl },
	} {
		got := with(edit)
		if diff(got, one) < 1e-3 || diff(got, plain) < 1e-3 {
			t.Errorf("%s: differs from the full unit by %g and from none by %g; want both", name, diff(got, one), diff(got, plain))
		}
	}

	p.ControlNetDir = filepath.Dir(dir)
	name := filepath.Base(dir)
	req := base
	u := NewControlNetUnit()
	u.Model, u.Image, u.Weight = name+" [abcdef12]", img, 0.8
	req.ControlNets = []ControlNetUnit{u}
	if d := diff(latentsOf(t, p, req), one); d != 0 {
		t.Errorf("the ControlNet by name differs from it by path by %g", d)
	}
	u.Model = "nosuch"
	req.ControlNets = []ControlNetUnit{u}
	_, err := p.Generate(context.Background(), req, Options{})
	if field, _ := IsFieldError(err); err == nil || field != "controlnets" || !strings.Contains(err.Error(), name) {
		t.Errorf("unknown ControlNet: error %v (field %q), want one in controlnets listing %q", err, field, name)
	}
}

// A canny map of a shape changes the image where the shape's edges are: the
// change from the same run with a blank control map is larger in a band
// around the square's outline than away from it.
func TestControlNetCannyMapSteersTheImageToItsEdges(t *testing.T) {
	p := loadTiny(t)
	dir, _ := tinyControlNet(t)
	cn := controltest.EdgeControlNet(t, dir, 600)
	const n, lo, hi = 64, 16, 48
	req := quick()
	req.Sampler, req.Steps = "DDIM", 4
	run := func(img image.Image) *image.RGBA {
		r := req
		u := NewControlNetUnit()
		u.Path, u.Image, u.Module = cn, img, "canny"
		r.ControlNets = []ControlNetUnit{u}
		res, err := p.Generate(context.Background(), r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Image
	}
	edges := run(controltest.Square(n, lo, hi))
	blank := run(image.NewRGBA(image.Rect(0, 0, n, n)))
	near, far := controltest.EdgeChange(edges, blank, lo, hi)
	t.Logf("mean change near the edges %.2f, away from them %.2f (levels, summed over RGB)", near, far)
	if near < 3 || near < 1.5*far { // measured: 1.85× (a random 8×8-latent VAE spreads each latent widely)
		t.Errorf("the canny map changes the image by %.2f near its edges and %.2f away from them: want the change concentrated on the edges", near, far)
	}
}

func TestControlNetUnitsAreWrittenToTheInfotextAsTheExtension(t *testing.T) {
	p := loadTiny(t)
	dir, img := tinyControlNet(t)
	req := quick()
	req.Steps = 1
	u := NewControlNetUnit()
	u.Path, u.Image, u.Weight, u.Module, u.ThresholdA, u.ControlMode, u.GuidanceEnd = dir, img, 0.5, "canny", 50, ControlPrompt, 0.75
	req.ControlNets = []ControlNetUnit{u}
	res, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := res[0].Infotext.Get("ControlNet 0")
	want := "Module: canny, Model: " + filepath.Base(dir) + ", Weight: 0.5, Resize Mode: Crop and Resize, Threshold A: 50, Guidance Start: 0, Guidance End: 0.75, Control Mode: My prompt is more important"
	if got != want {
		t.Errorf("ControlNet 0 = %q\nwant %q", got, want)
	}
	if s := res[0].Infotext.String(); !strings.Contains(s, `ControlNet 0: "Module: canny, `) {
		t.Errorf("infotext %q does not quote the unit", s)
	}
}

// A ControlNet steers a 9-channel inpainting U-Net too: it reads the four
// latent channels, not the mask and masked-image ones.
func TestControlNetWithAnInpaintingUNet(t *testing.T) {
	var unetDir string
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "inpaint_txt2img" {
			unetDir = c.Path("unet")
		}
	}
	if unetDir == "" {
		t.Skip("the golden manifest has no inpaint_txt2img case")
	}
	p := loadTiny(t)
	p.UNet = loadUNet(t, unetDir, "f32")
	dir, img := tinyControlNet(t)
	req := inpaintRequest()
	plain := latentsOf(t, p, req)
	u := NewControlNetUnit()
	u.Path, u.Image, u.Weight = dir, img, 0.8
	req.ControlNets = []ControlNetUnit{u}
	if d, _ := golden.MaxAbsDiff(latentsOf(t, p, req), plain); d < 1e-3 {
		t.Errorf("the ControlNet changes the inpainting U-Net's latents by %g", d)
	}
}

// The pipeline keeps the ControlNets of the last request and at most
// keepControlNets in all, dropping the least recently used.
func TestControlNetCacheKeepsTheRecentOnes(t *testing.T) {
	p := loadTiny(t)
	dir, img := tinyControlNet(t)
	paths := []string{}
	for i := range 3 {
		d := filepath.Join(t.TempDir(), fmt.Sprintf("cn%d", i))
		for _, f := range []string{"config.json", "diffusion_pytorch_model.safetensors"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		paths = append(paths, d)
	}
	use := func(ps ...string) {
		req := quick()
		req.Steps = 1
		for _, path := range ps {
			u := NewControlNetUnit()
			u.Path, u.Image = path, img
			req.ControlNets = append(req.ControlNets, u)
		}
		if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	cached := func() []string {
		var out []string
		for path := range p.control.models {
			out = append(out, filepath.Base(path))
		}
		slices.Sort(out)
		return out
	}
	use(paths[0])
	use(paths[1])
	use(paths[2])
	if got := cached(); !slices.Equal(got, []string{"cn1", "cn2"}) {
		t.Errorf("after cn0, cn1, cn2: cached %v, want cn1 cn2", got)
	}
	use(paths[1])
	use(paths[0], paths[1], paths[2]) // a request's own ControlNets all stay
	if got := cached(); len(got) != 3 {
		t.Errorf("a request with three ControlNets: cached %v", got)
	}
	use(paths[2])
	if got := cached(); len(got) != 2 || !slices.Contains(got, "cn2") {
		t.Errorf("after cn2 alone: cached %v, want two including cn2", got)
	}
}
