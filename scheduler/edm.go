package scheduler

import (
	"fmt"
	"math"
)

// edmEuler is diffusers' EDMEulerScheduler: Euler steps in the EDM
// parametrisation of Karras et al. 2022 (arXiv:2206.00364, Table 1) with its
// own sigma schedule between sigma_min and sigma_max (not the model's
// betas), model input c_in·x = x/sqrt(σ²+σ_data²), timestep
// c_noise = ¼·ln σ, and D = c_skip·x + c_out·F.
type edmEuler struct{ s *Scheduler }

func (e *edmEuler) cfg() (lo, hi, sd, rho float64) {
	c := e.s.cfg
	return *c.SigmaMin, *c.SigmaMax, c.SigmaData, c.Rho
}

func (e *edmEuler) plan(n int) ([]float64, []float32, error) { return e.edmPlan(n) }

// edmPlan lays out n steps on EDM's own sigmas, the last 0.
func (e *edmEuler) edmPlan(n int) ([]float64, []float32, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("%w: %d inference steps: need at least 1", ErrSteps, n)
	}
	lo, hi, _, rho := e.cfg()
	sig := make([]float32, n+1)
	switch e.s.cfg.SigmaSchedule {
	case "karras":
		minInv, maxInv := math.Pow(lo, 1/rho), math.Pow(hi, 1/rho)
		for i, r := range npLinspace(0, 1, n) {
			sig[i] = float32(math.Pow(maxInv+r*(minInv-maxInv), rho))
		}
	case "exponential":
		ls := torchLinspace32(float32(math.Log(lo)), float32(math.Log(hi)), n)
		for i, v := range ls {
			sig[n-1-i] = exp32(v)
		}
	default:
		return nil, nil, fmt.Errorf("scheduler: sigma_schedule %q is not supported (karras, exponential)", e.s.cfg.SigmaSchedule)
	}
	ts := make([]float64, n)
	for i := range ts {
		ts[i] = float64(0.25 * log32(sig[i]))
	}
	return ts, sig, nil
}

func (e *edmEuler) initNoiseSigma() float64 {
	_, hi, _, _ := e.cfg()
	return math.Sqrt(hi*hi + 1)
}

func (e *edmEuler) inputDivisor(i int) float32 {
	_, _, sd, _ := e.cfg()
	s := e.s.sigmas[i]
	return sqrt32(s*s + float32(sd*sd))
}

func (e *edmEuler) addNoise(x0, noise []float32, i int) []float32 {
	return axpy(x0, float64(e.s.sigmas[i]), noise)
}

// x0Map is EDM's preconditioned output D = c_skip·x + c_out·F.
func (e *edmEuler) x0Map(i int) (lin, error) { return e.precondition(e.s.sigmas[i]), nil }

func (e *edmEuler) precondition(s float32) lin {
	_, _, sd, _ := e.cfg()
	d := float32(sd)
	cSkip := d * d / (s*s + d*d)
	cOut := s * d / sqrt32(s*s+d*d)
	if e.s.cfg.PredictionType == "v_prediction" {
		cOut = -cOut
	}
	return lin{float64(cSkip), float64(cOut)}
}

func (e *edmEuler) step(i int, out, x []float32, _ Noise) ([]float32, error) {
	d, _ := e.x0Map(i)
	s := float64(e.s.sigmas[i])
	dt := float64(e.s.sigmas[i+1] - e.s.sigmas[i])
	prev := make([]float32, len(x))
	for k := range prev {
		der := float32((float64(x[k]) - d.at(x[k], out[k])) / s)
		prev[k] = float32(float64(x[k]) + float64(der)*dt)
	}
	return prev, nil
}

// edmDPM is EDMDPMSolverMultistepScheduler: DPM-Solver++ on EDM's
// sigmas with α_t = 1, σ_t = σ (the inputs are preconditioned instead).
type edmDPM struct {
	dpmSolver
	e *edmEuler
}

func (d *edmDPM) plan(n int) ([]float64, []float32, error) {
	d.hist, d.lowerNums = nil, 0
	return d.e.edmPlan(n)
}
func (d *edmDPM) initNoiseSigma() float64                   { return d.e.initNoiseSigma() }
func (d *edmDPM) inputDivisor(i int) float32                { return d.e.inputDivisor(i) }
func (d *edmDPM) addNoise(x0, n []float32, i int) []float32 { return d.e.addNoise(x0, n, i) }
func (d *edmDPM) x0Map(i int) (lin, error)                  { return d.e.x0Map(i) }

func edmCheck(s *Scheduler, class string) error {
	switch s.cfg.PredictionType {
	case "epsilon", "v_prediction":
	default:
		return fmt.Errorf("scheduler: %s supports prediction_type epsilon and v_prediction, not %q", class, s.cfg.PredictionType)
	}
	if s.cfg.SigmaMin == nil || s.cfg.SigmaMax == nil || *s.cfg.SigmaMin <= 0 || *s.cfg.SigmaMax <= *s.cfg.SigmaMin || s.cfg.Rho <= 0 || s.cfg.SigmaData <= 0 {
		return fmt.Errorf("scheduler: %s needs 0 < sigma_min < sigma_max, rho > 0 and sigma_data > 0", class)
	}
	return nil
}

func edmDefaults(c *Config) {
	lo, hi := 0.002, 80.0
	c.SigmaMin, c.SigmaMax, c.SigmaData, c.SigmaSchedule, c.Rho = &lo, &hi, 0.5, "karras", 7
}

func init() {
	register(&class{name: ClassEDMDPMSolver, defaults: func(c *Config) { edmDefaults(c); c.VarianceType, c.SolverType = "", "midpoint" },
		build: func(s *Scheduler) (sampler, error) {
			if err := edmCheck(s, ClassEDMDPMSolver); err != nil {
				return nil, err
			}
			cfg := s.cfg
			if cfg.AlgorithmType != "dpmsolver++" && cfg.AlgorithmType != "sde-dpmsolver++" || cfg.SolverOrder < 1 || cfg.SolverOrder > 3 {
				return nil, fmt.Errorf("scheduler: %s takes algorithm_type dpmsolver++ or sde-dpmsolver++ and solver_order 1-3", ClassEDMDPMSolver)
			}
			if cfg.SolverType != "midpoint" && cfg.SolverType != "heun" {
				return nil, fmt.Errorf("scheduler: %s solver_type %q is not supported (midpoint, heun)", ClassEDMDPMSolver, cfg.SolverType)
			}
			e := &edmEuler{s}
			d := &edmDPM{dpmSolver: dpmSolver{vpBase: vpBase{s: s}, edm: e}, e: e}
			return d, nil
		}})
	register(&class{name: ClassEDMEuler, defaults: edmDefaults,
		build: func(s *Scheduler) (sampler, error) {
			if err := edmCheck(s, ClassEDMEuler); err != nil {
				return nil, err
			}
			return &edmEuler{s}, nil
		}})
}
