package classify

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

func backend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testColors = map[string]color.RGBA{
	"red": {220, 30, 30, 255}, "green": {30, 160, 50, 255}, "blue": {30, 70, 220, 255}, "yellow": {240, 200, 20, 255},
}

// writeSquares writes an imagefolder of n size² images: a coloured square on
// the left or right half, with fields color, side and split (every fifth
// image held out).
func writeSquares(t testing.TB, dir string, n, size int) {
	t.Helper()
	names := []string{"blue", "green", "red", "yellow"}
	var lines []string
	for i := range n {
		c, side := names[i%4], []string{"left", "right"}[(i/4)%2]
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		for p := range img.Pix {
			img.Pix[p] = 255
		}
		x0 := 1 + (i/8)%3
		if side == "right" {
			x0 = size/2 + (i/8)%3
		}
		y0 := 2 + (i/3)%(size/2)
		for y := y0; y < min(size, y0+size/3); y++ {
			for x := x0; x < x0+size/3; x++ {
				img.Set(x, y, testColors[c])
			}
		}
		name := fmt.Sprintf("%03d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		split := "train"
		if i%5 == 4 {
			split = "test"
		}
		b, _ := json.Marshal(map[string]string{"file_name": name, "text": "a " + c + " square on the " + side, "color": c, "side": side, "split": split})
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tinyRun(dir string) Run {
	r := Run{Data: dir, Fields: []string{"color", "side"}, Batch: 16, Seed: 3, Shift: 1,
		Model: Config{Task: "custom", Size: 16, Channels: []int{8, 16}, Groups: 4}, Train: train.DefaultConfig()}
	r.Train.LR, r.Train.WarmupSteps, r.Train.Steps, r.Train.EMADecay = 1e-2, 5, 60, 0.9
	return r
}

func TestClassifierLearnsColourAndSideOfHeldOutSquares(t *testing.T) {
	dir := t.TempDir()
	writeSquares(t, dir, 80, 16)
	b := backend(t)
	tr, err := NewTrainer(stdctx.Background(), b, tinyRun(dir), "")
	if err != nil {
		t.Fatal(err)
	}
	if tr.TrainSet.Len() != 64 || tr.HeldOut.Len() != 16 {
		t.Fatalf("split %d/%d, want 64/16", tr.TrainSet.Len(), tr.HeldOut.Len())
	}
	before, err := tr.EvaluateHeldOut()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Loop(stdctx.Background(), tr.Run.Train.Steps, tr.Batch, train.LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	acc, err := tr.EvaluateHeldOut()
	if err != nil {
		t.Fatal(err)
	}
	for h, ha := range acc.Heads {
		t.Logf("%s: top-1 %.2f (before training %.2f)", ha.Field, ha.Top1, before.Heads[h].Top1)
		if ha.Top1 < 0.9 {
			t.Errorf("%s: held-out top-1 %.2f after %d steps, want ≥ 0.9", ha.Field, ha.Top1, tr.Step)
		}
	}
	// The exported folder reloads to the same predictions (float16 weights).
	out := filepath.Join(t.TempDir(), "clf")
	if err := tr.Export(out); err != nil {
		t.Fatal(err)
	}
	m, err := Load(b, out)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Evaluate(m, tr.HeldOut)
	if err != nil {
		t.Fatal(err)
	}
	for h := range acc.Heads {
		if again.Heads[h].Top1 != acc.Heads[h].Top1 {
			t.Errorf("%s: reloaded top-1 %.3f, trained %.3f", acc.Heads[h].Field, again.Heads[h].Top1, acc.Heads[h].Top1)
		}
	}
}

func TestHeadsForSortsLabelsAndNamesMissingFields(t *testing.T) {
	ds := &data.Dataset{Root: "d", Items: []data.Item{
		{Name: "a", Fields: map[string]string{"k": "zebra", "c": "x"}},
		{Name: "b", Fields: map[string]string{"k": "apple", "c": "y"}},
		{Name: "c", Fields: map[string]string{"k": "zebra", "c": "x"}},
	}}
	heads, err := HeadsFor(ds, []string{"k", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(heads[0].Labels, []string{"apple", "zebra"}) || !slices.Equal(heads[1].Labels, []string{"x", "y"}) {
		t.Errorf("labels %v", heads)
	}
	if _, err := HeadsFor(ds, []string{"missing"}); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("missing field: %v", err)
	}
	ds.Items = ds.Items[:1]
	if _, err := HeadsFor(ds, []string{"k"}); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one class: %v", err)
	}
}

func TestSplitHeldOutRequiresAHeldOutSplit(t *testing.T) {
	ds := &data.Dataset{Root: "somewhere", Items: []data.Item{
		{Name: "a", Fields: map[string]string{"split": "train"}},
		{Name: "b", Fields: map[string]string{"split": "train"}},
	}}
	if _, _, err := SplitHeldOut(ds); err == nil || !strings.Contains(err.Error(), "no held-out split") {
		t.Errorf("got %v", err)
	}
	ds.Items[1].Fields["split"] = "test"
	tr, held, err := SplitHeldOut(ds)
	if err != nil || tr.Len() != 1 || held.Len() != 1 {
		t.Errorf("split: %v %v %v", tr, held, err)
	}
}

func TestModelFeaturesHaveTheLastStageWidthAndPaddingDoesNotLeak(t *testing.T) {
	b := backend(t)
	cfg := Config{Task: "custom", Size: 16, Channels: []int{8, 12}, Groups: 4,
		Heads: []Head{{Field: "a", Labels: []string{"x", "y", "z"}}, {Field: "b", Labels: []string{"p", "q"}}}}
	keys, err := ExpectedKeys(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys["heads.a.weight"], []int{3, 12}) || !slices.Equal(keys["stages.0.down.weight"], []int{8, 3, 3, 3}) {
		t.Fatalf("keys %v", keys)
	}
	m, err := New(b, cfg, nn.RandomSource(keys, 1))
	if err != nil {
		t.Fatal(err)
	}
	n := 35 // more than one padded batch
	x := make([]float32, n*16*16*3)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	p, err := m.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Features) != n || len(p.Features[0]) != 12 || len(p.Logits) != 2 || len(p.Logits[0][n-1]) != 3 || len(p.Logits[1][0]) != 2 {
		t.Fatalf("shapes: %d features of %d, logits %d heads", len(p.Features), len(p.Features[0]), len(p.Logits))
	}
	// Image 34 alone gives the same features as inside the larger call.
	one, err := m.Run(x[34*768:], 1)
	if err != nil {
		t.Fatal(err)
	}
	for j := range one.Features[0] {
		if d := math.Abs(one.Features[0][j] - p.Features[34][j]); d > 1e-5 {
			t.Fatalf("feature %d differs by %g between batch positions", j, d)
		}
	}
	if _, err := m.Run(x[:10], 1); err == nil {
		t.Error("wrong input length: no error")
	}
	delete(keys, "heads.b.bias")
	if _, err := New(b, cfg, nn.RandomSource(keys, 1)); err == nil || !strings.Contains(err.Error(), "heads.b.bias") {
		t.Errorf("missing weight: %v", err)
	}
}

func TestEmbeddedClassifiersLoad(t *testing.T) {
	b := backend(t)
	for task, fields := range TaskFields {
		if !slices.Contains(EmbeddedTasks(), task) {
			t.Errorf("no embedded %s classifier", task)
			continue
		}
		m, err := Embedded(b, task)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			if m.Config.HeadIndex(f) < 0 {
				t.Errorf("%s classifier has no %s head", task, f)
			}
		}
	}
	if _, err := Embedded(b, "nope"); err == nil || !strings.Contains(err.Error(), "no embedded classifier") {
		t.Errorf("unknown task: %v", err)
	}
}

func TestAugmentShiftsWithEdgeRepeatAndFlips(t *testing.T) {
	// One 4×4 image whose red channel is the column index.
	x := make([]float32, 4*4*3)
	for y := range 4 {
		for c := range 4 {
			x[(y*4+c)*3] = float32(c)
		}
	}
	orig := slices.Clone(x)
	augment(train.StepRand(1, 0, 0), x, 1, 4, 0, false)
	if !slices.Equal(x, orig) {
		t.Fatal("no shift, no flip changed the image")
	}
	// Find a step whose draw is a pure horizontal flip or shift and check the
	// row is a permutation with edge repeats of the original columns.
	for step := range 20 {
		y := slices.Clone(orig)
		augment(train.StepRand(1, step, 0), y, 1, 4, 1, true)
		for row := range 4 {
			for c := range 4 {
				v := y[(row*4+c)*3]
				if v < 0 || v > 3 || v != float32(int(v)) {
					t.Fatalf("step %d: pixel value %v is not one of the original columns", step, v)
				}
			}
		}
	}
}

func TestFirstTagsCutsCaptionsToTheirLeadingTags(t *testing.T) {
	c := "red apple, apple, food and drink, food fruit, twitter style"
	for n, want := range map[int]string{0: c, 1: "red apple", 2: "red apple, apple", 9: c} {
		if got := firstTags(c, n); got != want {
			t.Errorf("firstTags(%d) = %q, want %q", n, got, want)
		}
	}
}
