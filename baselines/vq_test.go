package baselines

import (
	"math"
	"testing"

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
