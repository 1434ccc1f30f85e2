package baselines

import (
	stdctx "context"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/train"
)

// tinyImages is n 16×16 NCHW images of one coloured square each on grey.
func tinyImages(n int) []float32 {
	const s = 16
	r := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, n*3*s*s)
	for i := range n {
		y0, x0, w := r.IntN(8), r.IntN(8), 4+r.IntN(5)
		col := []float32{float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1), float32(r.Float64()*2 - 1)}
		for c := range 3 {
			for y := range s {
				for xx := range s {
					v := float32(-0.2)
					if y >= y0 && y < y0+w && xx >= x0 && xx < x0+w {
						v = col[c]
					}
					x[((i*3+c)*s+y)*s+xx] = v
				}
			}
		}
	}
	return x
}

func smokeConfig(steps int) train.Config {
	c := train.DefaultConfig()
	c.LR, c.WarmupSteps, c.Steps, c.EMADecay, c.WeightDecay = 3e-3, 0, steps, 0, 0
	return c
}

// trainAndCheck runs steps and asserts that the mean of the last three
// losses is below frac of the first three.
func trainAndCheck(t *testing.T, tr *train.Trainer, steps int, frac float32, batch func(step int) []any) {
	t.Helper()
	err := tr.Loop(stdctx.Background(), steps, func(step int) ([][]any, error) { return [][]any{batch(step)}, nil }, train.LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := tr.Losses
	first, last := (l[0]+l[1]+l[2])/3, (l[len(l)-1]+l[len(l)-2]+l[len(l)-3])/3
	t.Logf("loss %.4f → %.4f over %d steps", first, last, steps)
	if !(last < frac*first) {
		t.Errorf("loss went from %.4f to %.4f, want below %.2f×", first, last, frac)
	}
}

// initLosser is a baseline model: variables initialised into a context,
// and a training loss.
type initLosser interface {
	Init(backend backends.Backend, ctx *context.Context, seed uint64) error
	Loss() train.LossFn
}

// smokeTrainer initialises m (seed 1) in a fresh context and returns a
// trainer of the given scopes with smokeConfig(steps).
func smokeTrainer(t *testing.T, b backends.Backend, steps int, m initLosser, scopes []string) *train.Trainer {
	t.Helper()
	ctx := context.New()
	if err := m.Init(b, ctx, 1); err != nil {
		t.Fatal(err)
	}
	tr, err := train.New(b, ctx, smokeConfig(steps), scopes, m.Loss())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

var smallCfg = Config{Size: 16, Channels: []int{8, 16}, Latent: 8}

func TestTrainingLowersLoss(t *testing.T) {
	const n, s, steps = 8, 16, 40
	b := goBackend(t)
	x := tinyImages(n)
	img := tensors.FromFlatDataAndDimensions(x, n, 3, s, s)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"autoencoder", func(t *testing.T) {
			m := AE{Config: smallCfg, Scope: "ae"}
			tr := smokeTrainer(t, b, steps, m, []string{"/ae"})
			trainAndCheck(t, tr, steps, 0.7, func(int) []any { return []any{img, img} })
		}},
		{"denoising autoencoder", func(t *testing.T) {
			m := AE{Config: smallCfg, Scope: "dae", Corrupt: Corruption{Noise: 0.2, Dropout: 0.1}}
			tr := smokeTrainer(t, b, steps, m, []string{"/dae"})
			trainAndCheck(t, tr, steps, 0.7, func(step int) []any {
				r := train.StepRand(1, step, 0)
				return []any{tensors.FromFlatDataAndDimensions(m.Corrupt.Apply(r, x), n, 3, s, s), img}
			})
		}},
		{"VAE", func(t *testing.T) {
			m := VAE{Config: smallCfg, Beta: 1, Sigma: 0.1, Scope: "vae"}
			tr := smokeTrainer(t, b, steps, m, []string{"/vae"})
			trainAndCheck(t, tr, steps, 0.7, func(step int) []any {
				eps := train.Normal(train.StepRand(1, step, 0), n*smallCfg.Latent)
				return []any{img, tensors.FromFlatDataAndDimensions(eps, n, smallCfg.Latent)}
			})
		}},
		{"VQ-VAE with EMA codebook and restarts", func(t *testing.T) {
			m := VQVAE{Config: smallCfg, VQ: VQOpts{K: 16, Beta: 0.25, EMA: 0.9, RestartBelow: 0.1}, Scope: "vq"}
			tr := smokeTrainer(t, b, steps, m, m.Trainable())
			trainAndCheck(t, tr, steps, 0.8, func(int) []any { return []any{img} })
		}},
		{"VQ-VAE with gradient codebook", func(t *testing.T) {
			m := VQVAE{Config: smallCfg, VQ: VQOpts{K: 16, Beta: 0.25}, Scope: "vq"}
			tr := smokeTrainer(t, b, steps, m, m.Trainable())
			trainAndCheck(t, tr, steps, 0.8, func(int) []any { return []any{img} })
		}},
		{"code prior", func(t *testing.T) {
			p := Prior{K: 8, T: 16, Width: 16, Layers: 1, Heads: 2, Scope: "prior"}
			tr := smokeTrainer(t, b, steps, p, []string{"/prior"})
			// Two fixed sequences: learnable far below ln 8.
			codes := make([]int32, 2*16)
			for i := range codes {
				codes[i] = int32((i * (1 + i/16)) % 8)
			}
			tt := tensors.FromFlatDataAndDimensions(codes, 2, 16)
			trainAndCheck(t, tr, steps, 0.5, func(int) []any { return []any{tt} })
		}},
		{"pixel DDPM", func(t *testing.T) {
			m, err := NewDDPM(PixelUNetConfig(s, 16, 32), 100, "ddpm")
			if err != nil {
				t.Fatal(err)
			}
			tr := smokeTrainer(t, b, steps, m, []string{"/ddpm"})
			trainAndCheck(t, tr, steps, 0.8, func(step int) []any {
				xt, ts, eps, err := m.Batch(train.StepRand(1, step, 0), x, n, s)
				if err != nil {
					t.Fatal(err)
				}
				return m.Inputs(xt, ts, eps, n, s)
			})
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}
