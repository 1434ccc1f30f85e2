package scheduler

import (
	"fmt"
	"math"
)

// The few-step samplers of consistency-distilled models: LCM (Luo et al.
// 2023, arXiv:2310.04378) and TCD (Zheng et al. 2024, arXiv:2402.19159),
// as diffusers' LCMScheduler and TCDScheduler run them. Both walk a subset
// of the distillation's timesteps (original_inference_steps evenly spaced
// ones) on alphas_cumprod.

// lcmBase is shared by LCM and TCD.
type lcmBase struct{ alphaBase }

// plan is LCM's timestep schedule: of the distillation's timesteps
// k−1, 2k−1, …, (k = T // original_inference_steps), n taken from the top at
// evenly spaced indices.
func (l *lcmBase) plan(n int) ([]float64, []float32, error) {
	cfg := l.s.cfg
	T, orig := cfg.NumTrainTimesteps, cfg.OriginalInferenceSteps
	if orig < 1 || orig > T {
		return nil, nil, fmt.Errorf("scheduler: original_inference_steps %d must be in [1, num_train_timesteps %d]", orig, T)
	}
	if n < 1 || n > orig {
		return nil, nil, fmt.Errorf("%w: %d steps: %s takes 1 to original_inference_steps (%d)", ErrSteps, n, l.s.class.name, orig)
	}
	k := T / orig
	origin := make([]int, orig) // descending
	for i := range origin {
		origin[i] = (orig-i)*k - 1
	}
	ts := make([]float64, n)
	for i, x := range npLinspace(0, float64(orig), n+1)[:n] {
		ts[i] = float64(origin[int(math.Floor(x))])
	}
	return ts, nil, nil
}

// prevAlpha is ᾱ at the next call's timestep (the current one at the
// last call, as diffusers does).
func (l *lcmBase) prevT(i int) int {
	if i+1 < len(l.s.timesteps) {
		return int(l.s.timesteps[i+1])
	}
	return int(l.s.timesteps[i])
}

// boundary is LCM's c_skip and c_out at timestep t (σ_data = 0.5).
func (l *lcmBase) boundary(t int) (cSkip, cOut float32) {
	const sd = float32(0.5)
	st := float32(t) * float32(l.s.cfg.TimestepScaling)
	cSkip = sd * sd / (st*st + sd*sd)
	cOut = st / sqrt32(st*st+sd*sd)
	return cSkip, cOut
}

// lcm is LCMScheduler: denoise with the boundary condition, then noise the
// result to the next timestep.
type lcm struct{ lcmBase }

// x0Map is LCM's "denoised", c_out·x0 + c_skip·x.
func (l *lcm) x0Map(i int) (lin, error) {
	t := int(l.s.timesteps[i])
	x0, _ := x0Eps(l.s.cfg.PredictionType, l.s.sched.AlphasCumprod[t])
	cs, co := l.boundary(t)
	return lin{float64(co)*x0.cx + float64(cs), float64(co) * x0.co}, nil
}

func (l *lcm) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	d, _ := l.x0Map(i)
	den := make([]float32, len(x))
	for k := range den {
		den[k] = float32(d.at(x[k], out[k]))
	}
	if i == len(l.s.timesteps)-1 {
		return den, nil
	}
	z, err := draw(noise, len(x))
	if err != nil {
		return nil, err
	}
	aPrev := l.s.sched.AlphasCumprod[l.prevT(i)]
	a, b := float64(sqrt32(aPrev)), float64(sqrt32(1-aPrev))
	for k := range z {
		z[k] = float32(a*float64(den[k]) + b*float64(z[k]))
	}
	return z, nil
}

// tcd is TCDScheduler: predict x0 and ε, move to the intermediate timestep
// s = ⌊(1−γ)·t_next⌋, then noise forward to t_next (γ = η, Eta; 0 means
// diffusers' default 0.3).
type tcd struct{ lcmBase }

func (c *tcd) gamma() float64 {
	if c.s.Eta > 0 {
		return c.s.Eta
	}
	return 0.3
}

func (c *tcd) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	s := c.s
	t := int(s.timesteps[i])
	prev := 0
	if i+1 < len(s.timesteps) {
		prev = int(s.timesteps[i+1])
	}
	eta := c.gamma()
	ts := int(math.Floor(float64(float32(1-eta) * float32(prev))))
	aT, aPrev, aS := s.sched.AlphasCumprod[t], s.sched.AlphasCumprod[prev], s.sched.AlphasCumprod[ts]
	x0L, epsL := x0Eps(s.cfg.PredictionType, aT)
	sa, sb := float64(sqrt32(aS)), float64(sqrt32(1-aS))
	noised := make([]float32, len(x))
	for k := range noised {
		noised[k] = float32(sa*x0L.at(x[k], out[k]) + sb*epsL.at(x[k], out[k]))
	}
	if eta == 0 || i == len(s.timesteps)-1 {
		return noised, nil
	}
	z, err := draw(noise, len(x))
	if err != nil {
		return nil, err
	}
	r := aPrev / aS
	a, b := float64(sqrt32(r)), float64(sqrt32(1-r))
	for k := range z {
		z[k] = float32(a*float64(noised[k]) + b*float64(z[k]))
	}
	return z, nil
}

func init() {
	defaults := func(c *Config) {
		c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, "scaled_linear"
		c.OriginalInferenceSteps, c.TimestepScaling = 50, 10
		c.SetAlphaToOne, c.TimestepSpacing = true, "leading"
	}
	register(&class{name: ClassLCM, rescale: true, defaults: defaults,
		build: func(s *Scheduler) (sampler, error) { return &lcm{lcmBase{alphaBase{s}}}, nil }})
	register(&class{name: ClassTCD, rescale: true, defaults: defaults,
		build: func(s *Scheduler) (sampler, error) { return &tcd{lcmBase{alphaBase{s}}}, nil }})
}
