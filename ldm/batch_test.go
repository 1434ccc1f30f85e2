package ldm

import (
	"context"
	"errors"
	"image"
	"slices"
	"strings"
	"testing"
)

// maxPixelDiff is the largest difference of one 8-bit channel.
func maxPixelDiff(a, b Result) int {
	m := 0
	for i := range a.Image.Pix {
		d := int(a.Image.Pix[i]) - int(b.Image.Pix[i])
		m = max(m, d, -d)
	}
	return m
}

// TestPlanKeysSeparateWhatCannotShareABatch: plans share a key when only
// prompts, seeds, batch sizes and counts differ.
func TestPlanKeysSeparateWhatCannotShareABatch(t *testing.T) {
	p := loadTiny(t)
	key := func(r Request) string {
		t.Helper()
		pl, err := p.Prepare(r, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		return pl.Key()
	}
	a := quick()
	same := quick()
	same.Prompt, same.NegativePrompt, same.Seed, same.BatchSize, same.BatchCount = "a blue car", "", 7, 3, 2
	if key(a) != key(same) {
		t.Errorf("requests differing only in prompt, seed, batch size and count have other keys:\n%s\n%s", key(a), key(same))
	}
	for name, change := range map[string]func(*Request){
		"steps":       func(r *Request) { r.Steps = 4 },
		"size":        func(r *Request) { r.Width = 128 },
		"sampler":     func(r *Request) { r.Sampler = "DDIM" },
		"schedule":    func(r *Request) { r.Schedule = "Karras" },
		"eta":         func(r *Request) { r.Eta = 0.5 },
		"noise":       func(r *Request) { r.Noise = "torch" },
		"guidance":    func(r *Request) { r.GuidanceScale = 5 },
		"clip skip":   func(r *Request) { r.ClipSkip = 2 },
		"long prompt": func(r *Request) { r.Prompt = strings.Repeat("apple, ", 60) },
		"init image":  func(r *Request) { r.InitImage, _, _ = testInit() },
	} {
		b := quick()
		change(&b)
		if key(a) == key(b) {
			t.Errorf("requests differing in %s share a key", name)
		}
	}
}

// A batch gives every item the images it would have got alone: txt2img,
// plans with several batches, img2img and inpainting with each item's own
// image and mask, all through the one executor.
func TestGenerateBatchMatchesSeparateRuns(t *testing.T) {
	p := loadTiny(t)
	init, mask, _ := testInit()
	flipped := image.NewRGBA(init.Bounds())
	for i := range flipped.Pix {
		flipped.Pix[i] = 255 - init.Pix[i]
		if i%4 == 3 {
			flipped.Pix[i] = 255
		}
	}
	frog := quick()
	frog.Prompt, frog.Seed, frog.BatchSize = "a green frog", 5, 2
	car := quick()
	car.Prompt, car.NegativePrompt, car.Seed = "a blue car", "", 9
	twice := quick()
	twice.Seed, twice.BatchCount = 11, 2
	img2img := func(img image.Image, m image.Image, seed int64) Request {
		r := quick()
		r.InitImage, r.Mask, r.Strength, r.Seed = img, m, 0.7, seed
		return r
	}
	for _, tc := range []struct {
		name string
		reqs []Request
	}{
		{"txt2img", []Request{quick(), frog, car}},
		{"batch counts", []Request{twice, frog}},
		{"img2img", []Request{img2img(init, nil, 3), img2img(flipped, nil, 4)}},
		{"inpainting", []Request{img2img(init, mask, 3), img2img(flipped, mask, 4)}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkBatchMatchesAlone(t, p, tc.reqs) })
	}
}

func checkBatchMatchesAlone(t *testing.T, p *Pipeline, reqs []Request) {
	var items []BatchItem
	progress := make([][]int, len(reqs))
	previews := make([]int, len(reqs))
	for i, r := range reqs {
		items = append(items, BatchItem{Ctx: context.Background(), Req: r, Opts: Options{PreviewEvery: 1, Progress: func(pr Progress) {
			progress[i] = append(progress[i], pr.Step)
			if pr.Preview != nil {
				previews[i]++
			}
		}}})
	}
	out := p.GenerateBatch(context.Background(), items)
	for i, r := range reqs {
		if out[i].Err != nil {
			t.Fatalf("item %d: %v", i, out[i].Err)
		}
		var aloneSteps []int
		alone, err := p.Generate(context.Background(), r, Options{Progress: func(pr Progress) { aloneSteps = append(aloneSteps, pr.Step) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(out[i].Results) != len(alone) {
			t.Fatalf("item %d: %d images in the batch, %d alone", i, len(out[i].Results), len(alone))
		}
		for j := range alone {
			got, want := out[i].Results[j], alone[j]
			if got.Seed != want.Seed || got.Infotext.String() != want.Infotext.String() {
				t.Errorf("item %d image %d: seed/infotext %d %q, alone %d %q", i, j, got.Seed, got.Infotext.String(), want.Seed, want.Infotext.String())
			}
			if d := maxPixelDiff(got, want); d > 2 {
				t.Errorf("item %d image %d differs from the same request alone by %d levels", i, j, d)
			}
		}
		if !slices.Equal(progress[i], aloneSteps) || len(aloneSteps) == 0 || previews[i] != len(aloneSteps) {
			t.Errorf("item %d: progress steps %v, %d previews; alone %v, want a preview each", i, progress[i], previews[i], aloneSteps)
		}
	}
	if maxPixelDiff(out[0].Results[0], out[1].Results[0]) == 0 {
		t.Error("different requests in one batch gave the same image")
	}
}

func TestGenerateBatchInvalidAndIncompatibleItems(t *testing.T) {
	p := loadTiny(t)
	bad := quick()
	bad.Steps = -3
	other := quick()
	other.Sampler = "DDIM"
	out := p.GenerateBatch(context.Background(), []BatchItem{{Req: quick()}, {Req: bad}, {Req: other}, {Req: quick()}})
	var fe *FieldError
	if !errors.As(out[1].Err, &fe) || fe.Field != "steps" {
		t.Errorf("invalid item: err %v, want a FieldError on steps", out[1].Err)
	}
	for _, i := range []int{0, 2, 3} {
		if out[i].Err != nil || len(out[i].Results) != 1 {
			t.Errorf("item %d: err %v, %d results", i, out[i].Err, len(out[i].Results))
		}
	}
	if !strings.Contains(out[2].Results[0].Infotext.String(), "Sampler: DDIM") {
		t.Errorf("the incompatible item ran with the wrong settings: %s", out[2].Results[0].Infotext.String())
	}
}

func TestGenerateBatchCancelOneItem(t *testing.T) {
	p := loadTiny(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := quick()
	req.Steps = 4
	items := []BatchItem{
		{Ctx: ctx, Req: req, Opts: Options{Progress: func(pr Progress) {
			if pr.Step == 1 {
				cancel()
			}
		}}},
		{Ctx: context.Background(), Req: req},
	}
	out := p.GenerateBatch(context.Background(), items)
	if !errors.Is(out[0].Err, context.Canceled) {
		t.Errorf("cancelled item: err %v, want context.Canceled", out[0].Err)
	}
	if out[1].Err != nil || len(out[1].Results) != 1 {
		t.Errorf("the other item: err %v, %d results", out[1].Err, len(out[1].Results))
	}

	// When every item is cancelled the loop stops.
	ctx2, cancel2 := context.WithCancel(context.Background())
	steps := 0
	items = []BatchItem{
		{Ctx: ctx2, Req: req, Opts: Options{Progress: func(pr Progress) {
			steps = pr.Step
			if pr.Step == 1 {
				cancel2()
			}
		}}},
		{Ctx: ctx2, Req: req},
	}
	out = p.GenerateBatch(context.Background(), items)
	for i := range out {
		if !errors.Is(out[i].Err, context.Canceled) {
			t.Errorf("item %d: err %v, want context.Canceled", i, out[i].Err)
		}
	}
	if steps != 1 {
		t.Errorf("progress reached step %d after every item was cancelled at step 1", steps)
	}
}
