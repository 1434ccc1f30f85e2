package scheduler

import (
	"fmt"
	"math"
)

// The samplers in this file (Euler, Euler ancestral, LMS, Heun) walk a sigma
// schedule in the k-diffusion parametrisation x = x0 + σ·ε (Karras et al.
// 2022), with the model seeing x/sqrt(σ²+1). The schedule is computed once by
// kSchedule; each sampler is only its update rule.

// kBase is shared by the k-diffusion samplers.
type kBase struct {
	s *Scheduler
	// allowKarras: the diffusers class accepts use_karras_sigmas;
	// float32Karras: it stores Karras timesteps as float32 (else float64).
	allowKarras, float32Karras bool
	// configRange: Karras sigma_min/sigma_max may come from the config.
	configRange bool
	// full: the class honours interpolation_type, final_sigmas_type and
	// timestep_type (EulerDiscreteScheduler).
	full bool
}

// kSchedule computes n timesteps and n+1 sigmas as diffusers'
// set_timesteps does for the k-diffusion samplers.
func (b kBase) kSchedule(n int) ([]float64, []float32, error) {
	cfg := b.s.cfg
	T := cfg.NumTrainTimesteps
	ts, err := spacedTimesteps(cfg.TimestepSpacing, T, n, cfg.StepsOffset, false)
	if err != nil {
		return nil, nil, err
	}
	for i := range ts {
		ts[i] = float64(float32(ts[i]))
	}
	m := newModelSigmas(b.s.sched)
	all := m.sigmas
	interp := "linear"
	if b.full {
		interp = cfg.InterpolationType
	}
	var sig []float64
	switch interp {
	case "linear":
		sig = make([]float64, n)
		for i, t := range ts {
			sig[i] = npInterp(t, all)
		}
	case "log_linear":
		// torch.linspace(log σ_max, log σ_min, n+1).exp(), in float32.
		ls := torchLinspace32(float32(math.Log(all[len(all)-1])), float32(math.Log(all[0])), n+1)
		sig = make([]float64, len(ls))
		for i, v := range ls {
			sig[i] = float64(exp32(v))
		}
	default:
		return nil, nil, fmt.Errorf("scheduler: interpolation_type %q is not supported (linear, log_linear)", interp)
	}
	if kind := configSchedule(cfg); kind == "karras" && b.allowKarras {
		lo, hi := sig[len(sig)-1], sig[0]
		if b.configRange {
			lo, hi = sigmaRange(cfg, lo, hi)
		}
		var err error
		if sig, err = sigmasOf(kind, m, lo, hi, n); err != nil {
			return nil, nil, err
		}
		ts = make([]float64, n)
		for i, v := range sig {
			ts[i] = m.t(v)
			if b.float32Karras {
				ts[i] = float64(float32(ts[i]))
			}
		}
	}
	last := 0.0
	if b.full {
		switch cfg.FinalSigmasType {
		case "zero":
		case "sigma_min":
			ac := b.s.sched.AlphasCumprod[0]
			last = float64(sqrt32((1 - ac) / ac))
		default:
			return nil, nil, fmt.Errorf("scheduler: final_sigmas_type %q is not supported (zero, sigma_min)", cfg.FinalSigmasType)
		}
	}
	sigmas := make([]float32, len(sig)+1)
	for i, v := range sig {
		sigmas[i] = float32(v)
	}
	sigmas[len(sig)] = float32(last)
	if b.full && cfg.TimestepType == "continuous" && cfg.PredictionType == "v_prediction" {
		for i := range ts {
			ts[i] = float64(0.25 * log32(sigmas[i]))
		}
	}
	return ts, sigmas, nil
}

func (b kBase) initNoiseSigma() float64 {
	m := maxSigma(b.s.sigmas)
	if sp := b.s.cfg.TimestepSpacing; sp == "linspace" || sp == "trailing" {
		return float64(m)
	}
	return float64(sqrt32(m*m + 1))
}

func (b kBase) inputDivisor(i int) float32 {
	sigma := b.s.sigmas[i]
	return sqrt32(sigma*sigma + 1)
}

func (b kBase) addNoise(x0, noise []float32, i int) []float32 {
	sigma := b.s.sigmas[i]
	out := make([]float32, len(x0))
	for k := range out {
		out[k] = x0[k] + noise[k]*sigma
	}
	return out
}

// denoised is the x0 prediction at noise level sigma.
func (b kBase) denoised(sigma float32) (lin, error) {
	return kDenoised(b.s.cfg.PredictionType, sigma), nil
}

func (b kBase) x0Map(i int) (lin, error) { return b.denoised(b.s.sigmas[i]) }

// euler is Euler's method (Karras et al. 2022, Algorithm 2 without churn):
// x ← x + (x − x0)/σ·(σ_next − σ).
type euler struct{ kBase }

func (e *euler) plan(n int) ([]float64, []float32, error) { return e.kSchedule(n) }

func (e *euler) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	sig := e.s.sigmas
	sigma := sig[i]
	// Churn: raise σ to σ̂ = σ(1+γ) by adding noise first.
	c := e.s.Churn
	tmax := c.TMax
	if tmax == 0 {
		tmax = math.Inf(1)
	}
	gamma := 0.0
	if c.Amount > 0 && c.TMin <= float64(sigma) && float64(sigma) <= tmax {
		gamma = math.Min(c.Amount/float64(len(sig)-1), math.Sqrt2-1)
	}
	sigmaHat := sigma * float32(gamma+1)
	var z []float32
	var zc float64
	if gamma > 0 {
		var err error
		if z, err = draw(noise, len(x)); err != nil {
			return nil, err
		}
		sn := float32(c.Noise)
		if sn == 0 {
			sn = 1
		}
		zc = float64(sn) * float64(sqrt32(sigmaHat*sigmaHat-sigma*sigma))
	}
	d, err := e.denoised(sigma)
	if err != nil {
		return nil, err
	}
	if e.s.cfg.PredictionType == "epsilon" {
		d.co = -float64(sigmaHat) // diffusers uses σ̂ for ε, σ for v
	}
	s, h := float64(sigmaHat), float64(sig[i+1]-sigmaHat)
	prev := make([]float32, len(x))
	for k := range prev {
		xv := float64(x[k])
		if z != nil {
			xv = float64(float32(xv + float64(z[k])*zc))
		}
		x0 := d.cx*xv + d.co*float64(out[k])
		prev[k] = float32(xv + (xv-x0)/s*h)
	}
	return prev, nil
}

// eulerAncestral is Euler with ancestral sampling: step down to σ_down, then
// add fresh noise of σ_up (k-diffusion's sample_euler_ancestral with eta 1).
type eulerAncestral struct{ kBase }

func (e *eulerAncestral) plan(n int) ([]float64, []float32, error) { return e.kSchedule(n) }

func (e *eulerAncestral) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	if e.s.cfg.PredictionType == "sample" {
		return nil, fmt.Errorf("Euler ancestral does not support prediction_type sample")
	}
	sig := e.s.sigmas
	from, to := sig[i], sig[i+1]
	d, err := e.denoised(from)
	if err != nil {
		return nil, err
	}
	up := sqrt32(to * to * (from*from - to*to) / (from * from))
	down := sqrt32(to*to - up*up)
	z, err := draw(noise, len(x))
	if err != nil {
		return nil, err
	}
	s, h, u := float64(from), float64(down-from), float64(up)
	prev := z // reuse the noise buffer
	for k := range prev {
		xv := float64(x[k])
		p := float32(xv + (xv-d.at(x[k], out[k]))/s*h)
		prev[k] = float32(float64(p) + float64(z[k])*u)
	}
	return prev, nil
}

// heun is Heun's second-order method (Karras et al. 2022, Algorithm 1 without
// churn): every step but the last to σ=0 takes an Euler predictor call and a
// corrector call, so the plan repeats each interior sigma and timestep.
type heun struct {
	kBase
	prevDeriv []float32 // nil: the next call is a predictor
	dt        float32
	sample    []float32
}

func (h *heun) plan(n int) ([]float64, []float32, error) {
	ts, sig, err := h.kSchedule(n)
	if err != nil {
		return nil, nil, err
	}
	rs := []float32{sig[0]}
	for _, v := range sig[1 : len(sig)-1] {
		rs = append(rs, v, v)
	}
	rs = append(rs, sig[len(sig)-1])
	rt := []float64{ts[0]}
	for _, t := range ts[1:] {
		rt = append(rt, t, t)
	}
	h.prevDeriv, h.sample = nil, nil
	return rt, rs, nil
}

func (h *heun) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	sig := h.s.sigmas
	first := h.prevDeriv == nil
	if !first && i == 0 {
		return nil, fmt.Errorf("Heun corrector step without a predictor step")
	}
	// The predictor evaluates at σ_i; the corrector at σ_next = sigmas[i].
	in := sig[i]
	d, err := h.denoised(in)
	if err != nil {
		return nil, err
	}
	clip, r := h.s.cfg.ClipSample, h.s.cfg.ClipSampleRange
	x0 := func(k int) float64 {
		v := d.at(x[k], out[k])
		if clip {
			v = clamp(v, r)
		}
		return v
	}
	prev := make([]float32, len(x))
	if first {
		h.dt = sig[i+1] - sig[i]
		s, dt := float64(sig[i]), float64(h.dt)
		h.prevDeriv = make([]float32, len(x))
		for k := range prev {
			xv := float64(x[k])
			der := float32((xv - x0(k)) / s)
			h.prevDeriv[k] = der
			prev[k] = float32(xv + float64(der)*dt)
		}
		h.sample = append([]float32(nil), x...)
		return prev, nil
	}
	s, dt := float64(in), float64(h.dt)
	for k := range prev {
		der := (float64(h.prevDeriv[k]) + (float64(x[k])-x0(k))/s) / 2
		prev[k] = float32(float64(h.sample[k]) + der*dt)
	}
	h.prevDeriv, h.sample = nil, nil
	return prev, nil
}

// lms is the linear multistep method of order up to 4 (k-diffusion's
// sample_lms): the step integrates the Lagrange polynomial through the last
// derivatives over [σ_i, σ_{i+1}].
type lms struct {
	kBase
	derivs [][]float32
}

const lmsOrder = 4

func (l *lms) plan(n int) ([]float64, []float32, error) {
	l.derivs = nil
	return l.kSchedule(n)
}

func (l *lms) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	sig := l.s.sigmas
	dn, err := l.denoised(sig[i])
	if err != nil {
		return nil, err
	}
	var d []float32
	if len(l.derivs) == lmsOrder {
		d = l.derivs[0] // recycle the oldest
		l.derivs = append(l.derivs[:0], l.derivs[1:]...)
	} else {
		d = make([]float32, len(x))
	}
	s := float64(sig[i])
	for k := range d {
		d[k] = float32((float64(x[k]) - dn.at(x[k], out[k])) / s)
	}
	l.derivs = append(l.derivs, d)
	// diffusers takes the order from the absolute step index, so a run that
	// begins mid-schedule (img2img) uses the higher-order coefficients at
	// once, paired with the derivatives it has.
	order := min(i+1, lmsOrder)
	terms := min(order, len(l.derivs))
	var c [lmsOrder]float64
	var ds [lmsOrder][]float32
	for j := 0; j < terms; j++ {
		c[j] = lmsCoefficient(sig, order, i, j)
		ds[j] = l.derivs[len(l.derivs)-1-j]
	}
	prev := make([]float32, len(x))
	for k := range prev {
		acc := 0.0
		for j := 0; j < terms; j++ {
			acc += c[j] * float64(ds[j][k])
		}
		prev[k] = float32(float64(x[k]) + acc)
	}
	return prev, nil
}

// lmsCoefficient integrates the j-th Lagrange basis polynomial through
// σ_t, σ_{t−1}, …, σ_{t−order+1} from σ_t to σ_{t+1}. The integrand is a
// polynomial of degree < 4, so 4-point Gauss–Legendre is exact (diffusers
// uses adaptive quadrature to the same value).
func lmsCoefficient(sig []float32, order, t, j int) float64 {
	basis := func(tau float64) float64 {
		p := 1.0
		for k := 0; k < order; k++ {
			if k == j {
				continue
			}
			p *= (tau - float64(sig[t-k])) / float64(sig[t-j]-sig[t-k])
		}
		return p
	}
	a, b := float64(sig[t]), float64(sig[t+1])
	mid, half := (a+b)/2, (b-a)/2
	sum := 0.0
	for q := range gaussX {
		sum += gaussW[q] * basis(mid+half*gaussX[q])
	}
	return sum * half
}

// 4-point Gauss–Legendre nodes and weights on [−1, 1].
var (
	gaussX = [4]float64{-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526}
	gaussW = [4]float64{0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538}
)

func init() {
	kDefaults := func(c *Config) {}
	register(&class{
		name: ClassEuler, rescale: true, zeroSNRFloor: true, defaults: kDefaults,
		build: func(s *Scheduler) (sampler, error) {
			return &euler{kBase{s: s, allowKarras: true, float32Karras: true, configRange: true, full: true}}, nil
		},
	})
	register(&class{
		name: ClassEulerAncestral, rescale: true, zeroSNRFloor: true, defaults: kDefaults,
		build: func(s *Scheduler) (sampler, error) {
			// diffusers' class has no use_karras_sigmas; Karras here comes
			// only from a sampler name ("Euler a" + "Karras").
			return &eulerAncestral{kBase{s: s, allowKarras: s.forcedKarras, float32Karras: true}}, nil
		},
	})
	register(&class{
		name: ClassLMS, defaults: kDefaults,
		build: func(s *Scheduler) (sampler, error) {
			return &lms{kBase: kBase{s: s, allowKarras: true}}, nil
		},
	})
	register(&class{
		name: ClassHeun, extraSchedules: []string{"exp"}, order: 2,
		defaults: func(c *Config) { c.BetaStart, c.BetaEnd = 0.00085, 0.012 },
		build: func(s *Scheduler) (sampler, error) {
			return &heun{kBase: kBase{s: s, allowKarras: true, configRange: true}}, nil
		},
	})
}
