package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"
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
var sigmaSchedules = map[string]sigmaSchedule{
	"karras":      func(_ modelSigmas, lo, hi float64, n int) []float64 { return karrasSigmas(lo, hi, n) },
	"exponential": func(_ modelSigmas, lo, hi float64, n int) []float64 { return exponentialSigmas(lo, hi, n) },
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
