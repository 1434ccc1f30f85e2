package ldm

import (
	"context"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/models"
)

// meanRGB is the mean colour of img in [0, 255].
func meanRGB(img image.Image) [3]float64 {
	b := img.Bounds()
	var s [3]float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			s[0] += float64(r >> 8)
			s[1] += float64(g >> 8)
			s[2] += float64(bl >> 8)
		}
	}
	n := float64(b.Dx() * b.Dy())
	return [3]float64{s[0] / n, s[1] / n, s[2] / n}
}

func argmax(c [3]float64) int {
	i := 0
	for k := range c {
		if c[k] > c[i] {
			i = k
		}
	}
	return i
}

func colourDist(a, b [3]float64) float64 {
	return math.Max(math.Abs(a[0]-b[0]), math.Max(math.Abs(a[1]-b[1]), math.Abs(a[2]-b[2])))
}

// TestPreviewHasTheColoursOfTheDecode encodes plain-coloured images with
// the embedded model's VAE and checks that the preview of their latents
// (the projection fitted to that model) has the mean colour of their
// decode, where SD 1.x's fixed factors (used before) are far off: a red
// apple previewed teal.
func TestPreviewHasTheColoursOfTheDecode(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	dir, err := models.Path()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(dir, LoadOptions{Backend: "go"})
	if err != nil {
		t.Fatal(err)
	}
	f := p.Factor()
	const side = 8
	H := side * f
	worstSD := 0.0
	for name, rgb := range map[string][3]float32{"red": {0.8, -0.8, -0.7}, "green": {-0.6, 0.7, -0.6}, "blue": {-0.7, -0.5, 0.8}, "yellow": {0.7, 0.6, -0.8}} {
		img := make([]float32, 3*H*H)
		for c := range 3 {
			for i := range H * H {
				img[c*H*H+i] = rgb[c]
			}
		}
		moments, mshape, err := p.VAE.EncodeRun(img, []int{1, 3, H, H})
		if err != nil {
			t.Fatal(err)
		}
		C := mshape[1] / 2
		lat := p.VAE.Config.ScaleValues(moments[:C*side*side])
		shape := []int{1, C, side, side}
		dec, dshape, err := p.decode(lat, shape)
		if err != nil {
			t.Fatal(err)
		}
		want := meanRGB(toRGBA(dec, dshape[1], dshape[2], dshape[3]))
		got := meanRGB(p.preview(lat, shape))
		sd := meanRGB(sd15Projection.Image(lat, shape))
		d := colourDist(got, want)
		t.Logf("%s: decode %.0f, fitted preview %.0f (off by %.0f), SD 1.x factors %.0f (off by %.0f)", name, want, got, d, sd, colourDist(sd, want))
		// The embedded model's decoder is not linear in its latents; the
		// fitted map is off by 14–37 of 255 on these colours.
		if d > 48 {
			t.Errorf("%s: the preview's mean colour %.0f is %.0f from the decode's %.0f (allowed 48 of 255)", name, got, d, want)
		}
		if argmax(got) != argmax(want) {
			t.Errorf("%s: the preview's strongest channel is %d, the decode's %d", name, argmax(got), argmax(want))
		}
		worstSD = math.Max(worstSD, colourDist(sd, want))
	}
	if worstSD <= 48 {
		t.Logf("note: SD 1.x's factors are within %.0f here; the test would not have caught them", worstSD)
	}
}

// TestVAESwapAndInfotext loads the golden tiny SD1.5 with its VAE given
// again as a separate folder (a swap to the same weights: the same image)
// and with TAESD as the decoder (another image, same size), and checks the
// infotext's VAE fields and their png-info round trip, and that a request
// may pick a VAE of the VAE folder by name and gets the checkpoint's back
// afterwards.
func TestVAESwapAndInfotext(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	m := golden.Load(t)
	model := filepath.Join(m.Dir, "tiny_sd15")
	var taesdDir string
	for _, c := range m.Cases {
		if c.Kind == "taesd" {
			taesdDir = c.Path("model")
		}
	}
	if taesdDir == "" {
		t.Skip("no taesd case in the golden manifest")
	}
	vaeDir := t.TempDir()
	if err := os.Symlink(filepath.Join(model, "vae"), filepath.Join(vaeDir, "tiny-vae")); err != nil {
		t.Fatal(err)
	}
	req := Request{Prompt: "a red apple", Steps: 2, Seed: 1, Width: 64, Height: 64}
	gen := func(p *Pipeline, r Request) Result {
		t.Helper()
		res, err := p.Generate(context.Background(), r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	own, err := Load(model, LoadOptions{Backend: "go", VAEDir: vaeDir})
	if err != nil {
		t.Fatal(err)
	}
	base := gen(own, req)
	if _, ok := base.Infotext.Get("VAE"); ok {
		t.Errorf("the checkpoint's own VAE is named in the infotext: %s", base.Infotext.String())
	}
	byName := gen(own, Request{Prompt: req.Prompt, Steps: 2, Seed: 1, Width: 64, Height: 64, VAE: "tiny-vae"})
	if v, _ := byName.Infotext.Get("VAE"); v != "tiny-vae" {
		t.Errorf("request VAE: infotext VAE %q, want tiny-vae (%s)", v, byName.Infotext.String())
	}
	if h, _ := byName.Infotext.Get("VAE hash"); len(h) != 10 {
		t.Errorf("VAE hash %q, want 10 hex digits", h)
	}
	if string(byName.Image.Pix) != string(base.Image.Pix) {
		t.Errorf("the same VAE weights from another folder changed the image")
	}
	if after := gen(own, req); after.Infotext.String() != base.Infotext.String() {
		t.Errorf("after a request's VAE the pipeline's own did not come back: %s", after.Infotext.String())
	}
	if _, err := own.Generate(context.Background(), Request{Prompt: "x", Steps: 2, VAE: "missing"}, Options{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("unknown VAE name: err %v", err)
	}
	back, err := byName.Infotext.Request()
	if err != nil || back.VAE != "tiny-vae" {
		t.Errorf("png-info round trip: VAE %q, err %v", back.VAE, err)
	}

	tiny, err := Load(model, LoadOptions{Backend: "go", VAE: TAESDPrefix + taesdDir, Preview: PreviewTAESD})
	if err != nil {
		t.Fatal(err)
	}
	var previews int
	res, err := tiny.Generate(context.Background(), req, Options{PreviewEvery: 1, Progress: func(pr Progress) {
		if pr.Preview != nil && pr.Preview.Bounds().Dx() == 64 {
			previews++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if previews != 2 {
		t.Errorf("TAESD previews at full size: %d, want 2", previews)
	}
	if v, _ := res[0].Infotext.Get("VAE"); v != filepath.Base(taesdDir) {
		t.Errorf("TAESD: infotext VAE %q, want %q", v, filepath.Base(taesdDir))
	}
	if string(res[0].Image.Pix) == string(base.Image.Pix) {
		t.Errorf("decoding with TAESD gave the VAE's image")
	}
}
