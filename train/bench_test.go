package train

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/vae"
)

// BenchmarkVAEStep is one AdamW step of the small VAE on a batch of 8.
func BenchmarkVAEStep(b *testing.B) {
	for _, size := range []int{32, 64} {
		b.Run(map[int]string{32: "32px", 64: "64px"}[size], func(b *testing.B) {
			backend, err := nn.NewBackend("go")
			if err != nil {
				b.Fatal(err)
			}
			cfg := SmallVAEConfig()
			cfg.BlockOutChannels = []int{16, 32, 32}
			cfg.NormNumGroups = 8
			m, _ := vae.New(cfg)
			exp, err := m.ExpectedKeys()
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.New()
			if err := InitComponent(ctx, VAEScope, exp, 1); err != nil {
				b.Fatal(err)
			}
			c := DefaultConfig()
			tr, err := New(backend, ctx, c, []string{VAEScope}, VAELoss(cfg, VAELossOpts{L1: 1, KL: 1e-6}, nil))
			if err != nil {
				b.Fatal(err)
			}
			const bs = 8
			r := StepRand(1, 0, 0)
			x := tensors.FromFlatDataAndDimensions(Normal(r, bs*3*size*size), bs, 3, size, size)
			eps := tensors.FromFlatDataAndDimensions(Normal(r, bs*4*size*size/16), bs, 4, size/4, size/4)
			if _, err := tr.TrainStep([][]any{{x, eps}}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := tr.TrainStep([][]any{{x, eps}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bs*b.N)/b.Elapsed().Seconds(), "img/s")
		})
	}
}
