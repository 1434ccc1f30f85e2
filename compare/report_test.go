package compare

import (
	"strings"
	"testing"
)

func TestConclusionsStateWhatTheNumbersSay(t *testing.T) {
	rep := &Report{
		Options:   Options{Steps: 100},
		Reference: Row{FD: pf(5)},
		Rows: []Row{
			{Model: "ae", AUC: pf(0.45), PSNR: pf(14)},
			{Model: "vae", FD: pf(17), PSNR: pf(13), ImgPerSec: pf(200)},
			{Model: "vq-vae", FD: pf(2), PSNR: pf(15), ImgPerSec: pf(2)},
		},
	}
	got := strings.Join(conclusions(rep), "\n")
	for _, want := range []string{
		"best first: vq-vae 2, vae 17.",
		"Reconstruction PSNR, best first: vq-vae 15.00 dB, ae 14.00 dB, vae 13.00 dB.",
		"vq-vae scores below it",
		"ae's reconstruction error does not detect the shapes images",
		"At 100 steps no model has converged",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("conclusions lack %q:\n%s", want, got)
		}
	}
	md := markdown(rep)
	if !strings.Contains(md, "| vq-vae | – | – | – | – | 2 |") {
		t.Errorf("table row of vq-vae wrong:\n%s", md)
	}
}

func TestReportPutsClassifierColumnsFirstAndJudgesAlignment(t *testing.T) {
	align := func(top1, indep float64) Alignment {
		return Alignment{Field: "subcategory", Classes: 99, Images: 64, Prompts: 64, Top1: top1, Top5: 0.5,
			PromptIndependentTop1: indep, UniformTop1: 1.0 / 99, UniformTop5: 5.0 / 99, RealTop1: 0.8, RealImages: 128}
	}
	rep := &Report{
		Options:            Options{Steps: 100, LDM: "m"},
		ClassifierFeatures: 128, PRSpace: "classifier", TestN: 128,
		Reference: Row{Model: "training images (reference)", Samples: 64, FDClf: pf(3), FD: pf(5)},
		Rows: []Row{
			{Model: "vae", Samples: 64, FDClf: pf(40), KIDClf: pf(0.5), FD: pf(17), Precision: pf(1), Recall: pf(0.02)},
			{Model: "ldm", Samples: 64, FDClf: pf(20), KIDClf: pf(0.2), FD: pf(30), Alignment: []Alignment{align(0.25, 0.02)}},
			{Model: "ldm2", Samples: 64, FDClf: pf(2), Alignment: []Alignment{align(0.01, 0.02)}},
		},
	}
	got := strings.Join(conclusions(rep), "\n")
	for _, want := range []string{
		"FD in classifier features (lower is better), best first: ldm2 2, ldm 20, vae 40.",
		"By FD in AE features, best first: vae 17, ldm 30.",
		"reach FD 3 at n = 64",
		"ldm2 scores below it",
		"ldm's prompt alignment by subcategory (99 classes, 64 images): top-1 25.0% against 2.0% prompt-independent",
		"1.0% chance (real images: 80.0%)",
		": the text steers the images",
		"ldm2's prompt alignment by subcategory (99 classes, 64 images): top-1 1.0%",
		"the text does not measurably steer the images",
		"vae's precision 1.00 with recall 0.02: its samples fall inside",
		"The ldm row is a model trained outside this run",
		"At 100 steps no model has converged and the samples are not recognisable emoji",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("conclusions lack %q:\n%s", want, got)
		}
	}
	md := markdown(rep)
	for _, want := range []string{
		"| vae | – | – | – | 64 | 40 | 0.5 | 17 | – | – | 1.00 | 0.02 |",
		"| ldm | subcategory | 99 | 64 (64) | 25.0% | 50.0% | 2.0% / 0.0% | 0.0% / 0.0% | 1.0% / 5.1% | 80.0% / 0.0% (128) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
