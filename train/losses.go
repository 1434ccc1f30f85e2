package train

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
)

// VAELossOpts weighs the terms of the KL-VAE loss.
type VAELossOpts struct {
	L1, MSE float64 // reconstruction weights (per-pixel means)
	// KL weighs the posterior's KL divergence to N(0, I) summed over an
	// image's latents and divided by its pixel values, which is the
	// taming-transformers / LDM convention (their kl_weight 1e-6 applies
	// to per-image sums of both terms).
	KL float64
	// Perceptual weighs PerceptualDistance between the input and the
	// reconstruction in the activations of a frozen network, the one named
	// PerceptualNet (the run's builder supplies it as a FeatureNet).
	Perceptual    float64
	PerceptualNet string `json:",omitempty"`
	// PerceptualSHA256 is the network's Digest, set when the run starts.
	PerceptualSHA256 string `json:",omitempty"`
	// Adversarial weighs the generator term −mean D(x̂) of a PatchGAN
	// discriminator (Disc) from optimiser step DiscStart (0-based) on; the
	// discriminator is trained with the hinge loss from the same step, one
	// update after every VAE update. With AdaptiveWeight the term is also
	// scaled by Esser et al.'s adaptive weight (see adaptiveWeight);
	// otherwise the weight is fixed.
	Adversarial    float64
	DiscStart      int        `json:",omitempty"`
	Disc           DiscConfig `json:",omitempty"`
	AdaptiveWeight bool       `json:",omitempty"`
}

// Validate reports a weight or setting that cannot work. steps is the
// length of the run: a discriminator that would start at or after it is an
// error, since the term would never be used.
func (o VAELossOpts) Validate(steps int) error {
	for _, w := range []struct {
		name string
		v    float64
	}{{"L1", o.L1}, {"MSE", o.MSE}, {"KL", o.KL}, {"perceptual", o.Perceptual}, {"adversarial", o.Adversarial}} {
		if w.v < 0 || math.IsNaN(w.v) || math.IsInf(w.v, 0) {
			return fmt.Errorf("the %s loss weight %g must be a finite number ≥ 0", w.name, w.v)
		}
	}
	if o.L1 == 0 && o.MSE == 0 {
		return fmt.Errorf("the VAE loss needs an L1 or MSE reconstruction weight")
	}
	if o.Perceptual > 0 && o.PerceptualNet == "" {
		return fmt.Errorf("the perceptual loss needs a feature network")
	}
	if o.Adversarial > 0 {
		if o.DiscStart < 0 {
			return fmt.Errorf("discriminator start %d must be ≥ 0", o.DiscStart)
		}
		if o.DiscStart >= steps {
			return fmt.Errorf("discriminator start %d is not before the last step (%d steps): the adversarial term would never be used", o.DiscStart, steps)
		}
	}
	return nil
}

// VAELoss is the KL-VAE training loss over the variables under VAEScope.
// Inputs: images [B,3,H,W] in [-1,1] (NCHW), standard normal eps
// [B,latent,H/f,W/f] for the reparameterised sample and, with an
// adversarial weight, a scalar gate (0 before DiscStart, 1 from it; see
// VAETrainer.Batch). net is the frozen network of the perceptual term
// (nil without one), loaded under FrozenScope.
func VAELoss(cfg vae.Config, o VAELossOpts, net *FeatureNet) LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		x, eps := in[0], in[1]
		rec, mean, logvar := vaeForward(ctx, cfg, x, eps)
		d := Sub(rec, x)
		var loss, recLoss *Node // recLoss: the reconstruction terms, for the adaptive weight
		add := func(t *Node, w float64, reconstruction bool) {
			if w == 0 {
				return
			}
			t = MulScalar(t, w)
			loss = plus(loss, t)
			if reconstruction {
				recLoss = plus(recLoss, t)
			}
		}
		add(ReduceAllMean(Abs(d)), o.L1, true)
		add(ReduceAllMean(Square(d)), o.MSE, true)
		if o.KL != 0 {
			b := float64(x.Shape().Dim(0))
			perImage := float64(x.Shape().Size()) / b
			kl := MulScalar(ReduceAllSum(Sub(Add(Square(mean), Exp(logvar)), OnePlus(logvar))), 0.5/b/perImage)
			add(kl, o.KL, false)
		}
		if o.Perceptual != 0 {
			add(perceptualTerm(ctx, net, x, rec), o.Perceptual, true)
		}
		if o.Adversarial != 0 {
			g := GeneratorAdvLoss(Discriminator(ctx.InAbsPath(DiscScope), o.Disc, rec))
			if o.AdaptiveWeight {
				last := ctx.InAbsPath(VAEScope + "/decoder/conv_out").GetVariable("weight").ValueGraph(x.Graph())
				g = Mul(adaptiveWeight(recLoss, g, last), g)
			}
			add(Mul(Reshape(in[2]), g), o.Adversarial, false)
		}
		return loss
	}
}

// plus is a + b, where a nil a is 0.
func plus(a, b *Node) *Node {
	if a == nil {
		return b
	}
	return Add(a, b)
}

// adaptiveWeight is Esser et al.'s (taming-transformers) balance between
// the reconstruction and adversarial terms: ‖∇_last rec‖ / (‖∇_last adv‖ +
// 1e-4) clamped to [0, 1e4], where last is the decoder's output
// convolution kernel, so that the adversarial gradient reaching the decoder
// is as large as the reconstruction's. It is a constant for the optimiser
// (no gradient flows through it).
func adaptiveWeight(rec, adv, last *Node) *Node {
	gr := Gradient(rec, last)[0]
	ga := Gradient(adv, last)[0]
	norm := func(x *Node) *Node { return Sqrt(ReduceAllSum(Square(x))) }
	w := Div(norm(gr), AddScalar(norm(ga), 1e-4))
	return StopGradient(ClipScalar(w, 0, 1e4))
}

// vaeForward encodes x, samples the posterior with eps and decodes.
func vaeForward(ctx *context.Context, cfg vae.Config, x, eps *Node) (rec, mean, logvar *Node) {
	c := ctx.InAbsPath(VAEScope)
	mean, logvar, std := vae.Posterior(vae.Encode(c, cfg, x, nil))
	return vae.Decode(c, cfg, vae.Sample(mean, std, eps), nil), mean, logvar
}

// discLoss is the discriminator's loss on the inputs of VAELoss: the hinge
// loss of real images against their reconstructions by the current VAE
// (sampled with the same eps; no gradient reaches the VAE).
func discLoss(cfg vae.Config, o VAELossOpts) LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		x, eps := in[0], in[1]
		rec, _, _ := vaeForward(ctx, cfg, x, eps)
		d := ctx.InAbsPath(DiscScope)
		return HingeDiscLoss(Discriminator(d, o.Disc, x), Discriminator(d, o.Disc, StopGradient(rec)))
	}
}

// LDMLoss is the latent-diffusion loss: mean squared error between the
// U-Net's prediction and the target (the noise for ε-prediction, the velocity
// for v-prediction; the caller draws both, see LDMBatch). Inputs: noisy
// latents [B,C,h,w], timesteps float32 [B], token ids int32 [B,T] and the
// target [B,C,h,w]. The text encoder under TextScope runs inside the graph;
// it learns when it is among the trainer's trainable scopes.
func LDMLoss(u *unet.Model, text *textenc.CLIPTextModel) LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		noisy, t, ids, target := in[0], in[1], in[2], in[3]
		ehs := text.Forward(ctx.In(TextScope[1:]), ids, 0).PromptEmbeds
		pred := u.Apply(ctx.In(UNetScope[1:]), noisy, t, ehs)
		return ReduceAllMean(Square(Sub(pred, target)))
	}
}
