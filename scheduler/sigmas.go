package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/mathext"
)

// This file holds the sigma schedules, separate from the samplers that walk
// them, as k-diffusion keeps them (get_sigmas_karras and friends): each
// schedule kind is one function of the model's noise table and a step
// count. The diffusers classes pick one through their config
// (use_karras_sigmas, use_lu_lambdas); the k-diffusion samplers take any.

// modelSigmas is the noise table of a trained model: σ_t = sqrt((1−ᾱ_t)/ᾱ_t)
// for every training timestep t (ascending), float32 values held as float64,
// with their float32 logs as numpy computes them.
type modelSigmas struct {
	sigmas, logSigmas []float64
}

func newModelSigmas(s *Schedule) modelSigmas {
	sig := s.Sigmas()
	m := modelSigmas{sigmas: make([]float64, len(sig)), logSigmas: make([]float64, len(sig))}
	for i, v := range sig {
		m.sigmas[i] = float64(v)
		m.logSigmas[i] = float64(log32(v))
	}
	return m
}

func (m modelSigmas) min() float64 { return m.sigmas[0] }
func (m modelSigmas) max() float64 { return m.sigmas[len(m.sigmas)-1] }

// t returns the fractional training timestep of a sigma by linear
// interpolation in log σ (diffusers' _sigma_to_t, k-diffusion's
// DiscreteSchedule.sigma_to_t).
func (m modelSigmas) t(sigma float64) float64 { return sigmaToT(sigma, m.logSigmas) }

// sigma returns σ at a fractional timestep by linear interpolation in log σ
// (k-diffusion's DiscreteSchedule.t_to_sigma).
func (m modelSigmas) sigma(t float64) float64 {
	t = math.Max(0, math.Min(t, float64(len(m.sigmas)-1)))
	lo := math.Floor(t)
	hi := math.Ceil(t)
	w := t - lo
	return math.Exp((1-w)*m.logSigmas[int(lo)] + w*m.logSigmas[int(hi)])
}

// sigmaSchedule returns n noise levels from hi down to lo for a model,
// without the final zero.
type sigmaSchedule func(m modelSigmas, lo, hi float64, n int) []float64

// sigmaSchedules are the schedule kinds by their k-diffusion/ComfyUI name.
// A new schedule is one function here plus its user-facing names.
// Those of the k-diffusion samplers end in the final 0 (or not, for the
// few that decide it themselves: normal at zero terminal SNR).
var sigmaSchedules = map[string]sigmaSchedule{
	"karras":      func(_ modelSigmas, lo, hi float64, n int) []float64 { return karrasSigmas(lo, hi, n) },
	"exponential": func(_ modelSigmas, lo, hi float64, n int) []float64 { return exponentialSigmas(lo, hi, n) },
	// k-diffusion's get_sigmas_polyexponential with A1111's default rho 1
	// (then equal to exponential); the golden data uses rho 2 (kPolyRho).
	"polyexponential": func(_ modelSigmas, lo, hi float64, n int) []float64 { return polyexponentialSigmas(lo, hi, n, 1) },
	"normal":          func(m modelSigmas, _, _ float64, n int) []float64 { return m.normalSigmas(n, false) },
	"sgm_uniform":     func(m modelSigmas, _, _ float64, n int) []float64 { return m.normalSigmas(n, true) },
	"simple":          func(m modelSigmas, _, _ float64, n int) []float64 { return m.simpleSigmas(n) },
	"ddim_uniform":    func(m modelSigmas, _, _ float64, n int) []float64 { return m.ddimSigmas(n) },
	"beta":            func(m modelSigmas, _, _ float64, n int) []float64 { return m.betaSigmas(n, 0.6, 0.6) },
	"linear_quadratic": func(_ modelSigmas, _, hi float64, n int) []float64 {
		return linearQuadraticSigmas(hi, n, 0.025, n/2)
	},
	"kl_optimal": func(_ modelSigmas, lo, hi float64, n int) []float64 { return klOptimalSigmas(lo, hi, n) },
	"ays_sd1":    func(_ modelSigmas, _, _ float64, n int) []float64 { return alignYourSteps(aysSD1, n) },
}

// kSchedules are the kinds whose functions append the final sigma
// themselves (the k-diffusion/ComfyUI schedule functions); the others
// (karras, exponential, polyexponential, kl_optimal) get a zero appended.
var selfTerminated = map[string]bool{"normal": true, "sgm_uniform": true, "simple": true, "ddim_uniform": true,
	"beta": true, "linear_quadratic": true, "ays_sd1": true}

// withFinal returns the schedule of kind with its final sigma (0).
func withFinal(kind string, sig []float64) []float64 {
	if selfTerminated[kind] {
		return sig
	}
	return append(sig, 0)
}

// kPolyRho is the rho of the polyexponential schedule the golden data uses.
const kPolyRho = 2.0

// polyexponentialSigmas is k-diffusion's get_sigmas_polyexponential: a
// polynomial of degree rho in log σ.
func polyexponentialSigmas(lo, hi float64, n int, rho float64) []float64 {
	ramp := torchLinspace32(1, 0, n)
	llo, lhi := math.Log(lo), math.Log(hi)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = float64(float32(math.Exp(math.Pow(float64(r), rho)*(lhi-llo) + llo)))
	}
	return out
}

// timestep is ComfyUI's ModelSamplingDiscrete.timestep: the nearest
// training timestep in log σ.
func (m modelSigmas) timestep(sigma float64) int {
	ls := float64(log32(float32(sigma)))
	best, bi := math.Inf(1), 0
	for i, v := range m.logSigmas {
		if d := math.Abs(ls - v); d < best {
			best, bi = d, i
		}
	}
	return bi
}

// sigma32 is t_to_sigma in float32 as torch computes it.
func (m modelSigmas) sigma32(t float32) float64 {
	t = float32(math.Max(0, math.Min(float64(t), float64(len(m.sigmas)-1))))
	lo, hi := int(math.Floor(float64(t))), int(math.Ceil(float64(t)))
	w := t - float32(math.Floor(float64(t)))
	ls := (1-w)*float32(m.logSigmas[lo]) + w*float32(m.logSigmas[hi])
	return float64(exp32(ls))
}

// normalSigmas is ComfyUI's normal_scheduler (sgm: sgm_uniform), which for
// a discrete model is also k-diffusion's DiscreteSchedule.get_sigmas (A1111's
// "Uniform"): timesteps evenly spaced from that of σ_max to that of σ_min.
func (m modelSigmas) normalSigmas(n int, sgm bool) []float64 {
	start, end := float32(m.timestep(m.max())), float32(m.timestep(m.min()))
	var ts []float32
	zero := true
	if sgm {
		ts = torchLinspace32(start, end, n+1)[:n]
	} else {
		if math.Abs(m.sigma32(end)) <= 1e-5 {
			n++
			zero = false
		}
		ts = torchLinspace32(start, end, n)
	}
	out := make([]float64, 0, n+1)
	for _, t := range ts {
		out = append(out, m.sigma32(t))
	}
	if zero {
		out = append(out, 0)
	}
	return out
}

// simpleSigmas is ComfyUI's simple_scheduler: every (T/n)-th table entry
// from the top.
func (m modelSigmas) simpleSigmas(n int) []float64 {
	ss := float64(len(m.sigmas)) / float64(n)
	out := make([]float64, 0, n+1)
	for x := range n {
		out = append(out, m.sigmas[len(m.sigmas)-1-int(float64(x)*ss)])
	}
	return append(out, 0)
}

// ddimSigmas is ComfyUI's ddim_scheduler ("ddim_uniform"): every (T//n)-th
// table entry from t = 1 up, so it need not have n+1 entries.
func (m modelSigmas) ddimSigmas(n int) []float64 {
	var sigs []float64
	x := 1
	if math.Abs(m.sigmas[x]) <= 1e-5 {
		n++
	} else {
		sigs = []float64{0}
	}
	ss := max(len(m.sigmas)/n, 1)
	for ; x < len(m.sigmas); x += ss {
		sigs = append(sigs, m.sigmas[x])
	}
	reverse(sigs)
	return sigs
}

// betaSigmas is ComfyUI's beta_scheduler (Lee et al. 2024,
// arXiv:2407.12173): timesteps at the quantiles of Beta(α, β), repeated
// ones dropped.
func (m modelSigmas) betaSigmas(n int, alpha, beta float64) []float64 {
	total := float64(len(m.sigmas) - 1)
	var out []float64
	last := -1.0
	for i := range n {
		p := 1 - float64(i)/float64(n)
		t := math.RoundToEven(betaQuantile(alpha, beta, p) * total)
		if t != last {
			out = append(out, m.sigmas[int(t)])
		}
		last = t
	}
	return append(out, 0)
}

// betaQuantile is the Beta(α, β) quantile (scipy.stats.beta.ppf). For
// α = β it uses the symmetry q(p) = 1 − q(1−p), so that the median is
// exactly 1/2 (the step count's timesteps then round as scipy's do).
func betaQuantile(alpha, beta, p float64) float64 {
	if alpha == beta {
		switch {
		case p == 0.5:
			return 0.5
		case p > 0.5:
			return 1 - mathext.InvRegIncBeta(alpha, beta, 1-p)
		}
	}
	return mathext.InvRegIncBeta(alpha, beta, p)
}

// linearQuadraticSigmas is ComfyUI's linear_quadratic_schedule (from
// Genmo's Mochi): linear in the first steps, then quadratic, times σ_max.
func linearQuadraticSigmas(sigmaMax float64, n int, threshold float64, linear int) []float64 {
	var sched []float64
	if n == 1 {
		sched = []float64{1, 0}
	} else {
		for i := range linear {
			sched = append(sched, float64(i)*threshold/float64(linear))
		}
		diff := float64(linear) - threshold*float64(n)
		quad := n - linear
		qc := diff / (float64(linear) * float64(quad*quad))
		lc := threshold/float64(linear) - 2*diff/float64(quad*quad)
		c := qc * float64(linear*linear)
		for i := linear; i < n; i++ {
			fi := float64(i)
			sched = append(sched, qc*fi*fi+lc*fi+c)
		}
		sched = append(sched, 1)
		for i := range sched {
			sched[i] = 1 - sched[i]
		}
	}
	hi := float32(sigmaMax)
	for i, v := range sched {
		sched[i] = float64(float32(v) * hi)
	}
	return sched
}

// klOptimalSigmas is the KL-optimal schedule (Sabour et al. 2024, "Align
// Your Steps", eq. 10; A1111 PR 15608, as ComfyUI computes it in float32):
// evenly spaced in arctan σ.
func klOptimalSigmas(lo, hi float64, n int) []float64 {
	alo, ahi := float32(math.Atan(lo)), float32(math.Atan(hi))
	out := make([]float64, n)
	for i := range out {
		var w float32
		if n > 1 {
			w = float32(i) / float32(n-1)
		}
		out[i] = float64(float32(math.Tan(float64(w*alo + (1-w)*ahi))))
	}
	return out
}

// aysSD1 are the Align Your Steps noise levels for Stable Diffusion 1.x
// (Sabour et al. 2024; NVIDIA's published 10-step schedule, as in ComfyUI's
// AlignYourStepsScheduler).
var aysSD1 = []float64{14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177,
	1.3943805092, 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582}

// alignYourSteps interpolates an AYS table log-linearly to n steps and
// ends it in 0, as ComfyUI does.
func alignYourSteps(levels []float64, n int) []float64 {
	sig := append([]float64(nil), levels...)
	if n+1 != len(levels) {
		k := len(levels)
		ys := make([]float64, k)
		for i := range ys {
			ys[i] = math.Log(levels[k-1-i])
		}
		sig = make([]float64, n+1)
		for i, x := range npLinspace(0, 1, n+1) {
			sig[n-i] = math.Exp(npInterp(x*float64(k-1), ys))
		}
	}
	for i := range sig {
		sig[i] = float64(float32(sig[i]))
	}
	sig[n] = 0
	return sig
}

func scheduleKinds() string {
	var k []string
	for n := range sigmaSchedules {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ", ")
}

// sigmasOf runs the schedule kind over the range [lo, hi] of model m.
func sigmasOf(kind string, m modelSigmas, lo, hi float64, n int) ([]float64, error) {
	f, ok := sigmaSchedules[kind]
	if !ok {
		return nil, fmt.Errorf("scheduler: unknown sigma schedule %q (%s)", kind, scheduleKinds())
	}
	return f(m, lo, hi, n), nil
}

// karrasSigmas is the noise schedule of Karras et al. 2022 (arXiv:2206.00364,
// eq. 5) with rho = 7 as in the paper: n sigmas from sigmaMax down to sigmaMin,
// evenly spaced in sigma^(1/rho).
func karrasSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	const rho = 7.0
	ramp := npLinspace(0, 1, n)
	minInv := math.Pow(sigmaMin, 1/rho)
	maxInv := math.Pow(sigmaMax, 1/rho)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// exponentialSigmas is evenly spaced in log σ (k-diffusion's
// get_sigmas_exponential; diffusers' use_lu_lambdas, Lu et al. 2022: uniform
// in λ = −log σ). The logs of the ends are float32, as numpy takes them
// from the float32 table.
func exponentialSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	lmin, lmax := float64(log32(float32(sigmaMin))), float64(log32(float32(sigmaMax)))
	out := make([]float64, n)
	for i, r := range npLinspace(0, 1, n) {
		out[i] = math.Exp(lmax + r*(lmin-lmax))
	}
	return out
}

// sigmaToT maps a sigma back to a fractional training timestep by linear
// interpolation in log sigma (diffusers' _sigma_to_t). logSigmas ascends with t.
func sigmaToT(sigma float64, logSigmas []float64) float64 {
	logSigma := math.Log(math.Max(sigma, 1e-10))
	low := 0
	for i, ls := range logSigmas {
		if logSigma-ls >= 0 {
			low = i
		}
	}
	if low > len(logSigmas)-2 {
		low = len(logSigmas) - 2
	}
	lo, hi := logSigmas[low], logSigmas[low+1]
	w := (lo - logSigma) / (lo - hi)
	w = math.Min(math.Max(w, 0), 1)
	return (1-w)*float64(low) + w*float64(low+1)
}

// sigmaRange picks a schedule's range: the config's sigma_min/sigma_max
// when given, else lo and hi.
func sigmaRange(cfg Config, lo, hi float64) (float64, float64) {
	if cfg.SigmaMin != nil {
		lo = *cfg.SigmaMin
	}
	if cfg.SigmaMax != nil {
		hi = *cfg.SigmaMax
	}
	return lo, hi
}

// configSchedule is the schedule kind a diffusers config asks for, or "".
func configSchedule(cfg Config) string {
	switch {
	case cfg.UseKarrasSigmas:
		return "karras"
	case cfg.UseLuLambdas:
		return "exponential"
	}
	return ""
}

// kModelSigmas is the noise table k-diffusion's samplers see through
// AUTOMATIC1111 and ComfyUI: the betas of the config in float64 (as the
// original LDM code and ComfyUI's ModelSamplingDiscrete compute them), their
// cumulative product in float64, and σ = sqrt((1−ᾱ)/ᾱ) rounded to float32.
// diffusers' own table (Schedule) takes the product in float32, which
// differs by up to a few 1e-6.
func kModelSigmas(cfg Config) (modelSigmas, error) {
	n := cfg.NumTrainTimesteps
	var betas []float64
	switch {
	case cfg.TrainedBetas != nil:
		betas = cfg.TrainedBetas
	case cfg.BetaSchedule == "linear":
		betas = npLinspace(cfg.BetaStart, cfg.BetaEnd, n)
	case cfg.BetaSchedule == "scaled_linear":
		betas = npLinspace(math.Sqrt(cfg.BetaStart), math.Sqrt(cfg.BetaEnd), n)
		for i, b := range betas {
			betas[i] = b * b
		}
	case cfg.BetaSchedule == "squaredcos_cap_v2":
		for _, b := range betasForAlphaBar(n, func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		}) {
			betas = append(betas, float64(b))
		}
	default:
		return modelSigmas{}, fmt.Errorf("scheduler: the k-diffusion samplers support beta_schedule linear, scaled_linear and squaredcos_cap_v2, not %q", cfg.BetaSchedule)
	}
	if len(betas) < 2 {
		return modelSigmas{}, fmt.Errorf("scheduler: %d training timesteps: need at least 2", len(betas))
	}
	m := modelSigmas{sigmas: make([]float64, len(betas)), logSigmas: make([]float64, len(betas))}
	ac := 1.0
	for i, b := range betas {
		ac *= 1 - b
		s := float32(math.Sqrt((1 - ac) / ac))
		m.sigmas[i] = float64(s)
		m.logSigmas[i] = float64(log32(s))
	}
	return m, nil
}

// kScheduleSigmas is the sigma schedule of kind for n steps over model m,
// with its final sigma, as the k-diffusion samplers walk it.
func kScheduleSigmas(kind string, m modelSigmas, n int) ([]float64, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d steps: need at least 1", ErrSteps, n)
	}
	if kind == "polyexponential_rho2" {
		return withFinal(kind, polyexponentialSigmas(m.min(), m.max(), n, kPolyRho)), nil
	}
	sig, err := sigmasOf(kind, m, m.min(), m.max(), n)
	if err != nil {
		return nil, err
	}
	return withFinal(kind, sig), nil
}
