package scheduler

import (
	"fmt"
	"math"
)

// kDPMAdaptive is DPM-Solver-12/23 with adaptive step size (Lu et al. 2022,
// arXiv:2206.00927; k-diffusion's sample_dpm_adaptive /
// DPMSolver.dpm_solver_adaptive with its defaults, as AUTOMATIC1111's
// "DPM adaptive" calls it): order 3, rtol 0.05, atol 0.0078, h_init 0.05,
// an integral-only step controller (pcoeff 0, icoeff 1, dcoeff 0,
// accept_safety 0.81) and eta 0. It integrates in t = −log σ from σ_max
// (sigmas[0]) to σ_min (the last nonzero sigma): each attempt makes three
// model calls (a second-order step at r1 = 1/3 and a third-order step that
// shares its calls), measures their difference and accepts or shrinks the
// step. Its model calls depend on the sample, so the schedule's step count
// only sets σ_min; adaptiveMaxCalls caps the evaluations. Times are float64
// (k-diffusion keeps them in float32 tensors).
func kDPMAdaptive(k *kCtx, x []float32, sig []float64) []float32 {
	return dpmAdaptive(k, x, sig, 0.05, 0.0078)
}

// dpmAdaptive is kDPMAdaptive with the relative and absolute tolerances
// given (the tests tighten them).
func dpmAdaptive(k *kCtx, x []float32, sig []float64, rtol, atol float64) []float32 {
	const (
		order, hInit = 3.0, 0.05
		safety, epsC = 0.81, 1e-8
	)
	k.mark(0)
	lo := sig[len(sig)-1]
	if lo == 0 {
		lo = sig[len(sig)-2]
	}
	s, tEnd := tFn(sig[0]), tFn(lo)
	h := hInit
	xPrev := x
	epsAt := func(x []float32, t float64) []float32 {
		sg := sigmaFn(t)
		return toD(x, sg, k.model(x, sg))
	}
	for s < tEnd-1e-5 {
		t := math.Min(tEnd, s+h)
		hh := t - s
		eps := epsAt(x, s)
		const r1, r2 = 1.0 / 3, 2.0 / 3
		s1, s2 := s+r1*hh, s+r2*hh
		u1 := axpy(x, -sigmaFn(s1)*math.Expm1(r1*hh), eps)
		e1 := epsAt(u1, s1)
		c := -sigmaFn(t) * math.Expm1(hh)
		xLow := dpmCombine(x, c, eps, c/(2*r1), e1)
		u2 := dpmCombine(x, -sigmaFn(s2)*math.Expm1(r2*hh), eps, -sigmaFn(s2)*(r2/r1)*(math.Expm1(r2*hh)/(r2*hh)-1), e1)
		e2 := epsAt(u2, s2)
		xHigh := dpmCombine(x, c, eps, -sigmaFn(t)/r2*(math.Expm1(hh)/hh-1), e2)
		// error = ‖(x_low − x_high)/δ‖/√n, δ = max(atol, rtol·max(|x_low|, |x_prev|)).
		var sum float64
		for e := range xLow {
			d := math.Max(atol, rtol*math.Max(math.Abs(float64(xLow[e])), math.Abs(float64(xPrev[e]))))
			q := (float64(xLow[e]) - float64(xHigh[e])) / d
			sum += q * q
		}
		errNorm := math.Sqrt(sum) / math.Sqrt(float64(len(x)))
		// The PID controller with pcoeff = dcoeff = 0 (b1 = 1/order,
		// b2 = b3 = 0): the factor is (1/(error+ε))^(1/order), limited by
		// 1 + atan(f − 1); the step is accepted when f ≥ accept_safety.
		f := 1 + math.Atan(math.Pow(1/(errNorm+epsC), 1/order)-1)
		if f >= safety {
			xPrev = xLow
			x = xHigh
			s = t
			// k-diffusion adds σ_up·noise on every accepted step, drawing it
			// even at eta 0 (σ_up = 0): the draw keeps the noise stream
			// where k-diffusion leaves it, as in kDPMFast.
			k.burn(len(x))
		}
		h *= f
	}
	return x
}

// adaptiveMaxCalls caps DPM adaptive's model calls so that a request cannot
// run forever (k-diffusion has no cap; at its tolerances a run on a real
// model takes tens to a few hundred calls).
const adaptiveMaxCalls = 1000

// errAdaptiveCap is the error when DPM adaptive reaches the cap.
func errAdaptiveCap() error {
	return fmt.Errorf("DPM adaptive did not reach σ_min within %d model calls (rtol 0.05, atol 0.0078); use a fixed-step sampler such as DPM++ 2M", adaptiveMaxCalls)
}
