package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/classify"
)

// writeEvalFolder writes n 32² images of a coloured square left or right,
// with fields color and side and every fourth image held out.
func writeEvalFolder(t *testing.T, dir string, n int) {
	t.Helper()
	names := []string{"red", "green", "blue", "yellow"}
	cols := []color.RGBA{{220, 30, 30, 255}, {30, 160, 50, 255}, {30, 70, 220, 255}, {240, 200, 20, 255}}
	var lines []string
	for i := range n {
		c, side := i%4, []string{"left", "right"}[(i/4)%2]
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for p := range img.Pix {
			img.Pix[p] = 255
		}
		x0 := 2 + i%3
		if side == "right" {
			x0 += 16
		}
		for y := 8; y < 20; y++ {
			for x := x0; x < x0+10; x++ {
				img.Set(x, y, cols[c])
			}
		}
		name := fmt.Sprintf("%02d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
		split := "train"
		if i%4 == 3 {
			split = "test"
		}
		b, _ := json.Marshal(map[string]string{"file_name": name, "text": "a " + names[c] + " square on the " + side,
			"color": names[c], "side": side, "split": split})
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestEvalLDMReportsAlignmentAndDistancesDeterministically trains a tiny
// classifier on a tiny folder, then evaluates the embedded model against it
// twice with the same seed.
func TestEvalLDMReportsAlignmentAndDistancesDeterministically(t *testing.T) {
	t.Setenv("LDM_MODEL", "")
	tmp := t.TempDir()
	dataDir, clfDir := filepath.Join(tmp, "data"), filepath.Join(tmp, "clf")
	os.MkdirAll(dataDir, 0o755)
	writeEvalFolder(t, dataDir, 24)
	run(t, "train", "classifier", "emoji", dataDir, "--fields", "color,side", "-o", clfDir, "--size", "16",
		"--channels", "8,16", "--groups", "4", "--batch", "8", "--steps", "6", "--warmup", "1", "--checkpoint-every", "6", "--sample-every", "6")
	clf := filepath.Join(clfDir, "model")
	exists(t, filepath.Join(clf, classify.ConfigFile))

	var reps [2]classify.LDMReport
	var tables [2]string
	for i := range reps {
		js := filepath.Join(tmp, fmt.Sprintf("r%d.json", i))
		out, _, err := runSplit("--backend", "go", "eval", "ldm", "--data", dataDir, "--classifier", clf, "--n", "5",
			"--steps", "2", "--batch", "3", "--seed", "4", "--json", js)
		if err != nil {
			t.Fatal(err)
		}
		tables[i] = out
		readJSON(t, js, &reps[i])
	}
	r := reps[0]
	if r.Gen.N != 5 || r.HeldOut != 6 || r.Prompts != 5 || r.Generated.NA != 5 || r.Generated.NB != 6 || r.Reference.NA != 5 {
		t.Errorf("counts: n %d held-out %d prompts %d generated %d vs %d, reference %d", r.Gen.N, r.HeldOut, r.Prompts, r.Generated.NA, r.Generated.NB, r.Reference.NA)
	}
	if len(r.Alignment) != 2 || r.Alignment[0].Field != "color" || r.Alignment[0].Classes != 4 {
		t.Fatalf("alignment %+v", r.Alignment)
	}
	for _, a := range r.Alignment {
		for _, v := range []float64{a.Top1, a.Top5, a.PromptIndependentTop1, a.MajorityTop1, a.RealTop1, a.RealTop5} {
			if v < 0 || v > 1 {
				t.Errorf("%s: accuracy %v outside [0,1]", a.Field, v)
			}
		}
		if a.Top5 < a.Top1 || a.Top5 != 1 { // 4 and 2 classes: top-5 is always right
			t.Errorf("%s: top-5 %v, top-1 %v", a.Field, a.Top5, a.Top1)
		}
		if a.UniformTop1 != 1/float64(a.Classes) {
			t.Errorf("%s: uniform %v", a.Field, a.UniformTop1)
		}
	}
	if !(r.Generated.FD >= 0) || math.IsNaN(r.Generated.KID) || !(r.Reference.FD >= 0) {
		t.Errorf("distances %+v %+v", r.Generated, r.Reference)
	}
	b := reps[1]
	if r.Generated != b.Generated || r.Reference != b.Reference || fmt.Sprint(r.Alignment) != fmt.Sprint(b.Alignment) {
		t.Errorf("same seed, different numbers:\n%+v\n%+v", r, b)
	}
	for _, want := range []string{"prompt alignment", "generated vs real held-out", "5 vs 6", "uniform chance"} {
		if !strings.Contains(tables[0], want) {
			t.Errorf("table lacks %q:\n%s", want, tables[0])
		}
	}
}

func TestEvalVAEAndShapesOnTheEmbeddedModel(t *testing.T) {
	t.Setenv("LDM_MODEL", "")
	tmp := t.TempDir()
	writeEvalFolder(t, tmp, 8)
	js := filepath.Join(tmp, "vae.json")
	if _, _, err := runSplit("--backend", "go", "eval", "vae", "--data", tmp, "--size", "32", "--json", js); err != nil {
		t.Fatal(err)
	}
	var v classify.VAEReport
	readJSON(t, js, &v)
	if v.Images != 2 || !(v.PSNR > 5 && v.PSNR < 100) || !(v.SSIM > 0 && v.SSIM <= 1) {
		t.Errorf("vae report %+v", v)
	}

	js = filepath.Join(tmp, "shapes.json")
	out, _, err := runSplit("--backend", "go", "eval", "shapes", "--n", "4", "--steps", "2", "--json", js)
	if err != nil {
		t.Fatal(err)
	}
	var s classify.ShapesReport
	readJSON(t, js, &s)
	if s.Both > s.Color || s.Both > s.Shape || s.RealColor < 0.9 || s.RealShape < 0.9 || s.Generated.NA != 4 {
		t.Errorf("shapes report %+v", s)
	}
	if !strings.Contains(out, "true renderings (ceiling)") {
		t.Errorf("table:\n%s", out)
	}
}

func TestEvalAndTrainClassifierRejectBadInput(t *testing.T) {
	noSplit := t.TempDir()
	writeEvalFolder(t, noSplit, 4)
	b, _ := os.ReadFile(filepath.Join(noSplit, "metadata.jsonl"))
	os.WriteFile(filepath.Join(noSplit, "metadata.jsonl"), []byte(strings.ReplaceAll(string(b), `"test"`, `"train"`)), 0o644)
	missing := filepath.Join(t.TempDir(), "nowhere")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"eval", "ldm"}, "--data"},
		{[]string{"eval", "ldm", "--data", missing}, "nowhere"},
		{[]string{"eval", "vae", "--data", noSplit}, "no held-out split"},
		{[]string{"eval", "ldm", "--data", noSplit}, "no held-out split"},
		{[]string{"eval", "ldm", "--data", noSplit, "--classifier", missing}, "nowhere"},
		{[]string{"eval", "shapes", "--n", "1"}, "at least 2"},
		{[]string{"eval", "ldm", "--data", noSplit, "--lora", missing + ".safetensors:0.5"}, "nowhere.safetensors"},
		{[]string{"train", "classifier", "cats", noSplit, "-o", t.TempDir()}, `task "cats"`},
		{[]string{"train", "classifier", "emoji", missing, "-o", t.TempDir()}, "nowhere"},
		{[]string{"train", "classifier", "emoji", noSplit, "-o", t.TempDir()}, `"subcategory"`},
	}
	for _, c := range cases {
		_, _, err := runSplit(append([]string{"--backend", "go"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ldm %s: error %v, want one mentioning %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
