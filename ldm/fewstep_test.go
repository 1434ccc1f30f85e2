package ldm_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
)

// TestFewStepGenerationEndToEnd runs the few-step uses on the golden tiny
// model: LCM with a LoRA applied through the LoRA path (as an LCM-LoRA is),
// TCD, and SD-Turbo style (1 step, trailing, CFG off), and checks what the
// infotext records. A LoRA must change the LCM image.
func TestFewStepGenerationEndToEnd(t *testing.T) {
	m := golden.Load(t)
	lora := filepath.Join(m.Dir, "lora", "tiny_lora_kohya.safetensors")
	// The LoRA folder lets the infotext's <lora:…> tag redraw the image.
	p, err := ldm.Load(filepath.Join(m.Dir, "tiny_sd15"), ldm.LoadOptions{Backend: "go", LoRADir: filepath.Dir(lora)})
	if err != nil {
		t.Fatal(err)
	}
	base := ldm.Request{Prompt: "a red square", Width: 32, Height: 32, Seed: 5, GuidanceScale: 1}
	for _, tc := range []struct {
		name     string
		edit     func(r *ldm.Request)
		contains []string
	}{
		{"LCM with LoRA", func(r *ldm.Request) {
			r.Sampler, r.Steps, r.LoRAs = "LCM", 4, []ldm.LoRASpec{{Path: lora, Weight: 1}}
		}, []string{"<lora:tiny_lora_kohya:1>", "Steps: 4, Sampler: LCM, CFG scale: 1,", "Lora hashes"}},
		{"LCMScheduler", func(r *ldm.Request) { r.Sampler, r.Steps = "LCMScheduler", 4 }, []string{"Sampler: LCMScheduler, CFG scale: 1,"}},
		{"TCD", func(r *ldm.Request) { r.Sampler, r.Steps, r.Eta = "TCD", 4, 0.3 }, []string{"Sampler: TCD, CFG scale: 1,", "Eta: 0.3"}},
		{"turbo Euler a trailing", func(r *ldm.Request) { r.Sampler, r.Schedule, r.Steps = "Euler a", "Trailing", 1 },
			[]string{"Steps: 1, Sampler: Euler a, Schedule type: SGM Uniform, CFG scale: 1,"}},
		{"turbo DDIM trailing", func(r *ldm.Request) { r.Sampler, r.Schedule, r.Steps = "DDIM", "Trailing", 2 },
			[]string{"Steps: 2, Sampler: DDIM, Schedule type: Trailing, CFG scale: 1,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.edit(&req)
			res, err := p.Generate(context.Background(), req, ldm.Options{})
			if err != nil {
				t.Fatal(err)
			}
			text := res[0].Infotext.String()
			for _, want := range tc.contains {
				if !strings.Contains(text, want) {
					t.Errorf("infotext %q lacks %q", text, want)
				}
			}
			back, err := ldm.ParseInfotext(text)
			if err != nil {
				t.Fatal(err)
			}
			redo, err := back.Request()
			if err != nil {
				t.Fatal(err)
			}
			redo.Width, redo.Height = req.Width, req.Height
			again, err := p.Generate(context.Background(), redo, ldm.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again[0].Image.Pix, res[0].Image.Pix) {
				t.Error("the infotext's parameters do not redraw the image")
			}
			if len(req.LoRAs) > 0 {
				req.LoRAs = nil
				plain, err := p.Generate(context.Background(), req, ldm.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(plain[0].Image.Pix, res[0].Image.Pix) {
					t.Error("the LoRA did not change the LCM image")
				}
			}
		})
	}
}
