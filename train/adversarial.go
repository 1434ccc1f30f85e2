package train

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// DiscScope is where a VAE run keeps its discriminator. Its weights and
// its optimiser's moments are ordinary variables of the run's context, so
// every checkpoint holds them and --resume continues the game exactly.
const DiscScope = "/discriminator"

// DiscConfig is the PatchGAN discriminator of the adversarial VAE term and
// its optimiser.
type DiscConfig struct {
	// Channels are the widths of the 4×4 stride-2 convolutions; the map of
	// logits has H/2^len × W/2^len patches.
	Channels []int `json:"channels"`
	// Groups is the GroupNorm group count of every convolution but the
	// first (0: no normalisation).
	Groups int `json:"groups"`
	// LR is the discriminator's Adam learning rate (constant).
	LR float64 `json:"lr"`
}

// DefaultDiscConfig is three levels of 32/64/128 channels with GroupNorm(8),
// learning rate 2e-4.
func DefaultDiscConfig() DiscConfig {
	return DiscConfig{Channels: []int{32, 64, 128}, Groups: 8, LR: 2e-4}
}

func (c DiscConfig) validate(size int) error {
	if len(c.Channels) == 0 {
		return fmt.Errorf("discriminator: no channels")
	}
	for _, ch := range c.Channels {
		if ch < 1 || (c.Groups > 0 && ch%c.Groups != 0) {
			return fmt.Errorf("discriminator channels %v: each must be a positive multiple of the groups (%d)", c.Channels, c.Groups)
		}
	}
	if c.Groups < 0 {
		return fmt.Errorf("discriminator groups %d must be ≥ 0", c.Groups)
	}
	if c.LR <= 0 {
		return fmt.Errorf("discriminator learning rate %g must be positive", c.LR)
	}
	if size>>len(c.Channels) < 1 || size%(1<<len(c.Channels)) != 0 {
		return fmt.Errorf("discriminator: %d stride-2 levels do not divide a %d² training image", len(c.Channels), size)
	}
	return nil
}

// optimiser is the discriminator's Adam: β (0.5, 0.9) as in Esser et al.'s
// taming-transformers, no weight decay, no EMA, constant learning rate; the
// clipping and accumulation of the VAE's optimiser.
func (c DiscConfig) optimiser(vae Config) Config {
	return Config{LR: c.LR, MinLRFrac: 1, Steps: 1, Beta1: 0.5, Beta2: 0.9, Eps: 1e-8,
		ClipNorm: vae.ClipNorm, Accum: vae.Accum}
}

// Discriminator is a PatchGAN (Isola et al. 2017; the NLayerDiscriminator of
// taming-transformers without its stride-1 levels): 4×4 stride-2
// convolutions with LeakyReLU 0.2 (GroupNorm before it on all but the
// first), then a 3×3 convolution to one logit per patch. x is NCHW in
// [-1, 1]; the logits are [B, H/2^n, W/2^n].
func Discriminator(ctx *context.Context, c DiscConfig, x *Node) *Node {
	h := Transpose(Transpose(x, 1, 2), 2, 3) // NHWC
	for i, ch := range c.Channels {
		l := ctx.In(fmt.Sprintf("down%d", i))
		h = nn.Conv2D(l.In("conv"), h, nn.Conv2DOpts{Out: ch, Kernel: 4, Stride: 2, Pad: 1, NoBias: i > 0 && c.Groups > 0})
		if i > 0 && c.Groups > 0 {
			h = nn.GroupNorm(l.In("norm"), h, c.Groups, 1e-5)
		}
		h = Max(h, MulScalar(h, 0.2))
	}
	h = nn.Conv2D(ctx.In("out"), h, nn.Conv2DOpts{Out: 1, Kernel: 3, Pad: 1})
	d := h.Shape().Dimensions
	return Reshape(h, d[0], d[1], d[2])
}

// initDiscriminator creates the discriminator's variables with the
// initialisation of InitComponent.
func initDiscriminator(backend backends.Backend, ctx *context.Context, c DiscConfig, seed uint64) error {
	expected, err := nn.ExpectedKeys(backend, func(ctx *context.Context, g *Graph) {
		Discriminator(ctx, c, Zeros(g, shapes.Make(nn.DType, 1, 3, 1<<len(c.Channels), 1<<len(c.Channels))))
	})
	if err != nil {
		return err
	}
	return InitComponent(ctx, DiscScope, expected, seed)
}

// HingeDiscLoss is the discriminator's hinge loss as taming-transformers
// writes it: ½·(mean relu(1 − D(x)) + mean relu(1 + D(x̂))) over every
// patch logit of the real and the reconstructed images.
func HingeDiscLoss(real, fake *Node) *Node {
	relu := func(x *Node) *Node { return Max(x, ZerosLike(x)) }
	return MulScalar(Add(ReduceAllMean(relu(OneMinus(real))), ReduceAllMean(relu(OnePlus(fake)))), 0.5)
}

// GeneratorAdvLoss is the generator term −mean D(x̂).
func GeneratorAdvLoss(fake *Node) *Node { return Neg(ReduceAllMean(fake)) }
