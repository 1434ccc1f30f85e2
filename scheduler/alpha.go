package scheduler

import (
	"fmt"
	"math"
)

// The samplers in this file (DDPM, DDIM, PNDM) work directly on
// alphas_cumprod at integer timesteps, with x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε.
// Scalars are float32 as in diffusers (0-d torch tensors); the elementwise
// arithmetic is float64.

// alphaBase is shared by the alphas_cumprod samplers.
type alphaBase struct{ s *Scheduler }

func (a alphaBase) initNoiseSigma() float64  { return 1 }
func (a alphaBase) inputDivisor(int) float32 { return 0 }
func (a alphaBase) addNoise(x0, noise []float32, i int) []float32 {
	out, _ := a.s.sched.AddNoise(x0, noise, int(a.s.timesteps[i]))
	return out
}

func (a alphaBase) x0Map(i int) (lin, error) {
	x0, _ := x0Eps(a.s.cfg.PredictionType, a.s.sched.AlphasCumprod[int(a.s.timesteps[i])])
	return x0, nil
}

// alphaAt returns ᾱ at training timestep t, or final for t < 0.
func (a alphaBase) alphaAt(t int, final float32) float32 {
	if t < 0 {
		return final
	}
	return a.s.sched.AlphasCumprod[t]
}

// stepRatio is T // n, the gap between consecutive inference timesteps.
func (a alphaBase) stepRatio() int { return a.s.cfg.NumTrainTimesteps / a.s.steps }

// finalAlpha is ᾱ used after the last step: 1 with set_alpha_to_one, else ᾱ_0.
func (a alphaBase) finalAlpha() float32 {
	if a.s.cfg.SetAlphaToOne {
		return 1
	}
	return a.s.sched.AlphasCumprod[0]
}

func (a alphaBase) planSpaced(n int) ([]float64, []float32, error) {
	cfg := a.s.cfg
	ts, err := spacedTimesteps(cfg.TimestepSpacing, cfg.NumTrainTimesteps, n, cfg.StepsOffset, true)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range ts {
		if t < 0 || int(t) >= len(a.s.sched.AlphasCumprod) {
			return nil, nil, fmt.Errorf("scheduler: timestep %v outside the training schedule (check steps_offset)", t)
		}
	}
	return ts, nil, nil
}

// x0Eps returns the x0 and ε predictions at ᾱ_t.
func x0Eps(pred string, alphaT float32) (x0, eps lin) {
	return predict(pred, sqrt32(alphaT), sqrt32(1-alphaT))
}

func clamp(v, r float64) float64 { return math.Max(-r, math.Min(r, v)) }

// ddim is DDIM (Song et al. 2020, arXiv:2010.02502, eq. 12), with η from
// Scheduler.Eta.
type ddim struct{ alphaBase }

func (d *ddim) plan(n int) ([]float64, []float32, error) { return d.planSpaced(n) }

func (d *ddim) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	s := d.s
	t := int(s.timesteps[i])
	prevT := t - d.stepRatio()
	aT := s.sched.AlphasCumprod[t]
	aPrev := d.alphaAt(prevT, d.finalAlpha())
	bT, bPrev := 1-aT, 1-aPrev

	x0L, epsL := x0Eps(s.cfg.PredictionType, aT)
	variance := (bPrev / bT) * (1 - aT/aPrev)
	std := float32(s.Eta) * sqrt32(variance)
	dirC := float64(sqrt32(1 - aPrev - std*std))
	x0C := float64(sqrt32(aPrev))

	var z []float32
	if s.Eta > 0 {
		var err error
		if z, err = draw(noise, len(x)); err != nil {
			return nil, err
		}
	}
	clip, r := s.cfg.ClipSample, s.cfg.ClipSampleRange
	prev := make([]float32, len(x))
	for k := range prev {
		x0 := x0L.at(x[k], out[k])
		if clip {
			x0 = clamp(x0, r)
		}
		v := x0C*x0 + dirC*epsL.at(x[k], out[k])
		if z != nil {
			v += float64(std) * float64(z[k])
		}
		prev[k] = float32(v)
	}
	return prev, nil
}

// ddpm is the ancestral DDPM sampler (Ho et al. 2020, arXiv:2006.11239,
// eqs. 6–7) on a subsequence of the training timesteps.
type ddpm struct{ alphaBase }

func (d *ddpm) plan(n int) ([]float64, []float32, error) { return d.planSpaced(n) }

func (d *ddpm) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	s := d.s
	t := int(s.timesteps[i])
	prevT := t - d.stepRatio()
	aT := s.sched.AlphasCumprod[t]
	aPrev := d.alphaAt(prevT, 1)
	bT, bPrev := 1-aT, 1-aPrev
	curAlpha := aT / aPrev
	curBeta := 1 - curAlpha

	x0L, _ := x0Eps(s.cfg.PredictionType, aT)
	cX0 := float64((sqrt32(aPrev) * curBeta) / bT)
	cX := float64(sqrt32(curAlpha) * bPrev / bT)

	var z []float32
	var std float64
	if t > 0 {
		var err error
		if z, err = draw(noise, len(x)); err != nil {
			return nil, err
		}
		variance := bPrev / bT * curBeta
		if variance < 1e-20 {
			variance = 1e-20
		}
		switch s.cfg.VarianceType {
		case "fixed_small", "":
			std = float64(sqrt32(variance))
		case "fixed_small_log":
			std = float64(exp32(0.5 * log32(variance)))
		case "fixed_large":
			std = float64(sqrt32(curBeta))
		}
	}
	clip, r := s.cfg.ClipSample, s.cfg.ClipSampleRange
	prev := make([]float32, len(x))
	for k := range prev {
		x0 := x0L.at(x[k], out[k])
		if clip {
			x0 = clamp(x0, r)
		}
		v := cX0*x0 + cX*float64(x[k])
		if z != nil {
			v += std * float64(z[k])
		}
		prev[k] = float32(v)
	}
	return prev, nil
}

// pndm is PNDM (Liu et al. 2022, arXiv:2202.09778): four Runge–Kutta warm-up
// steps (PRK) then linear multistep (PLMS), or with skip_prk_steps the PLMS
// variant that Stable Diffusion uses, warming up with one extra model call.
type pndm struct {
	alphaBase
	prkTimesteps []float64
	counter      int
	ets          [][]float32
	curOut       []float64 // running PRK combination
	curSample    []float32
}

func (p *pndm) plan(n int) ([]float64, []float32, error) {
	cfg := p.s.cfg
	T := cfg.NumTrainTimesteps
	desc, err := spacedTimesteps(cfg.TimestepSpacing, T, n, cfg.StepsOffset, true)
	if err != nil {
		return nil, nil, err
	}
	asc := append([]float64(nil), desc...)
	reverse(asc)
	var ts []float64
	p.prkTimesteps = nil
	if cfg.SkipPRKSteps {
		// Repeat the second timestep: the first step is redone as a
		// second-order (improved Euler) step before PLMS has history.
		var plms []float64
		plms = append(plms, asc[:len(asc)-1]...)
		if len(asc) >= 2 {
			plms = append(plms, asc[len(asc)-2])
		}
		plms = append(plms, asc[len(asc)-1])
		reverse(plms)
		ts = plms
	} else {
		const order = 4
		if n < order {
			return nil, nil, fmt.Errorf("%w: PNDM with PRK warm-up needs at least %d steps, got %d", ErrSteps, order, n)
		}
		half := float64(T / n / 2)
		var prk []float64
		for _, t := range asc[len(asc)-order:] {
			prk = append(prk, t, t+half)
		}
		prk = prk[:len(prk)-1]
		var rep []float64
		for _, t := range prk {
			rep = append(rep, t, t)
		}
		rep = rep[1 : len(rep)-1]
		reverse(rep)
		p.prkTimesteps = rep
		plms := append([]float64(nil), asc[:len(asc)-3]...)
		reverse(plms)
		ts = append(append(ts, rep...), plms...)
	}
	for _, t := range ts {
		if t < 0 || int(t) >= len(p.s.sched.AlphasCumprod) {
			return nil, nil, fmt.Errorf("scheduler: timestep %v outside the training schedule (check steps_offset)", t)
		}
	}
	p.counter, p.ets, p.curOut, p.curSample = 0, nil, nil, nil
	return ts, nil, nil
}

func (p *pndm) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	if p.s.cfg.PredictionType == "sample" {
		return nil, fmt.Errorf("PNDM supports prediction_type epsilon and v_prediction only")
	}
	t := int(p.s.timesteps[i])
	if p.counter < len(p.prkTimesteps) && !p.s.cfg.SkipPRKSteps {
		return p.stepPRK(t, out, x), nil
	}
	return p.stepPLMS(t, out, x), nil
}

func (p *pndm) stepPRK(t int, out, x []float32) []float32 {
	ratio := p.stepRatio()
	diff := ratio / 2
	if p.counter%2 == 1 {
		diff = 0
	}
	prevT := t - diff
	t = int(p.prkTimesteps[p.counter/4*4])
	if p.curOut == nil {
		p.curOut = make([]float64, len(out))
	}
	eff := out
	switch p.counter % 4 {
	case 0:
		addScaled(p.curOut, 1.0/6, out)
		p.ets = append(p.ets, append([]float32(nil), out...))
		p.curSample = append([]float32(nil), x...)
	case 1, 2:
		addScaled(p.curOut, 1.0/3, out)
	case 3:
		eff = make([]float32, len(out))
		for k := range out {
			eff[k] = float32(p.curOut[k] + float64(out[k])/6)
		}
		p.curOut = nil
	}
	sample := x
	if p.curSample != nil {
		sample = p.curSample
	}
	p.counter++
	return p.prevSample(sample, t, prevT, eff)
}

func addScaled(dst []float64, c float64, v []float32) {
	for k := range dst {
		dst[k] += c * float64(v[k])
	}
}

func (p *pndm) stepPLMS(t int, out, x []float32) []float32 {
	ratio := p.stepRatio()
	prevT := t - ratio
	if p.counter != 1 {
		if len(p.ets) > 3 {
			p.ets = p.ets[len(p.ets)-3:]
		}
		p.ets = append(p.ets, append([]float32(nil), out...))
	} else {
		prevT = t
		t += ratio
	}
	e := p.ets
	n := len(e)
	eff := make([]float32, len(out))
	sample := x
	switch {
	case n == 1 && p.counter == 0:
		copy(eff, out)
		p.curSample = append([]float32(nil), x...)
	case n == 1 && p.counter == 1:
		for k := range eff {
			eff[k] = float32((float64(out[k]) + float64(e[0][k])) / 2)
		}
		sample = p.curSample
		p.curSample = nil
	case n == 2:
		for k := range eff {
			eff[k] = float32((3*float64(e[1][k]) - float64(e[0][k])) / 2)
		}
	case n == 3:
		for k := range eff {
			eff[k] = float32((23*float64(e[2][k]) - 16*float64(e[1][k]) + 5*float64(e[0][k])) / 12)
		}
	default:
		for k := range eff {
			eff[k] = float32((55*float64(e[n-1][k]) - 59*float64(e[n-2][k]) + 37*float64(e[n-3][k]) - 9*float64(e[n-4][k])) / 24)
		}
	}
	p.counter++
	return p.prevSample(sample, t, prevT, eff)
}

// prevSample is PNDM's transfer from t to prevT (Liu et al. eq. 11).
func (p *pndm) prevSample(x []float32, t, prevT int, out []float32) []float32 {
	aT := p.s.sched.AlphasCumprod[t]
	aPrev := p.alphaAt(prevT, p.finalAlpha())
	bT, bPrev := 1-aT, 1-aPrev
	v := p.s.cfg.PredictionType == "v_prediction"
	sa, sb := float64(sqrt32(aT)), float64(sqrt32(bT))
	cX := float64(sqrt32(aPrev / aT))
	denom := float64(aT*sqrt32(bPrev) + sqrt32(aT*bT*aPrev))
	diff := float64(aPrev - aT)
	prev := make([]float32, len(x))
	for k := range prev {
		o := float64(out[k])
		if v {
			o = sa*o + sb*float64(x[k])
		}
		prev[k] = float32(cX*float64(x[k]) - diff*o/denom)
	}
	return prev
}

func init() {
	register(&class{
		name: ClassDDPM, rescale: true, extraSchedules: []string{"sigmoid"},
		defaults: func(c *Config) { c.TimestepSpacing = "leading"; c.ClipSample = true },
		build:    func(s *Scheduler) (sampler, error) { return newDDPM(s) },
	})
	register(&class{
		name: ClassDDIM, rescale: true,
		defaults: func(c *Config) { c.TimestepSpacing = "leading"; c.ClipSample = true; c.SetAlphaToOne = true },
		build:    func(s *Scheduler) (sampler, error) { return &ddim{alphaBase{s}}, nil },
	})
	register(&class{
		name:     ClassPNDM,
		defaults: func(c *Config) { c.TimestepSpacing = "leading" },
		build:    func(s *Scheduler) (sampler, error) { return &pndm{alphaBase: alphaBase{s}}, nil },
	})
}

func newDDPM(s *Scheduler) (sampler, error) {
	switch s.cfg.VarianceType {
	case "fixed_small", "fixed_small_log", "fixed_large", "":
		return &ddpm{alphaBase{s}}, nil
	}
	return nil, fmt.Errorf("scheduler: DDPM variance_type %q is not supported (fixed_small, fixed_small_log, fixed_large)", s.cfg.VarianceType)
}
