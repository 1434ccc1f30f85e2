package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/compare"
	"github.com/ldm-project/ldm/nn"
)

// TestCompareQuickKeepsExplicitFlags runs `ldm compare --quick` with a few
// explicit overrides on a tiny folder: the overrides win, the other quick
// budgets apply, and the report folder is complete.
func TestCompareQuickKeepsExplicitFlags(t *testing.T) {
	data := tinyCompareFolder(t)
	out := filepath.Join(t.TempDir(), "report")
	log, err := runLDM("compare", "--quick", "--backend", "go", "--size", "16", "--batch", "4", "--steps", "2",
		"--samples", "8", "--models", "vae", "-o", out, data)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	var rep compare.Report
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	q := compare.QuickOptions()
	o := rep.Options
	if o.Size != 16 || o.Batch != 4 || o.Steps != 2 || o.Samples != 8 {
		t.Errorf("explicit flags lost: %+v", o)
	}
	if o.DDPMTimesteps != q.DDPMTimesteps || o.PriorSteps != q.PriorSteps || o.LR != q.LR || o.MaxTrain != q.MaxTrain {
		t.Errorf("quick budgets not applied: %+v", o)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].Model != compare.ModelAE || rep.Rows[1].Model != compare.ModelVAE {
		t.Errorf("rows %+v, want ae then vae", rep.Rows)
	}
	// By default the embedded emoji classifier is the primary feature space.
	if rep.ClassifierFeatures == 0 || rep.Rows[1].FDClf == nil || !strings.Contains(o.ClassifierName, `embedded "emoji"`) {
		t.Errorf("default classifier: %d features, vae FD (clf) %v, name %q", rep.ClassifierFeatures, rep.Rows[1].FDClf, o.ClassifierName)
	}
	if !strings.Contains(log, "report: ") || !strings.HasPrefix(o.Command, "ldm ") {
		t.Errorf("log %q, command %q", log, o.Command)
	}
}

// TestCompareRescoreMeasuresAStoredRunWithAClassifierFolder runs compare
// without a classifier, then --rescore with a classifier folder: the report
// gains the classifier columns and names the weights by hash.
func TestCompareRescoreMeasuresAStoredRunWithAClassifierFolder(t *testing.T) {
	data := tinyCompareFolder(t)
	out := filepath.Join(t.TempDir(), "report")
	if log, err := runLDM("compare", "--quick", "--backend", "go", "--size", "16", "--batch", "4", "--steps", "1",
		"--samples", "8", "--models", "vae", "-o", out, data); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cfg := classify.Config{Task: "custom", Size: 16, Channels: []int{8, 8}, Groups: 4,
		Heads: []classify.Head{{Field: "category", Labels: []string{"c", "d"}}}}
	keys, err := classify.ExpectedKeys(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rs, src := nn.RandomSource(keys, 1), nn.MapSource{}
	for k := range keys {
		v, shape, err := rs.Float32(k)
		if err != nil {
			t.Fatal(err)
		}
		src[k] = struct {
			Data  []float32
			Shape []int
		}{v, shape}
	}
	clf := filepath.Join(t.TempDir(), "clf")
	if err := classify.Save(clf, cfg, src); err != nil {
		t.Fatal(err)
	}
	if log, err := runLDM("compare", "--rescore", out, "--classifier", "none", "--backend", "go"); err == nil || !strings.Contains(err.Error(), "--classifier none") {
		t.Errorf("--rescore --classifier none: err %v\n%s", err, log)
	}
	if log, err := runLDM("compare", "--rescore", out, "--classifier", clf, "--backend", "go"); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	var rep compare.Report
	js, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.PRSpace != "classifier" || rep.Rows[1].FDClf == nil || !strings.Contains(rep.Options.ClassifierName, "(weights sha256 ") || !strings.HasPrefix(rep.Rescored, "ldm ") {
		t.Errorf("rescored report: space %q, vae FD (clf) %v, classifier %q, rescored %q", rep.PRSpace, rep.Rows[1].FDClf, rep.Options.ClassifierName, rep.Rescored)
	}
}

// tinyCompareFolder writes 32 16×16 images with captions, a category and a
// train/test split.
func tinyCompareFolder(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	var meta strings.Builder
	for i := range 32 {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for p := range 16 * 16 {
			img.Set(p%16, p/16, color.RGBA{uint8(8 * i), uint8(p), 128, 255})
		}
		name := fmt.Sprintf("%02d.png", i)
		f, err := os.Create(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		split := map[bool]string{true: "test", false: "train"}[i%4 == 0]
		fmt.Fprintf(&meta, `{"file_name":%q,"text":"x","category":"c","split":%q}`+"\n", name, split)
	}
	if err := os.WriteFile(filepath.Join(data, "metadata.jsonl"), []byte(meta.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}
