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
	if !strings.Contains(md, "| vq-vae | – | – | – | 2 |") {
		t.Errorf("table row of vq-vae wrong:\n%s", md)
	}
}
