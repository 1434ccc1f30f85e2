package golden

import "testing"

// implemented lists the manifest kinds that have a test, and where it lives.
// A kind missing here is reported as skipped, so the manifest's coverage is
// visible in every test run.
var implemented = map[string]string{
	"clip_tokenizer":     "textenc/tokenizer_test.go",
	"clip_text":          "textenc/clip_golden_test.go",
	"single_file":        "weights/golden_test.go",
	"torch_randn":        "rng/golden_test.go",
	"scheduler":          "scheduler/golden_test.go",
	"scheduler_extra":    "scheduler/golden_test.go",
	"ksampler":           "scheduler/ksigma_golden_test.go",
	"sigmas":             "scheduler/ksigma_golden_test.go",
	"vae":                "vae/golden_test.go",
	"taesd":              "taesd/golden_test.go",
	"unet":               "unet/unet_test.go",
	"txt2img":            "ldm/golden_test.go",
	"img2img":            "ldm/golden_test.go",
	"lora":               "ldm/lora_golden_test.go",
	"controlnet":         "controlnet/golden_test.go",
	"controlnet_txt2img": "ldm/golden_test.go",
	"inpaint_txt2img":    "ldm/golden_test.go",
	"lora_txt2img":       "ldm/golden_test.go",
}

func TestEveryManifestKindIsCovered(t *testing.T) {
	m := Load(t)
	for _, c := range m.Cases {
		if _, ok := implemented[c.Kind]; ok {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Skipf("golden kind %q is not implemented yet", c.Kind)
		})
	}
}

func TestManifestParses(t *testing.T) {
	m := Load(t)
	if len(m.Cases) == 0 {
		t.Fatal("manifest has no cases")
	}
	for _, c := range m.Cases {
		if c.Name == "" || c.Kind == "" {
			t.Errorf("case without name or kind: %+v", c.Fields)
		}
	}
}
