package ldm_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/weights"
)

func tinyFolder(t *testing.T) string {
	t.Helper()
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "single_file" {
			return c.Path("reference")
		}
	}
	t.Skip("golden manifest has no single_file case (the tiny model)")
	return ""
}

// A LoRA written by the trainer (train.SaveLoRA) loads in the pipeline with
// every adapter as trained (the merge itself is checked against diffusers by
// TestGoldenLoRA), and a request applies it.
func TestLoRAFromTheTrainerRoundTrips(t *testing.T) {
	folder := tinyFolder(t)
	m, err := weights.OpenModel(folder, weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	uc := m.Components[weights.UNet]
	ctx := mlctx.New()
	if err := train.LoadComponent(ctx, train.UNetScope, uc.Source); err != nil {
		t.Fatal(err)
	}
	const rank, alpha = 4, 2.0
	lora, err := train.AddLoRA(ctx, train.UNetScope, rank, alpha, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Trained adapters: up is zero at the start, give it values.
	rnd := rand.New(rand.NewPCG(5, 6))
	ups := 0
	for v := range ctx.IterVariables() {
		if v.Name() != "lora_up" || !strings.HasPrefix(v.Scope(), train.LoRAScope+"/") {
			continue
		}
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(rnd.NormFloat64() * 0.05)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
		ups++
	}
	path := filepath.Join(t.TempDir(), "trained.safetensors")
	if err := lora.SaveLoRA(ctx, path); err != nil {
		t.Fatal(err)
	}

	p, err := ldm.Load(folder, ldm.LoadOptions{Backend: "go"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.LoadLoRA(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Adapters) != ups || ups == 0 || len(l.Skipped) != 0 {
		t.Fatalf("%d adapters (%d skipped), the trainer saved %d", len(l.Adapters), len(l.Skipped), ups)
	}
	for _, a := range l.Adapters {
		if a.Component != weights.UNet || a.Rank != rank || a.Scale != alpha/rank {
			t.Fatalf("%s: component %s rank %d scale %g, want unet %d %g", a.Key, a.Component, a.Rank, a.Scale, rank, alpha/rank)
		}
	}

	trained := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if scope, ok := strings.CutPrefix(v.Scope(), train.LoRAScope+"/"+weights.UNet+"/"); ok {
			trained[nn.ScopeToKey("/"+scope, "weight")+"."+v.Name()] = nn.Values(v.MustValue())
		}
	}
	for _, a := range l.Adapters {
		if !slices.Equal(a.Down, trained[a.Key+".lora_down"]) || !slices.Equal(a.Up, trained[a.Key+".lora_up"]) {
			t.Fatalf("%s: the loaded adapter is not the trained one", a.Key)
		}
	}

	req := ldm.Request{Prompt: "a red apple", Steps: 1, Seed: 1, LoRAs: []ldm.LoRASpec{{Path: path, Weight: 0.7}}}
	res, err := p.Generate(context.Background(), req, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := res[0].Infotext.Get("Lora hashes"); !strings.HasPrefix(h, "trained: ") {
		t.Errorf("Lora hashes = %q", h)
	}
}
