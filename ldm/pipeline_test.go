package ldm

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/unet"
)

// tinyModel returns the golden tiny SD1.5 model as a diffusers folder and as
// a single file (the manifest's single_file case), or skips.
func tinyModel(t testing.TB) (folder, single string) {
	t.Helper()
	m := golden.Load(t)
	for _, c := range m.Cases {
		if c.Kind == "single_file" {
			return c.Path("reference"), c.Path("model")
		}
	}
	t.Skip("golden manifest has no single_file case (the tiny model)")
	return "", ""
}

func loadTiny(t testing.TB) *Pipeline {
	t.Helper()
	folder, _ := tinyModel(t)
	p, err := Load(folder, LoadOptions{Backend: "go"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// quick is a cheap request on the tiny model that still exercises per-step
// noise (an ancestral sampler) and guidance.
func quick() Request {
	return Request{Prompt: "a red (apple:1.2) on a table", NegativePrompt: "blurry", Steps: 3, Sampler: "Euler a", Seed: 42, Width: 64, Height: 64}
}

func pngBytes(t *testing.T, r Result) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeImage(&buf, r.Image, r.Infotext, PNG, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSameSeedGivesByteIdenticalPNG(t *testing.T) {
	p := loadTiny(t)
	req := quick()
	req.BatchSize = 2
	first, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A second run on the same pipeline (cached graphs) and one on a fresh
	// load must both give the same bytes.
	again, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := loadTiny(t).Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		a := pngBytes(t, first[i])
		if !bytes.Equal(a, pngBytes(t, again[i])) || !bytes.Equal(a, pngBytes(t, fresh[i])) {
			t.Errorf("image %d: same seed and request gave different PNG bytes", i)
		}
	}
	if bytes.Equal(first[0].Image.Pix, first[1].Image.Pix) {
		t.Error("images 0 and 1 of a batch (seeds s, s+1) are identical")
	}
	if first[0].Seed != 42 || first[1].Seed != 43 {
		t.Errorf("batch seeds %d, %d; want 42, 43", first[0].Seed, first[1].Seed)
	}
}

func TestInfotextReadsBackInA1111Format(t *testing.T) {
	p := loadTiny(t)
	req := quick()
	req.ClipSkip = 2
	res, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []Format{PNG, JPEG} {
		path := filepath.Join(dir, "out"+f.Ext())
		if err := res[0].Save(path, f, 0); err != nil {
			t.Fatal(err)
		}
		text, err := ReadParametersFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(text, "\n")
		if len(lines) != 3 || lines[0] != req.Prompt || lines[1] != "Negative prompt: "+req.NegativePrompt || !strings.HasPrefix(lines[2], "Steps: 3, Sampler: Euler a, ") {
			t.Fatalf("%s: not the A1111 layout (prompt / Negative prompt: / Steps: …):\n%s", f, text)
		}
		it, err := ParseInfotext(text)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"Steps": "3", "Sampler": "Euler a", "CFG scale": "7.5", "Seed": "42", "Size": "64x64",
			"Model": p.Name, "Model hash": p.Hash, "Clip skip": "2", "RNG": "Philox"}
		for k, v := range want {
			if got, _ := it.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", f, k, got, v)
			}
		}
		if len(p.Hash) != 10 {
			t.Errorf("model hash %q: want 10 hex digits", p.Hash)
		}
		if it.Prompt != req.Prompt || it.NegativePrompt != req.NegativePrompt {
			t.Errorf("%s: prompt %q / %q read back", f, it.Prompt, it.NegativePrompt)
		}
	}
}

func TestRandomSeedIsReportedAndReproduces(t *testing.T) {
	p := loadTiny(t)
	req := quick()
	req.Seed = -1
	res, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed := res[0].Seed
	if seed < 0 {
		t.Fatalf("seed -1 reported as %d", seed)
	}
	if v, _ := res[0].Infotext.Get("Seed"); v != strconv.FormatInt(seed, 10) {
		t.Fatalf("infotext seed %q, result seed %d", v, seed)
	}
	req.Seed = seed
	again, err := p.Generate(context.Background(), req, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res[0].Image.Pix, again[0].Image.Pix) {
		t.Error("rerunning with the reported seed gave another image")
	}
}

func TestCancelStopsWithinOneStep(t *testing.T) {
	p := loadTiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var steps []int
	req := quick()
	req.Steps = 6
	_, err := p.Generate(ctx, req, Options{Progress: func(pr Progress) {
		steps = append(steps, pr.Step)
		if pr.Step == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(steps) != 2 {
		t.Fatalf("ran steps %v after cancelling at step 2", steps)
	}
}

// countingBackend counts graph compilations.
type countingBackend struct {
	backends.Backend
	compiles *atomic.Int64
}

func (b countingBackend) Builder(name string) backends.Builder {
	return countingBuilder{b.Backend.Builder(name), b.compiles}
}

type countingBuilder struct {
	backends.Builder
	compiles *atomic.Int64
}

func (b countingBuilder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	b.compiles.Add(1)
	return b.Builder.Compile(outputs, shardings)
}

func TestCompiledGraphsAreReusedAcrossCalls(t *testing.T) {
	folder, _ := tinyModel(t)
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	// Loaded into the counting backend: Load moves the weights onto the
	// backend it loads into, and a tensor cannot move between instances.
	p, err := Load(folder, LoadOptions{Engine: countingBackend{b, &n}})
	if err != nil {
		t.Fatal(err)
	}
	req := quick()
	if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	first := n.Load()
	if first == 0 {
		t.Fatal("the counting backend saw no compilation: the test measures nothing")
	}
	// Same shapes, other prompt, seed and step count: nothing new to compile.
	req.Prompt, req.Seed, req.Steps = "a blue house", 7, 4
	if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	if extra := n.Load() - first; extra != 0 {
		t.Errorf("second Generate of the same shape compiled %d more graphs (first call: %d)", extra, first)
	}
	// A new size compiles again (the counter works).
	req.Width = 128
	if _, err := p.Generate(context.Background(), req, Options{}); err != nil {
		t.Fatal(err)
	}
	if n.Load() == first {
		t.Error("a new image size compiled nothing: is the counter wired?")
	}
	t.Logf("compilations: first call %d, same shape again 0, new size %d", first, n.Load()-first)
}

// testInit is a 64×64 init image with a pattern, and a mask that repaints a
// centred 24×24 square.
func testInit() (*image.RGBA, *image.Gray, image.Rectangle) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(4 * y), uint8((x * y) % 251), 255})
		}
	}
	hole := image.Rect(20, 20, 44, 44)
	mask := image.NewGray(img.Bounds())
	for y := hole.Min.Y; y < hole.Max.Y; y++ {
		for x := hole.Min.X; x < hole.Max.X; x++ {
			mask.SetGray(x, y, color.Gray{255})
		}
	}
	return img, mask, hole
}

func TestInpaintKeepsPixelsOutsideTheMask(t *testing.T) {
	p := loadTiny(t)
	check := func(t *testing.T, p *Pipeline) {
		init, mask, hole := testInit()
		req := quick()
		req.InitImage, req.Mask, req.MaskBlur, req.Strength = init, mask, Blur(1), 0.9
		res, err := p.Generate(context.Background(), req, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := res[0].Image
		// The mask is blurred with σ = MaskBlur/2 (kernel radius ⌈3σ⌉ = 2):
		// beyond that margin the overlay must give back the init pixels exactly.
		keep := hole.Inset(-3)
		changedInside, kept := 0, 0
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				i := got.PixOffset(x, y)
				same := bytes.Equal(got.Pix[i:i+3], init.Pix[i:i+3])
				switch {
				case !image.Pt(x, y).In(keep):
					kept++
					if !same {
						t.Fatalf("pixel (%d,%d) outside the mask is %v, the init image has %v", x, y, got.Pix[i:i+3], init.Pix[i:i+3])
					}
				case image.Pt(x, y).In(hole.Inset(3)) && !same:
					changedInside++
				}
			}
		}
		if changedInside == 0 {
			t.Error("nothing was repainted inside the mask")
		}
		if v, _ := res[0].Infotext.Get("Mask blur"); v != "1" {
			t.Errorf("infotext Mask blur = %q", v)
		}
		t.Logf("%d pixels outside the mask kept exactly, %d inside repainted", kept, changedInside)
	}
	t.Run("4-channel U-Net, latent blending", func(t *testing.T) { check(t, p) })
	t.Run("9-channel inpainting U-Net", func(t *testing.T) {
		cfg := p.UNet.Config
		cfg.InChannels = 2*cfg.OutChannels + 1
		u, err := unet.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.InitWeights(3); err != nil {
			t.Fatal(err)
		}
		p9 := loadTiny(t)
		p9.UNet = u
		check(t, p9)
		// txt2img and img2img without a mask run too, with the whole image
		// masked (AUTOMATIC1111's conditioning for inpainting models).
		req := quick()
		if _, err := p9.Generate(context.Background(), req, Options{}); err != nil {
			t.Errorf("txt2img with a 9-channel inpainting U-Net: %v", err)
		}
		req.InitImage, _, _ = testInit()
		if _, err := p9.Generate(context.Background(), req, Options{}); err != nil {
			t.Errorf("img2img with a 9-channel inpainting U-Net: %v", err)
		}
	})
}

func TestTokenizerSearchForSingleFiles(t *testing.T) {
	folder, single := tinyModel(t)
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", cache)
	_, err := Load(single, LoadOptions{Backend: "go"})
	if err == nil || !strings.Contains(err.Error(), "--tokenizer") || !strings.Contains(err.Error(), "openai/clip-vit-large-patch14") {
		t.Fatalf("no tokenizer anywhere: want an error naming --tokenizer and the HF repository, got %v", err)
	}
	// Explicit folder.
	p, err := Load(single, LoadOptions{Backend: "go", Tokenizer: filepath.Join(folder, "tokenizer")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Tokenizer.VocabSize() != 49408 {
		t.Fatalf("vocab %d", p.Tokenizer.VocabSize())
	}
	if _, err := Load(single, LoadOptions{Backend: "go", Tokenizer: cache}); err == nil || !strings.Contains(err.Error(), "not a tokenizer folder") {
		t.Fatalf("a folder without a vocabulary: got %v", err)
	}
	// The Hugging Face cache layout of openai/clip-vit-large-patch14.
	snap := filepath.Join(cache, "hub", "models--openai--clip-vit-large-patch14", "snapshots", "0123abcd")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join(folder, "tokenizer", f))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(snap, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if p, err = Load(single, LoadOptions{Backend: "go"}); err != nil {
		t.Fatalf("tokenizer in the HF cache not found: %v", err)
	}
	if ids := p.Tokenizer.TokenIDs("a cat"); len(ids) != 2 {
		t.Fatalf("tokenizer from the cache: %v", ids)
	}
}
