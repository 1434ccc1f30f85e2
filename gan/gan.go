// Package gan is the DCGAN baseline (Radford et al. 2016): a generator of
// upsampling convolutions with batch norm, ReLU and a tanh output, a
// discriminator of strided convolutions with batch norm and LeakyReLU, the
// binary cross-entropy losses, and alternating updates with two train.Trainer
// optimisers over one context (each trains only its own network's scope, so
// the generator's loss runs through the discriminator without moving it).
package gan

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/baselines"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// Config is the shape of both networks.
type Config struct {
	Size     int   `json:"size"`     // image side
	Z        int   `json:"z"`        // noise vector size
	Channels []int `json:"channels"` // discriminator channels per stride-2 level; the generator mirrors them
}

// Validate checks that the levels divide the image.
func (c Config) Validate() error {
	if c.Z <= 0 || len(c.Channels) == 0 || c.Size%(1<<len(c.Channels)) != 0 {
		return fmt.Errorf("gan: config %+v: need a noise size and levels that divide the image", c)
	}
	return nil
}

// GAN is a DCGAN under Scope ("/<scope>/generator", "/<scope>/discriminator").
type GAN struct {
	Config Config
	Scope  string
}

// BatchNorm normalises NHWC (or [B,C]) x with the statistics of the batch
// over every axis but the last, then scales and shifts (weight, bias [C]).
// Batch statistics are used at sampling too (no running averages): the
// generator is always run on full batches.
func BatchNorm(ctx *context.Context, x *Node, eps float64) *Node {
	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	c := x.Shape().Dim(-1)
	mean := ReduceAndKeep(x, ReduceMean, axes...)
	d := Sub(x, mean)
	v := ReduceAndKeep(Square(d), ReduceMean, axes...)
	y := Div(d, Sqrt(AddScalar(v, eps))) // Rsqrt has no gradient in GoMLX
	w := ExpandLeftToRank(nn.Param(ctx, x.Graph(), "weight", c), x.Rank())
	b := ExpandLeftToRank(nn.Param(ctx, x.Graph(), "bias", c), x.Rank())
	return Add(Mul(y, w), b)
}

// LeakyReLU is max(x, a·x) for 0 < a < 1.
func LeakyReLU(x *Node, a float64) *Node { return Max(x, MulScalar(x, a)) }

// DiscriminatorLoss is the binary cross-entropy of logits: real labelled 1,
// fake labelled 0, −ln D(x) − ln(1 − D(G(z))) as means over each batch.
func DiscriminatorLoss(realLogits, fakeLogits *Node) *Node {
	return Add(ReduceAllMean(Softplus(Neg(realLogits))), ReduceAllMean(Softplus(fakeLogits)))
}

// GeneratorLoss is the non-saturating generator loss −ln D(G(z)).
func GeneratorLoss(fakeLogits *Node) *Node { return ReduceAllMean(Softplus(Neg(fakeLogits))) }

// Generate maps noise [B,Z] to NCHW images in [-1,1].
func (m GAN) Generate(ctx *context.Context, z *Node) *Node {
	return generator(ctx.In(m.Scope).In("generator"), m.Config, z)
}

// Discriminate returns one logit per NCHW image, [B].
func (m GAN) Discriminate(ctx *context.Context, x *Node) *Node {
	return discriminator(ctx.In(m.Scope).In("discriminator"), m.Config, x)
}

func generator(ctx *context.Context, c Config, z *Node) *Node {
	l := len(c.Channels)
	g := c.Size >> l
	top := c.Channels[l-1]
	h := nn.Linear(ctx.In("fc"), z, g*g*top, false)
	h = Reshape(h, z.Shape().Dim(0), g, g, top)
	h = Max(BatchNorm(ctx.In("bn_fc"), h, 1e-5), ZerosLike(h))
	for i := l - 1; i >= 1; i-- {
		h = baselines.UpConv(ctx.In(fmt.Sprintf("up%d", i)), h, c.Channels[i-1])
		h = Max(BatchNorm(ctx.In(fmt.Sprintf("bn%d", i)), h, 1e-5), ZerosLike(h))
	}
	return baselines.ToNCHW(Tanh(baselines.UpConv(ctx.In("up0"), h, 3)))
}

func discriminator(ctx *context.Context, c Config, x *Node) *Node {
	h := baselines.ToNHWC(x)
	for i, ch := range c.Channels {
		h = nn.Conv2D(ctx.In(fmt.Sprintf("down%d", i)), h, nn.Conv2DOpts{Out: ch, Kernel: 3, Stride: 2, Pad: 1, NoBias: i > 0})
		if i > 0 { // DCGAN: no batch norm on the first layer
			h = BatchNorm(ctx.In(fmt.Sprintf("bn%d", i)), h, 1e-5)
		}
		h = LeakyReLU(h, 0.2)
	}
	h = Reshape(h, h.Shape().Dim(0), -1)
	return Reshape(nn.Linear(ctx.In("fc"), h, 1, true), -1)
}

// Init creates both networks' variables in ctx.
func (m GAN) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	return baselines.InitScope(backend, ctx, m.Scope, seed, func(c *context.Context, g *Graph) {
		x := generator(c.In("generator"), m.Config, Zeros(g, shapes.Make(nn.DType, 2, m.Config.Z)))
		discriminator(c.In("discriminator"), m.Config, x)
	})
}

// Trainers returns the discriminator's and the generator's optimisers over
// ctx, each with cfg (DCGAN: Adam lr 2e-4, β1 0.5).
func (m GAN) Trainers(backend backends.Backend, ctx *context.Context, cfg train.Config) (d, g *train.Trainer, err error) {
	d, err = train.New(backend, ctx, cfg, []string{"/" + m.Scope + "/discriminator"}, func(ctx *context.Context, in []*Node) *Node {
		fake := StopGradient(m.Generate(ctx, in[1]))
		return DiscriminatorLoss(m.Discriminate(ctx, in[0]), m.Discriminate(ctx, fake))
	})
	if err != nil {
		return nil, nil, err
	}
	g, err = train.New(backend, ctx, cfg, []string{"/" + m.Scope + "/generator"}, func(ctx *context.Context, in []*Node) *Node {
		return GeneratorLoss(m.Discriminate(ctx, m.Generate(ctx, in[0])))
	})
	return d, g, err
}

// Step is one alternating update: a discriminator step on real images
// (NCHW) and fake images from zD, then a generator step from zG.
func Step(d, g *train.Trainer, real, zD, zG *tensors.Tensor) (dLoss, gLoss float32, err error) {
	rd, err := d.TrainStep([][]any{{real, zD}})
	if err != nil {
		return 0, 0, fmt.Errorf("gan: discriminator step: %w", err)
	}
	rg, err := g.TrainStep([][]any{{zG}})
	if err != nil {
		return 0, 0, fmt.Errorf("gan: generator step: %w", err)
	}
	return rd.Loss, rg.Loss, nil
}
