package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

// runSplit runs the command tree and returns stdout and stderr apart.
func runSplit(args ...string) (stdout, stderr string, err error) {
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// tinyFolder is the golden tiny SD1.5 diffusers folder (the manifest's
// single_file reference), or skips.
func tinyFolder(t testing.TB) string {
	t.Helper()
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "single_file" {
			return c.Path("reference")
		}
	}
	t.Skip("golden manifest has no single_file case (the tiny model)")
	return ""
}

func TestGenerateNamesTheFlagOfEveryBadCombination(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "init.png")
	writeTestPNG(t, img, 64, 64)
	small := filepath.Join(dir, "small.png")
	writeTestPNG(t, small, 32, 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"x", "--strength", "0.5"}, "--strength: is only meaningful with an init image (it sets how much of --init-image"},
		{[]string{"x", "--mask", img}, "--mask: needs an init image to inpaint (pass --init-image"},
		{[]string{"x", "--init-image", img, "--mask", small}, "--mask: is (32,32) but the init image is (64,64)"},
		{[]string{"x", "--init-image", img, "--strength", "1.5"}, "--strength: 1.5 must be in (0, 1]"},
		{[]string{"x", "--init-image", filepath.Join(dir, "missing.png")}, "--init-image: open"},
		{[]string{"x", "--init-image", filepath.Join(dir, "init.png"), "--mask-blur", "99", "--mask", img}, "--mask-blur: 99 must be between 0 and 64"},
		{[]string{"   "}, "the PROMPT argument: is empty"},
		{[]string{"x", "--steps", "1000"}, "--steps: 1000 exceeds the limit 150"},
		{[]string{"x", "--cfg", "-1"}, "--cfg: -1 must be between 0 and 100"},
		{[]string{"x", "--guidance", "101"}, "--cfg: 101 must be between 0 and 100"},
		{[]string{"x", "--seed", "-2"}, "--seed: -2 must be -1 (random)"},
		{[]string{"x", "--noise", "mt"}, `--noise: "mt" is not a generator`},
		{[]string{"x", "--sampler", "Euler b"}, `--sampler: unknown sampler "Euler b"`},
		{[]string{"x", "--schedule", "cosine"}, `--schedule: unknown schedule "cosine"`},
		{[]string{"x", "--batch-size", "99"}, "--batch-size: 99 must be between 1 and 16"},
		{[]string{"x", "--clip-skip", "13"}, "--clip-skip: 13 must be between 0 and 12"},
		{[]string{"x", "--eta", "2"}, "--eta: 2 must be between 0 and 1"},
		{[]string{"x", "-W", "-8"}, "--width: -8 must be positive"},
		{[]string{"x", "--eta", "NaN"}, "--eta: NaN is not a number"},
		{[]string{"x", "--guidance", "NaN"}, "--cfg: NaN is not a number"},
		{[]string{"x", "--cfg", "Inf"}, "--cfg: +Inf is not a number"},
		{[]string{"x", "--init-image", img, "--strength", "NaN"}, "--strength: NaN is not a number"},
		{[]string{"x", "--seed", "9223372036854775807", "--batch-size", "2"}, "--seed: 9223372036854775807 is too large for 2 images"},
		{[]string{"x", "--quality", "90"}, "--quality applies to JPEG output only"},
		{[]string{"x", "--format", "jpeg", "--quality", "0"}, "--quality 0: want 1 to 100"},
		{[]string{"x", "--format", "gif"}, `--format: image format "gif"`},
		{[]string{"x", "--format", "jpeg", "-o", filepath.Join(dir, "a.png")}, "--format jpeg contradicts the output file's extension .png"},
		{[]string{"x", "-o", filepath.Join(dir, "a.bmp")}, "unknown image extension .bmp"},
	} {
		args := append([]string{"generate"}, tc.args...)
		_, _, err := runSplit(args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ldm %s:\n got %v\nwant …%s…", strings.Join(args, " "), err, tc.want)
		}
	}
	// The hint to pass --init-image is for a mask without one only.
	_, _, err := runSplit("generate", "x", "--init-image", img, "--mask", small)
	if err == nil || strings.Contains(err.Error(), "pass --init-image") {
		t.Errorf("a mask of the wrong size: %v, want no --init-image hint", err)
	}
}

// TestGenerateRefusesAReadOnlyOutputBeforeGenerating: the check comes before
// the model is even loaded (the model path does not exist).
func TestGenerateRefusesAReadOnlyOutputBeforeGenerating(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // root writes into read-only folders, not into /proc
		if runtime.GOOS != "linux" {
			t.Skip("root writes into read-only folders")
		}
		dir = "/proc"
	}
	for _, out := range []string{dir, filepath.Join(dir, "a.png")} {
		_, _, err := runSplit("generate", "x", "--model", "/no/such/model", "-o", out)
		if err == nil || !strings.Contains(err.Error(), "-o: "+dir+" is not writable") {
			t.Errorf("-o %s: got %v, want a not-writable error before loading", out, err)
		}
	}
}

// TestGenerateSizesOfTheVAEFactor: any multiple of the VAE factor runs,
// also when the latents do not halve down the U-Net (72 px: 9 latents on
// the tiny model, whose U-Net halves once); others name the real factor.
func TestGenerateSizesOfTheVAEFactor(t *testing.T) {
	model := tinyFolder(t)
	out := filepath.Join(t.TempDir(), "a.png")
	_, stderr, err := runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "1", "-W", "72", "-H", "56", "-o", out)
	if err != nil {
		t.Fatalf("72×56: %v\n%s", err, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil || cfg.Width != 72 || cfg.Height != 56 {
		t.Fatalf("wrote %dx%d (%v), want 72x56", cfg.Width, cfg.Height, err)
	}
	_, _, err = runSplit("generate", "x", "--model", model, "--backend", "go", "--steps", "1", "-W", "70", "-o", out)
	if err == nil || !strings.Contains(err.Error(), "--width: 70 is not a multiple of 8, the model's VAE factor: use 64 or 72") {
		t.Errorf("-W 70: got %v", err)
	}
}

func writeTestPNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := testImage(w, h)
	if err := ldm.SaveImage(path, img, ldm.Infotext{}, ldm.PNG, 0); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateWritesNumberedFilesReadableByPNGInfo(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := []string{"generate", "a red apple", "--negative", "blurry", "--model", model, "--backend", "go",
		"--steps", "2", "--seed", "3", "--batch-size", "2", "--sampler", "Euler a", "-o", out}
	stdout, stderr, err := runSplit(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want := []string{"00001-3.png", "00002-4.png"}
	for i, name := range want {
		if !strings.Contains(stdout, filepath.Join(out, name)+"\tseed "+[]string{"3", "4"}[i]) {
			t.Errorf("stdout does not report %s:\n%s", name, stdout)
		}
	}
	// Not a terminal: one plain progress line per step, and a timing summary.
	for _, s := range []string{"step 1/2, elapsed", "step 2/2, elapsed", "ETA", "2 image(s) in"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	// A second run numbers on and, with the same seed, gives the same bytes.
	if _, stderr, err = runSplit(args...); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(out, "00001-3.png"))
	b, err := os.ReadFile(filepath.Join(out, "00003-3.png"))
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("same seed and flags gave other bytes (err %v)", err)
	}

	text, _, err := runSplit("png-info", filepath.Join(out, "00002-4.png"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 3 || lines[0] != "a red apple" || lines[1] != "Negative prompt: blurry" ||
		!strings.HasPrefix(lines[2], "Steps: 2, Sampler: Euler a, CFG scale: 7.5, Seed: 4, Size: 64x64, Model hash: ") {
		t.Fatalf("png-info:\n%s", text)
	}
	js, _, err := runSplit("png-info", "--json", filepath.Join(out, "00002-4.png"))
	if err != nil {
		t.Fatal(err)
	}
	var info pngInfo
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatal(err)
	}
	if info.Parameters["Seed"] != "4" || info.Request.Seed != 4 || info.Request.Steps != 2 || info.Request.Sampler != "Euler a" ||
		info.Request.NegativePrompt != "blurry" || info.Request.Width != 64 || info.Parameters["Model"] != "tiny_sd15" {
		t.Fatalf("png-info --json: %+v", info)
	}
}

func TestGenerateJPEGAndImg2ImgFromFlags(t *testing.T) {
	model := tinyFolder(t)
	dir := t.TempDir()
	init := filepath.Join(dir, "init.png")
	writeTestPNG(t, init, 64, 64)
	out := filepath.Join(dir, "fox.jpg")
	_, stderr, err := runSplit("generate", "a fox", "--model", model, "--backend", "go", "--steps", "4", "--seed", "-1",
		"--init-image", init, "--strength", "0.5", "--quality", "95", "--noise", "torch", "-o", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	js, _, err := runSplit("png-info", "--json", out)
	if err != nil {
		t.Fatal(err)
	}
	var info pngInfo
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatal(err)
	}
	// Strength 0.5 of 4 DDIM steps runs 2; the random seed is reported.
	if info.Request.Strength != 0.5 || info.Request.Noise != "torch" || info.Request.Seed < 0 || info.Parameters["Denoising strength"] != "0.5" {
		t.Fatalf("JPEG parameters: %+v", info)
	}
	if !strings.Contains(stderr, "step 2/2") || strings.Contains(stderr, "step 3/") {
		t.Errorf("strength 0.5 of 4 steps should run 2 steps:\n%s", stderr)
	}
}

// testImage is a w×h picture with a gradient.
func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), 128, 255})
		}
	}
	return img
}

func TestGenerateWithoutModelUsesTheEmbeddedModel(t *testing.T) {
	t.Setenv("LDM_MODEL", "")
	out := filepath.Join(t.TempDir(), "a.png")
	if _, _, err := runSplit("generate", "a red apple", "--steps", "2", "--seed", "5", "-o", out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text, err := ldm.ReadPNGText(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text["parameters"], "Model: "+models.Name) {
		t.Fatalf("parameters %q do not name the embedded model %q", text["parameters"], models.Name)
	}
}

func TestLoRAFlagTakesAnOptionalWeightAfterTheLastColon(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a:b.safetensors")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		flag, path string
		weight     float64
		err        string
	}{
		{file, file, 1, ""},
		{file + ":0.5", file, 0.5, ""},
		{file + ":-1", file, -1, ""},
		{filepath.Join(dir, "none.safetensors") + ":1", "", 0, "no such file"},
		{":0.5", "", 0, "give a file"},
	} {
		spec, err := parseLoRAFlag(c.flag)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.flag, err, c.err)
			}
			continue
		}
		if err != nil || spec.Path != c.path || spec.Weight != c.weight {
			t.Errorf("%q: got %+v %v, want %s weight %g", c.flag, spec, err, c.path, c.weight)
		}
	}
}

// cancelOn cancels when a line containing marker is written.
type cancelOn struct {
	marker string
	cancel context.CancelFunc
	buf    bytes.Buffer
	then   func() // runs once, when the marker is first seen
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		if c.then != nil {
			c.then()
			c.then = nil
		}
		c.cancel()
	}
	return len(p), nil
}

// Each image of --batch-count is saved as it finishes (batch 1's file
// exists while batch 2 runs), so Ctrl-C keeps the finished ones; before,
// they were all discarded ("interrupted", no file).
func TestGenerateInterruptKeepsFinishedImages(t *testing.T) {
	model := tinyFolder(t)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	savedEarly := false
	stderr := &cancelOn{marker: "batch 2/3", cancel: cancel, then: func() {
		_, err := os.Stat(filepath.Join(out, "00001-5.png"))
		savedEarly = err == nil
	}}
	root := newRootCmd()
	var stdout bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(stderr)
	root.SetArgs([]string{"generate", "a cat", "--model", model, "--backend", "go", "--steps", "3", "--batch-count", "3", "--seed", "5", "-o", out})
	err := root.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupted: the 1 image(s) finished before it are saved") {
		t.Fatalf("err %v, want an interrupt that saved 1 image\n%s", err, stderr.buf.String())
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(files) != 1 || filepath.Base(files[0]) != "00001-5.png" {
		t.Fatalf("saved %v, want 00001-5.png", files)
	}
	if _, err := ldm.ReadParametersFile(files[0]); err != nil {
		t.Error(err)
	}
	if !savedEarly {
		t.Error("batch 1's image was not on disk while batch 2 ran")
	}
}
