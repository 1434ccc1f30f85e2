package baselines

import (
	stdctx "context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/train"
	"github.com/ldm-project/ldm/unet"
)

// PixelUNetConfig is the LDM's small U-Net (three levels, 32/64/64
// channels by default, one ResNet each) on RGB pixels instead of latents,
// unconditional: no attention blocks and no mid block, since there is no
// context to attend to and self-attention at pixel resolution would dominate
// a CPU budget. channels, when given, replaces block_out_channels (GroupNorm
// uses 16 groups, or 8 when the first level has fewer than 32 channels).
func PixelUNetConfig(size int, channels ...int) unet.Config {
	c := unet.DefaultConfig()
	c.SampleSize = size
	c.InChannels, c.OutChannels = 3, 3
	c.BlockOutChannels = []int{32, 64, 64}
	if len(channels) > 0 {
		c.BlockOutChannels = channels
	}
	n := len(c.BlockOutChannels)
	c.DownBlockTypes = make([]string, n)
	c.UpBlockTypes = make([]string, n)
	for i := range n {
		c.DownBlockTypes[i], c.UpBlockTypes[i] = "DownBlock2D", "UpBlock2D"
	}
	c.MidBlockType = nil
	c.LayersPerBlock = unet.IntList{1}
	c.CrossAttentionDim = unet.IntList{ddpmContextDim}
	c.AttentionHeadDim = unet.IntList{4}
	g := 16
	if c.BlockOutChannels[0] < 32 {
		g = 8
	}
	c.NormNumGroups = &g
	return c
}

// ddpmContextDim is the width of the (zero, unused) text context the
// U-Net's signature asks for.
const ddpmContextDim = 8

// DDPM is the pixel-space denoising diffusion model of Ho et al. (2020):
// the simplified ε objective and ancestral sampling.
type DDPM struct {
	UNet     *unet.Model
	Schedule *scheduler.Schedule
	Scope    string
}

// NewDDPM builds the model for a U-Net config and a linear β schedule of
// steps training timesteps from 1e-4 to 0.02·1000/steps (Ho et al.'s
// schedule, stretched so that fewer steps reach the same final noise).
func NewDDPM(cfg unet.Config, steps int, scope string) (*DDPM, error) {
	u, err := unet.New(cfg)
	if err != nil {
		return nil, err
	}
	sc, err := scheduler.DefaultConfig(scheduler.ClassDDPM)
	if err != nil {
		return nil, err
	}
	sc.NumTrainTimesteps = steps
	sc.BetaSchedule = "linear"
	sc.BetaStart = 1e-4 * 1000 / float64(steps)
	sc.BetaEnd = math.Min(0.02*1000/float64(steps), 0.999)
	s, err := scheduler.NewSchedule(sc)
	if err != nil {
		return nil, err
	}
	return &DDPM{UNet: u, Schedule: s, Scope: scope}, nil
}

// Init creates the U-Net's variables under the model's scope.
func (m *DDPM) Init(backend backends.Backend, ctx *context.Context, seed uint64) error {
	keys, err := m.UNet.ExpectedKeys()
	if err != nil {
		return err
	}
	return train.InitComponent(ctx, "/"+m.Scope, keys, seed)
}

// Eps is the U-Net's noise prediction for noisy NCHW x_t at float32
// timesteps t [B].
func (m *DDPM) Eps(ctx *context.Context, xt, t *Node) *Node {
	b := xt.Shape().Dim(0)
	ehs := Zeros(xt.Graph(), shapeF(b, 1, ddpmContextDim))
	return m.UNet.Apply(ctx.In(m.Scope), xt, t, ehs)
}

// EpsLoss is the simplified objective ‖ε − ε̂‖² (mean over values).
func EpsLoss(eps, pred *Node) *Node { return MSE(pred, eps) }

// Loss is EpsLoss of the U-Net. Inputs: x_t NCHW, t float32 [B], ε NCHW
// (drawn by Batch).
func (m *DDPM) Loss() train.LossFn {
	return func(ctx *context.Context, in []*Node) *Node {
		return EpsLoss(in[2], m.Eps(ctx, in[0], in[1]))
	}
}

// Batch draws a training batch from clean images x0 (n back to back):
// uniform timesteps, standard normal ε and x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε.
func (m *DDPM) Batch(r *rand.Rand, x0 []float32, n, size int) (xt []float32, ts []float32, eps []float32, err error) {
	eps = train.Normal(r, len(x0))
	ti := make([]int, n)
	ts = make([]float32, n)
	for i := range ti {
		ti[i] = r.IntN(len(m.Schedule.Betas))
		ts[i] = float32(ti[i])
	}
	xt, err = m.Schedule.AddNoiseBatch(x0, eps, ti)
	return xt, ts, eps, err
}

// Inputs packs a batch as the Loss's inputs.
func (m *DDPM) Inputs(xt, ts, eps []float32, n, size int) []any {
	return []any{tensors.FromFlatDataAndDimensions(xt, n, 3, size, size), tensors.FromFlatDataAndDimensions(ts, n),
		tensors.FromFlatDataAndDimensions(eps, n, 3, size, size)}
}

// Sample runs ancestral sampling with the U-Net; see Ancestral.
func (m *DDPM) Sample(ctx stdctx.Context, rt *Runtime, r *rand.Rand, n, size int) ([]float32, error) {
	fn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Eps(ctx, in[0], in[1])} }
	return m.Ancestral(ctx, func(x []float32, t int) ([]float32, error) {
		ts := make([]float32, n)
		for i := range ts {
			ts[i] = float32(t)
		}
		out, err := rt.Run("ddpm_eps", fn, tensors.FromFlatDataAndDimensions(x, n, 3, size, size), tensors.FromFlatDataAndDimensions(ts, n))
		if err != nil {
			return nil, err
		}
		return Floats(out[0]), nil
	}, r, n*3*size*size)
}

// Ancestral runs ancestral sampling (Ho et al. 2020, algorithm 2) of dims
// values from pure noise through every training timestep with the noise
// predictor eps, using the posterior variance
// β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t, and clips the result to [-1,1]. It stops
// with ctx's error when ctx is cancelled.
func (m *DDPM) Ancestral(ctx stdctx.Context, eps func(x []float32, t int) ([]float32, error), r *rand.Rand, dims int) ([]float32, error) {
	x := train.Normal(r, dims)
	s := m.Schedule
	for t := len(s.Betas) - 1; t >= 0; t-- {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := eps(x, t)
		if err != nil {
			return nil, fmt.Errorf("ddpm step %d: %w", t, err)
		}
		beta, ab := float64(s.Betas[t]), float64(s.AlphasCumprod[t])
		c1 := 1 / math.Sqrt(1-beta)
		c2 := beta / math.Sqrt(1-ab)
		sigma := 0.0
		if t > 0 {
			sigma = math.Sqrt((1 - float64(s.AlphasCumprod[t-1])) / (1 - ab) * beta)
		}
		for i := range x {
			v := c1 * (float64(x[i]) - c2*float64(e[i]))
			if sigma > 0 {
				v += sigma * r.NormFloat64()
			}
			x[i] = float32(v)
		}
	}
	for i, v := range x {
		x[i] = max(-1, min(1, v))
	}
	return x, nil
}

// NLL is the variational bound on −ln p(x0) in nats, per image (Ho et al.
// 2020, eq. 5), for n images x0 back to back with values on the 8-bit grid
// in [-1,1]: the prior term KL(q(x_T|x0) ‖ N(0,I)), every denoising term
// KL(q(x_{t−1}|x_t,x0) ‖ p(x_{t−1}|x_t)) (one x_t sample each, variance
// β̃_t, the sampler's) and the discretised Gaussian decoder −ln p(x0|x_1)
// (variance β_1, bins of width 2/255, open at ±1). Since the decoder gives bin
// probabilities, bits/dim is the result / (dims · ln 2) with no offset.
// It costs one eps call per training timestep.
func (m *DDPM) NLL(ctx stdctx.Context, eps func(x []float32, t int) ([]float32, error), x0 []float32, n int, r *rand.Rand) ([]float64, error) {
	s := m.Schedule
	nT := len(s.Betas)
	per := len(x0) / n
	total := make([]float64, n)
	// Prior term.
	abT := float64(s.AlphasCumprod[nT-1])
	for i, v := range x0 {
		mean, vr := math.Sqrt(abT)*float64(v), 1-abT
		total[i/per] += 0.5 * (-math.Log(vr) + vr + mean*mean - 1)
	}
	for t := nT - 1; t >= 0; t-- {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		noise := train.Normal(r, len(x0))
		xt, err := s.AddNoise(x0, noise, t)
		if err != nil {
			return nil, err
		}
		e, err := eps(xt, t)
		if err != nil {
			return nil, fmt.Errorf("ddpm bound step %d: %w", t, err)
		}
		beta, ab := float64(s.Betas[t]), float64(s.AlphasCumprod[t])
		alpha := 1 - beta
		for i, v := range x0 {
			mu := (float64(xt[i]) - beta/math.Sqrt(1-ab)*float64(e[i])) / math.Sqrt(alpha)
			if t > 0 {
				abPrev := float64(s.AlphasCumprod[t-1])
				post := math.Sqrt(abPrev)*beta/(1-ab)*float64(v) + math.Sqrt(alpha)*(1-abPrev)/(1-ab)*float64(xt[i])
				d := post - mu
				total[i/per] += d * d / (2 * (1 - abPrev) / (1 - ab) * beta)
				continue
			}
			total[i/per] -= discretisedGaussianLogProb(float64(v), mu, math.Sqrt(beta))
		}
	}
	return total, nil
}

// discretisedGaussianLogProb is ln P(bin of x) under N(mu, sigma²) for x on
// the 8-bit grid of [-1,1]: bins of width 2/255, the outermost open-ended.
func discretisedGaussianLogProb(x, mu, sigma float64) float64 {
	cdf := func(z float64) float64 { return 0.5 * (1 + math.Erf(z/math.Sqrt2)) }
	const half = 1.0 / 255
	lo, hi := 0.0, 1.0
	if x > -1+half/2 {
		lo = cdf((x - half - mu) / sigma)
	}
	if x < 1-half/2 {
		hi = cdf((x + half - mu) / sigma)
	}
	return math.Log(math.Max(hi-lo, 1e-12))
}
