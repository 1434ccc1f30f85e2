package ldm

import (
	"fmt"
	"math"

	"github.com/ldm-project/ldm/rng"
)

// Interpolation blends a generation with a second prompt and seed, as
// Riffusion walks between two prompts: the prompt embeddings are
// interpolated linearly and the initial noise spherically at Alpha (0: the
// request alone, 1: the second prompt and seed alone). The second prompt
// must encode to as many 77-token chunks as the first.
type Interpolation struct {
	Prompt string
	Seed   int64
	Alpha  float64
}

func (in *Interpolation) validate() error {
	if in.Alpha < 0 || in.Alpha > 1 || math.IsNaN(in.Alpha) {
		return &FieldError{"alpha", fmt.Sprintf("%g: give a value in [0, 1]", in.Alpha)}
	}
	return nil
}

// blendConditioning lerps the positive rows of c towards the prompt of in.
func (r *run) blendConditioning(c *conditioning) error {
	in := r.opts.Interpolate
	b, err := r.p.encodePrompts(in.Prompt, r.req.NegativePrompt, r.req.BatchSize, r.req.ClipSkip, c.cfg)
	if err != nil {
		return err
	}
	if len(b.embeds) != len(c.embeds) {
		return &FieldError{"prompt", "the two prompts of an interpolation encode to different lengths: shorten the longer one to 75 tokens"}
	}
	start := 0
	if c.cfg {
		start = len(c.embeds) / 2 // [uncond; cond]: the negative rows are the same on both sides
	}
	a := float32(in.Alpha)
	for i := start; i < len(c.embeds); i++ {
		c.embeds[i] += a * (b.embeds[i] - c.embeds[i])
	}
	return nil
}

// initialNoise draws each image's starting noise, slerped towards the
// second seed's when interpolating.
func (r *run) initialNoise(gens []rng.Source, per int) ([]float32, error) {
	x := drawEach(gens, per)
	in := r.opts.Interpolate
	if in == nil {
		return x, nil
	}
	other := make([]rng.Source, len(gens))
	for i := range other {
		g, err := rng.New(r.req.Noise, uint64(in.Seed+int64(r.batch*r.req.BatchSize+i)))
		if err != nil {
			return nil, err
		}
		other[i] = g
	}
	y := drawEach(other, per)
	for i := range gens {
		Slerp(in.Alpha, x[i*per:(i+1)*per], y[i*per:(i+1)*per])
	}
	return x, nil
}

// Slerp interpolates a towards b on the sphere, in place of a:
// sin((1−t)θ)/sin θ·a + sin(tθ)/sin θ·b, θ the angle between them, falling
// back to a lerp when they are nearly parallel (|cos θ| > 0.9995, the
// threshold of Riffusion's torch_util.slerp).
func Slerp(t float64, a, b []float32) {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	cos := dot / math.Sqrt(na*nb)
	if na == 0 || nb == 0 || math.Abs(cos) > 0.9995 {
		for i := range a {
			a[i] += float32(t) * (b[i] - a[i])
		}
		return
	}
	theta := math.Acos(cos)
	s := math.Sin(theta)
	wa, wb := math.Sin((1-t)*theta)/s, math.Sin(t*theta)/s
	for i := range a {
		a[i] = float32(wa*float64(a[i]) + wb*float64(b[i]))
	}
}
