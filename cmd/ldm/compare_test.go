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

	"github.com/ldm-project/ldm/compare"
)

// TestCompareQuickKeepsExplicitFlags runs `ldm compare --quick` with a few
// explicit overrides on a tiny folder: the overrides win, the other quick
// budgets apply, and the report folder is complete.
func TestCompareQuickKeepsExplicitFlags(t *testing.T) {
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
	if !strings.Contains(log, "report: ") || !strings.HasPrefix(o.Command, "ldm ") {
		t.Errorf("log %q, command %q", log, o.Command)
	}
}
