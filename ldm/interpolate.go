package ldm

import (
	"fmt"
	"math"

	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/textenc"
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

// blendEmbeds lerps the plan's prompt embeddings towards in's prompt.
func (p *Pipeline) blendEmbeds(pl *Plan, e *promptEmbeds, in *Interpolation) error {
	other := p.promptChunks(in.Prompt)
	for pl.neg != nil && len(other) < len(pl.neg) { // padded as the plan's prompt is
		other = append(other, Chunk{})
	}
	if len(other) != len(pl.pos) {
		return &FieldError{"prompt", "the two prompts of an interpolation encode to different lengths: shorten the longer one to 75 tokens"}
	}
	b, _, _, err := p.encodeChunks(other, textenc.ClipSkipFromA1111(pl.req.ClipSkip))
	if err != nil {
		return err
	}
	a := float32(in.Alpha)
	blended := make([]float32, len(e.pos))
	for i, v := range e.pos {
		blended[i] = v + a*(b[i]-v)
	}
	e.pos = blended
	return nil
}

// slerpNoise moves a member's starting noise x (its rows of the batch)
// spherically towards the noise of in's seed.
func slerpNoise(m *member, b int, x []float32, per int, in *Interpolation) error {
	r := m.task.Plan.req
	for j := range m.n {
		g, err := rng.New(r.Noise, uint64(in.Seed+int64(b*r.BatchSize+j)))
		if err != nil {
			return err
		}
		y := make([]float32, per)
		g.Normal(y)
		Slerp(in.Alpha, x[(m.off+j)*per:(m.off+j+1)*per], y)
	}
	return nil
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
