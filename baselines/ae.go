package baselines

import (
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/train"
)

// Corruption is the input noise of a denoising autoencoder (Vincent et al.
// 2008): additive Gaussian noise of std Noise and masking of each value with
// probability Dropout. The zero value is a plain autoencoder.
type Corruption struct {
	Noise   float64 `json:"noise"`
	Dropout float64 `json:"dropout"`
}

// Apply returns a corrupted copy of x (values in [-1,1]; a dropped value
// becomes 0, the middle grey).
func (c Corruption) Apply(r *rand.Rand, x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		if c.Dropout > 0 && r.Float64() < c.Dropout {
			continue
		}
		if c.Noise > 0 {
			v += float32(c.Noise * r.NormFloat64())
		}
		out[i] = v
	}
	return out
}

// AE is a deterministic autoencoder with a vector bottleneck, trained on
// MSE; with a Corruption it is a denoising autoencoder.
type AE struct {
	Config  Config
	Corrupt Corruption
	Scope   string // "ae" or "dae"
}

// Encode is the feature extractor: NCHW images → [B,Latent].
func (m AE) Encode(ctx *context.Context, x *Node) *Node {
	return VectorEncoder(ctx.In(m.Scope).In("encoder"), m.Config, x, m.Config.Latent)
}

// Decode maps latents to NCHW images.
func (m AE) Decode(ctx *context.Context, z *Node) *Node {
	return VectorDecoder(ctx.In(m.Scope).In("decoder"), m.Config, z)
}

// Init creates the model's variables in ctx.
func (m AE) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	return InitScope(backend, ctx, m.Scope, seed, func(c *context.Context, g *Graph) {
		s := m.Config.Size
		VectorDecoder(c.In("decoder"), m.Config, VectorEncoder(c.In("encoder"), m.Config, Zeros(g, shapeF(1, 3, s, s)), m.Config.Latent))
	})
}

// Loss is the reconstruction MSE of the clean target from the (possibly
// corrupted) input. Inputs: input and target, NCHW [B,3,S,S] in [-1,1].
func (m AE) Loss() train.LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		return MSE(m.Decode(ctx, m.Encode(ctx, in[0])), in[1])
	}
}

// PerImageError is the anomaly score: each image's mean squared
// reconstruction error. Input: NCHW images; output [B].
func (m AE) PerImageError(ctx *context.Context, x *Node) *Node {
	return ReduceMean(Reshape(Square(Sub(m.Decode(ctx, m.Encode(ctx, x)), x)), x.Shape().Dim(0), -1), 1)
}
