package baselines

import (
	"math"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/train"
)

// GaussianKL is KL(N(mean, e^logvar) ‖ N(0, I)) summed over the last axis:
// ½ Σ (μ² + σ² − 1 − ln σ²). mean and logvar are [B,D]; the result is [B].
func GaussianKL(mean, logvar *Node) *Node {
	return MulScalar(ReduceSum(Sub(Add(Square(mean), Exp(logvar)), OnePlus(logvar)), -1), 0.5)
}

// Reparameterise draws z = μ + σ·ε with σ = e^{logvar/2} (Kingma & Welling
// 2014), so that gradients reach μ and logvar through a sample.
func Reparameterise(mean, logvar, eps *Node) *Node {
	return Add(mean, Mul(Exp(MulScalar(logvar, 0.5)), eps))
}

// GaussianNLL is −ln N(x; μ, σ²I) summed over an image: Σ (x−μ)²/(2σ²) +
// ½ ln(2πσ²) per value, for x and mu NCHW [B,…]; the result is [B].
func GaussianNLL(x, mu *Node, sigma float64) *Node {
	b := x.Shape().Dim(0)
	d := x.Shape().Size() / b
	sq := ReduceSum(Reshape(Square(Sub(x, mu)), b, d), 1)
	return AddScalar(MulScalar(sq, 1/(2*sigma*sigma)), float64(d)*0.5*math.Log(2*math.Pi*sigma*sigma))
}

// VAE is a Gaussian-encoder, Gaussian-decoder (fixed σ) variational
// autoencoder with a vector latent; Beta ≠ 1 makes it a β-VAE (Higgins et
// al. 2017).
type VAE struct {
	Config Config
	Beta   float64 `json:"beta"`
	// Sigma is the decoder's fixed standard deviation in [-1,1] units: it
	// sets the balance of reconstruction and KL, and the likelihood bound.
	Sigma float64 `json:"sigma"`
	Scope string  `json:"scope"`
}

// Posterior returns the encoder's mean and log-variance, [B,Latent] each.
func (m VAE) Posterior(ctx *context.Context, x *Node) (mean, logvar *Node) {
	h := VectorEncoder(ctx.In(m.Scope).In("encoder"), m.Config, x, 2*m.Config.Latent)
	l := m.Config.Latent
	return Slice(h, AxisRange(), AxisRange(0, l)), ClipScalar(Slice(h, AxisRange(), AxisRange(l, 2*l)), -20, 10)
}

// Decode maps latents to the decoder's mean image (NCHW).
func (m VAE) Decode(ctx *context.Context, z *Node) *Node {
	return VectorDecoder(ctx.In(m.Scope).In("decoder"), m.Config, z)
}

// Init creates the model's variables in ctx.
func (m VAE) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	return InitScope(backend, ctx, m.Scope, seed, func(c *context.Context, g *Graph) {
		s := m.Config.Size
		h := VectorEncoder(c.In("encoder"), m.Config, Zeros(g, shapeF(1, 3, s, s)), 2*m.Config.Latent)
		VectorDecoder(c.In("decoder"), m.Config, Slice(h, AxisRange(), AxisRange(0, m.Config.Latent)))
	})
}

// Terms returns each image's reconstruction NLL and KL in nats, [B] each.
// Inputs: x NCHW in [-1,1] and eps [B,Latent] standard normal.
func (m VAE) Terms(ctx *context.Context, x, eps *Node) (rec, kl *Node) {
	mean, logvar := m.Posterior(ctx, x)
	out := m.Decode(ctx, Reparameterise(mean, logvar, eps))
	return GaussianNLL(x, out, m.Sigma), GaussianKL(mean, logvar)
}

// Loss is the negative β-ELBO per image value (nats/dim), so that its scale
// does not depend on the image size. Inputs: x and eps as for Terms.
func (m VAE) Loss() train.LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		rec, kl := m.Terms(ctx, in[0], in[1])
		dims := float64(in[0].Shape().Size() / in[0].Shape().Dim(0))
		return MulScalar(ReduceAllMean(Add(rec, MulScalar(kl, m.Beta))), 1/dims)
	}
}
