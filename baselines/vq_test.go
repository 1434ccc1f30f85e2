package baselines

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// TestVQEMAStatistics checks the in-graph codebook statistics after real
// training steps: usage stays a distribution (it is an EMA of assignment
// shares), and with EMA updates every code is its cluster's smoothed mean
// embed_sum / cluster_size.
func TestVQEMAStatistics(t *testing.T) {
	b := goBackend(t)
	const k = 8
	m := VQVAE{Config: smallCfg, VQ: VQOpts{K: k, Beta: 0.25, EMA: 0.5}, Scope: "vq"}
	ctx := context.New()
	if err := m.Init(b, ctx, 3); err != nil {
		t.Fatal(err)
	}
	tr, err := train.New(b, ctx, smokeConfig(3), m.Trainable(), m.Loss())
	if err != nil {
		t.Fatal(err)
	}
	img := tensors.FromFlatDataAndDimensions(tinyImages(4), 4, 3, 16, 16)
	before := nn.Values(ctx.GetVariableByScopeAndName("/vq/quant", "codebook").MustValue())
	for range 3 {
		if _, err := tr.TrainStep([][]any{{img}}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(scope, name string) []float32 {
		return nn.Values(ctx.GetVariableByScopeAndName(scope, name).MustValue())
	}
	usage, cs, es, cb := get("/vq/stats", "usage"), get("/vq/stats", "cluster_size"), get("/vq/stats", "embed_sum"), get("/vq/quant", "codebook")
	sum := 0.0
	for _, u := range usage {
		sum += float64(u)
	}
	near(t, "Σ usage", sum, 1, 1e-5)
	total := 0.0
	for _, c := range cs {
		total += float64(c)
	}
	moved := 0.0
	d := smallCfg.Latent
	for i := range k {
		smoothed := (float64(cs[i]) + 1e-5) / (total + k*1e-5) * total
		for j := range d {
			near(t, "code = embed_sum / cluster_size", float64(cb[i*d+j]), float64(es[i*d+j])/smoothed, 1e-4)
			moved = math.Max(moved, math.Abs(float64(cb[i*d+j]-before[i*d+j])))
		}
	}
	if moved == 0 {
		t.Error("EMA updates did not move the codebook")
	}
}

// TestDeadCodeRestartsRaiseCodebookUsage trains the same VQ-VAE with and
// without restarts: with them, codes the encoder never picks are moved onto
// its outputs, so more codes are in use at the end.
func TestDeadCodeRestartsRaiseCodebookUsage(t *testing.T) {
	b := goBackend(t)
	const k, n = 32, 8
	img := tensors.FromFlatDataAndDimensions(tinyImages(n), n, 3, 16, 16)
	used := func(restart float64) int {
		m := VQVAE{Config: smallCfg, VQ: VQOpts{K: k, Beta: 0.25, EMA: 0.9, RestartBelow: restart, UsageDecay: 0.5}, Scope: "vq"}
		ctx := context.New()
		if err := m.Init(b, ctx, 1); err != nil {
			t.Fatal(err)
		}
		tr, err := train.New(b, ctx, smokeConfig(15), m.Trainable(), m.Loss())
		if err != nil {
			t.Fatal(err)
		}
		for range 15 {
			if _, err := tr.TrainStep([][]any{{img}}); err != nil {
				t.Fatal(err)
			}
		}
		rt := NewRuntime(b, ctx)
		out, err := rt.Run("codes", func(ctx *context.Context, in []*Node) []*Node {
			return []*Node{ConvertDType(m.Codes(ctx, in[0]), nn.DType)}
		}, img)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[float32]bool{}
		for _, c := range Floats(out[0]) {
			seen[c] = true
		}
		return len(seen)
	}
	without, with := used(0), used(0.5)
	t.Logf("codes used on %d images (%d cells): %d without restarts, %d with", n, n*16, without, with)
	if with <= without {
		t.Errorf("restarts did not raise usage: %d with, %d without", with, without)
	}
}
