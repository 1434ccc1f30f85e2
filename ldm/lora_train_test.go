package ldm_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/unet"
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
// every adapter, and applying it gives the weights train.MergeLoRA gives.
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

	const w = 0.7
	req := ldm.Request{Prompt: "a red apple", Steps: 1, Seed: 1, LoRAs: []ldm.LoRASpec{{Path: path, Weight: w}}}
	res, err := p.Generate(context.Background(), req, ldm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := res[0].Infotext.Get("Lora hashes"); !strings.HasPrefix(h, "trained: ") {
		t.Errorf("Lora hashes = %q", h)
	}
	cfg, err := unet.ParseConfig(uc.Config)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.LoadWeights(uc.Source); err != nil {
		t.Fatal(err)
	}
	if merged, _, err := train.MergeLoRA(ref, path, w); err != nil || merged != ups {
		t.Fatalf("MergeLoRA: %d merged, %v", merged, err)
	}
	var worst float64
	for _, a := range l.Adapters {
		scope, name := nn.KeyToScope(a.Key)
		got := nn.Values(p.UNet.Ctx.GetVariableByScopeAndName(scope, name).MustValue())
		want := nn.Values(ref.Ctx.GetVariableByScopeAndName(scope, name).MustValue())
		for i := range got {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		}
	}
	if worst > 1e-6 {
		t.Errorf("pipeline weights differ from train.MergeLoRA's by up to %g", worst)
	}
}
