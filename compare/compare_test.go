package compare

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/nn"
)

// tinyFolder writes an imagefolder of n 16×16 images (coloured squares on
// white, two categories) with a train/test split.
func tinyFolder(t *testing.T, n int) string { return tinyFolderSplit(t, n, true) }

func tinyFolderSplit(t *testing.T, n int, withSplit bool) string {
	t.Helper()
	dir := t.TempDir()
	var meta strings.Builder
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for y := range 16 {
			for x := range 16 {
				c := color.RGBA{255, 255, 255, 255}
				if x >= i%8 && x < i%8+6 && y >= (i/8)%8 && y < (i/8)%8+6 {
					c = color.RGBA{uint8(40 * (i % 6)), uint8(200 - 30*(i%5)), 90, 255}
				}
				img.Set(x, y, c)
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
		if i%4 == 0 {
			split = "test"
		}
		if !withSplit {
			fmt.Fprintf(&meta, `{"file_name":%q,"text":"square","category":"c%d"}`+"\n", name, i%2)
			continue
		}
		fmt.Fprintf(&meta, `{"file_name":%q,"text":"square","category":"c%d","split":%q}`+"\n", name, i%2, split)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.jsonl"), []byte(meta.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunWritesTheFullReport runs every model for a few steps on a tiny
// folder and checks that each row and figure of the report is there.
func TestRunWritesTheFullReport(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolder(t, 64), t.TempDir()
	o.Size, o.Batch, o.Steps, o.PriorSteps, o.DDPMTimesteps, o.Samples, o.DDPMNLL = 16, 8, 3, 3, 4, 16, 8
	rep, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != len(AllModels) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(AllModels))
	}
	for _, r := range rep.Rows {
		if r.Params == 0 || r.Steps != 3 {
			t.Errorf("%s: params %d steps %d", r.Model, r.Params, r.Steps)
		}
		generative := r.Model != ModelAE && r.Model != ModelDAE
		if generative && (r.FD == nil || r.KID == nil || r.Precision == nil || r.ImgPerSec == nil || r.Samples != 16) {
			t.Errorf("%s: distribution metrics missing: %+v", r.Model, r)
		}
		for _, a := range r.Artifacts {
			if _, err := os.Stat(filepath.Join(o.Out, a)); err != nil {
				t.Errorf("%s: artifact %s: %v", r.Model, a, err)
			}
		}
	}
	byName := map[string]Row{}
	for _, r := range rep.Rows {
		byName[r.Model] = r
	}
	if byName[ModelAE].AUC == nil || byName[ModelAE].PSNR == nil {
		t.Error("AE: anomaly AUC or PSNR missing")
	}
	if byName[ModelVAE].BitsPerDim == nil || byName[ModelDDPM].BitsPerDim == nil || byName[ModelBVAE].BitsPerDim != nil {
		t.Error("bits/dim must be reported for the VAE (β=1) and the DDPM only")
	}
	if byName[ModelVQVAE].Perplexity == nil || *byName[ModelVQVAE].CodesUsed < 1 {
		t.Error("VQ-VAE: perplexity missing")
	}
	if rep.Reference.FD == nil {
		t.Error("reference row missing")
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{"| model |", "## Conclusions", "vae-latent-pca.png", "vae-interpolation.png", "dcgan-diversity.png"}, AllModels...) {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var back Report
	js, err := os.ReadFile(filepath.Join(o.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &back); err != nil || len(back.Rows) != len(AllModels) {
		t.Errorf("results.json: %v, %d rows", err, len(back.Rows))
	}
}

// TestRunMeasuresALoadedLDM samples the golden tiny SD1.5 (random weights)
// through the pipeline and measures it beside the autoencoder.
func TestRunMeasuresALoadedLDM(t *testing.T) {
	dir := os.Getenv("LDM_GOLDEN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "golden")
	}
	model := filepath.Join(dir, "tiny_sd15")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("no golden tiny model at %s (set LDM_GOLDEN_DIR)", model)
	}
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolder(t, 64), t.TempDir()
	o.Size, o.Batch, o.Steps, o.Samples, o.Models = 16, 8, 2, 8, nil
	o.LDM, o.LDMSteps, o.BackendName = model, 2, "go"
	o.Classifier, o.ClassifierName = tinyClassifier(t), "tiny"
	rep, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Rows[len(rep.Rows)-1]
	if last.Model != ModelLDM || last.FD == nil || last.FDClf == nil || last.Params == 0 || last.Samples != 8 {
		t.Errorf("LDM row: %+v", last)
	}
	// Prompts are the captions of test images 0..7 of the tiny folder
	// (categories c0/c1): every one is labelled.
	if len(last.Alignment) != 1 || last.Alignment[0].Images != 8 || last.Alignment[0].Classes != 2 || last.Alignment[0].UniformTop1 != 0.5 {
		t.Errorf("LDM alignment: %+v", last.Alignment)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| ldm | category | 2 | 8 (") {
		t.Errorf("report.md lacks the alignment row:\n%s", md)
	}
}

func TestRunHoldsOutAFifthOfAFolderWithoutSplit(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	o := QuickOptions()
	o.Data, o.Out = tinyFolderSplit(t, 40, false), t.TempDir()
	o.Size, o.Batch, o.Steps, o.Samples, o.Models = 16, 4, 1, 8, nil
	rep, err := Run(stdctx.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TrainN != 32 || rep.TestN != 8 {
		t.Errorf("train %d test %d, want 32 and 8", rep.TrainN, rep.TestN)
	}
}
