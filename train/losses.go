package train

import (
	"fmt"

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
	// Perceptual and Adversarial are not implemented yet: non-zero is an error.
	Perceptual, Adversarial float64
}

// Validate rejects the terms this package does not implement.
func (o VAELossOpts) Validate() error {
	if o.Perceptual != 0 || o.Adversarial != 0 {
		return fmt.Errorf("the perceptual and adversarial VAE losses are not implemented yet")
	}
	if o.L1 == 0 && o.MSE == 0 {
		return fmt.Errorf("the VAE loss needs an L1 or MSE reconstruction weight")
	}
	return nil
}

// VAELoss is the KL-VAE training loss over the variables under VAEScope.
// Inputs: images [B,3,H,W] in [-1,1] (NCHW) and standard normal eps
// [B,latent,H/f,W/f] for the reparameterised sample.
func VAELoss(cfg vae.Config, o VAELossOpts) LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		x, eps := in[0], in[1]
		c := ctx.In(VAEScope[1:])
		mean, logvar, std := vae.Posterior(vae.Encode(c, cfg, x, nil))
		rec := vae.Decode(c, cfg, vae.Sample(mean, std, eps), nil)
		d := Sub(rec, x)
		var loss *Node
		add := func(t *Node, w float64) {
			if w == 0 {
				return
			}
			t = MulScalar(t, w)
			if loss == nil {
				loss = t
			} else {
				loss = Add(loss, t)
			}
		}
		add(ReduceAllMean(Abs(d)), o.L1)
		add(ReduceAllMean(Square(d)), o.MSE)
		if o.KL != 0 {
			b := float64(x.Shape().Dim(0))
			perImage := float64(x.Shape().Size()) / b
			kl := MulScalar(ReduceAllSum(Sub(Add(Square(mean), Exp(logvar)), OnePlus(logvar))), 0.5/b/perImage)
			add(kl, o.KL)
		}
		return loss
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
