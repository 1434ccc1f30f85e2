package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

// TestDefaultModelGenerates runs the embedded model through the pipeline as
// `ldm generate "a red apple"` does: 20 steps at its native 64².
func TestDefaultModelGenerates(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	dir, err := models.Path()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ldm.Load(dir, ldm.LoadOptions{Backend: "go", Name: models.Name})
	if err != nil {
		t.Fatal(err)
	}
	if p.SampleSize() != 64 {
		t.Errorf("sample size %d, want 64", p.SampleSize())
	}
	for i := range 2 { // the second run is the warm cost a server pays
		start := time.Now()
		res, err := p.Generate(context.Background(), ldm.Request{Prompt: "a red apple", Steps: 20, Seed: 1}, ldm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("run %d: 20 steps at 64² in %v", i+1, time.Since(start))
		img := res[0].Image
		lo, hi := 255, 0
		for _, v := range img.Pix {
			lo, hi = min(lo, int(v)), max(hi, int(v))
		}
		if img.Bounds().Dx() != 64 || hi-lo < 32 {
			t.Errorf("image %v with values %d…%d: want a 64² picture, not a flat one", img.Bounds(), lo, hi)
		}
	}
}
