package ldm

import (
	"context"
	"errors"
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

func TestCompatible(t *testing.T) {
	p := loadTiny(t)
	a := quick()
	same := quick()
	same.Prompt, same.NegativePrompt, same.Seed, same.BatchSize = "a blue car", "", 7, 3
	if !p.Compatible(a, same) {
		t.Error("requests differing only in prompt, seed and batch size are not compatible")
	}
	for name, change := range map[string]func(*Request){
		"steps":       func(r *Request) { r.Steps = 4 },
		"size":        func(r *Request) { r.Width = 128 },
		"sampler":     func(r *Request) { r.Sampler = "DDIM" },
		"guidance":    func(r *Request) { r.GuidanceScale = 5 },
		"batch count": func(r *Request) { r.BatchCount = 2 },
		"clip skip":   func(r *Request) { r.ClipSkip = 2 },
		"long prompt": func(r *Request) { r.Prompt = strings.Repeat("apple, ", 60) },
		"init image":  func(r *Request) { r.InitImage, _, _ = testInit() },
	} {
		b := quick()
		change(&b)
		if p.Compatible(a, b) {
			t.Errorf("requests differing in %s are compatible", name)
		}
	}
}

// A batch gives every item the images it would have got alone.
func TestGenerateBatchMatchesSeparateRuns(t *testing.T) {
	p := loadTiny(t)
	reqs := []Request{quick(), quick(), quick()}
	reqs[1].Prompt, reqs[1].Seed, reqs[1].BatchSize = "a green frog", 5, 2
	reqs[2].Prompt, reqs[2].NegativePrompt, reqs[2].Seed = "a blue car", "", 9
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
		alone, err := p.Generate(context.Background(), r, Options{})
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
		if len(progress[i]) != r.Steps || progress[i][r.Steps-1] != r.Steps || previews[i] != r.Steps {
			t.Errorf("item %d: progress steps %v, %d previews; want 1..%d with a preview each", i, progress[i], previews[i], r.Steps)
		}
	}
	if maxPixelDiff(out[0].Results[0], out[2].Results[0]) == 0 {
		t.Error("different prompts and seeds in one batch gave the same image")
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
