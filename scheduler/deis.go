package scheduler

import (
	"fmt"
	"math"
)

// deis is diffusers' DEISMultistepScheduler (Zhang & Chen 2022,
// arXiv:2204.13902) with its "deis" algorithm and "logrho" solver: ε
// predictions combined with exponential-integrator coefficients from
// Lagrange polynomials in log ρ (ρ = σ/α), orders 1–2, ending at σ_min.
type deis struct {
	vpBase
	lowerNums int
}

func (d *deis) plan(n int) ([]float64, []float32, error) {
	kind := ""
	if d.s.cfg.UseKarrasSigmas {
		kind = "karras"
	}
	ts, sig, err := d.vpSchedule(n, d.s.cfg.NumTrainTimesteps, kind, false)
	d.hist, d.lowerNums = nil, 0
	return ts, sig, err
}

func (d *deis) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	cfg := d.s.cfg
	n := len(d.s.timesteps)
	lowerFinal := i == n-1 && cfg.LowerOrderFinal && n < 15
	d.push(vpConvert(false, cfg.PredictionType, d.s.sigmas[i], out, x), cfg.SolverOrder)
	sig := d.s.sigmas
	at, st := vpAlphaSigma(sig[i+1])
	as, ss := vpAlphaSigma(sig[i])
	var prev []float32
	if cfg.SolverOrder == 1 || d.lowerNums < 1 || lowerFinal {
		h := (log32(at) - log32(st)) - (log32(as) - log32(ss))
		prev = combine(x, float64(at/as), [][]float32{d.back(0)}, []float64{-float64(st * (exp32(h) - 1))}, nil, 0)
	} else {
		a1, s1 := vpAlphaSigma(sig[i-1])
		rt, r0, r1 := float64(st/at), float64(ss/as), float64(s1/a1)
		// ∫ (log t − log c)/(log b − log c) dt
		ind := func(t, b, c float64) float64 {
			return t * (-math.Log(c) + math.Log(t) - 1) / (math.Log(b) - math.Log(c))
		}
		c1 := ind(rt, r0, r1) - ind(r0, r0, r1)
		c2 := ind(rt, r1, r0) - ind(r0, r1, r0)
		fa := float64(at)
		prev = combine(x, fa/float64(as), [][]float32{d.back(0), d.back(1)}, []float64{fa * c1, fa * c2}, nil, 0)
	}
	if d.lowerNums < cfg.SolverOrder {
		d.lowerNums++
	}
	return prev, nil
}

func init() {
	register(&class{name: ClassDEIS, rescale: false,
		defaults: func(c *Config) { c.AlgorithmType, c.SolverType = "deis", "logrho" },
		build: func(s *Scheduler) (sampler, error) {
			cfg := &s.cfg
			// diffusers maps the DPM-Solver settings a shared config may
			// carry onto DEIS's own.
			switch cfg.AlgorithmType {
			case "dpmsolver", "dpmsolver++":
				cfg.AlgorithmType = "deis"
			}
			switch cfg.SolverType {
			case "midpoint", "heun", "bh1", "bh2":
				cfg.SolverType = "logrho"
			}
			if cfg.AlgorithmType != "deis" {
				return nil, fmt.Errorf("scheduler: DEIS algorithm_type %q is not supported (deis)", cfg.AlgorithmType)
			}
			if cfg.SolverOrder < 1 || cfg.SolverOrder > 2 {
				return nil, fmt.Errorf("scheduler: DEIS solver_order %d is not supported here (1, 2)", cfg.SolverOrder)
			}
			cfg.FinalSigmasType = "sigma_min" // DEIS ends at σ_min
			return &deis{vpBase: vpBase{s: s}}, nil
		}})
}
