package scheduler

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// odeEnd is the probability-flow ODE's closed-form solution for data
// ~ N(0, std²): x(σ₁) = x(σ₀)·sqrt((std²+σ₁²)/(std²+σ₀²)).
func odeEnd(x []float32, std, s0, s1 float64) []float64 {
	out := make([]float64, len(x))
	for k, v := range x {
		out[k] = float64(v) * math.Sqrt((std*std+s1*s1)/(std*std+s0*s0))
	}
	return out
}

func worstRel(got []float32, want []float64) float64 {
	w := 0.0
	for k := range got {
		w = math.Max(w, math.Abs(float64(got[k])-want[k])/math.Abs(want[k]))
	}
	return w
}

// TestDPMAdaptiveSolvesTheGaussianODE runs "DPM adaptive" through the step
// API (the loop grows with Calls(), as the ldm loop runs it) with the
// exact Gaussian model: it lands near the ODE's closed-form solution at
// σ_min, makes a multiple of 3 calls that the plan did not know, reports
// the exact count once done, and gives the same result for any step count
// of the same σ range. With tighter tolerances (the sampler function on the
// exact denoiser) the error shrinks.
func TestDPMAdaptiveSolvesTheGaussianODE(t *testing.T) {
	const std = 3
	x := []float32{1, -0.5, 2.5, -1.7}
	run := func(steps int) ([]float32, *Scheduler) {
		s, err := New("DPM adaptive", withSD(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(steps); err != nil {
			t.Fatal(err)
		}
		if s.Calls() != 1 || s.ExpectedCalls() != 3*steps {
			t.Fatalf("planned %d calls, expected %d; want 1 and %d", s.Calls(), s.ExpectedCalls(), 3*steps)
		}
		xi := s.InitLatents(x)
		draws := 0 // k-diffusion draws (σ_up = 0) noise at every accepted step
		noise := NoiseFunc(func(dst []float32) { draws++ })
		for i := 0; i < s.Calls(); i++ {
			if i > 3*adaptiveMaxCalls {
				t.Fatal("runaway loop")
			}
			if xi, err = s.Step(gaussModel(s, i, s.ScaleModelInput(xi, i), std), i, xi, noise); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.Calls(); n%3 != 0 || n < 6 || s.ExpectedCalls() != n || len(s.Sigmas()) != n+1 {
			t.Fatalf("%d calls, expected %d, %d sigmas: want a multiple of 3 (≥ 6), exact once done, calls+1 sigmas", n, s.ExpectedCalls(), len(s.Sigmas()))
		}
		if draws == 0 || draws > s.Calls()/3 {
			t.Fatalf("%d noise draws in %d calls, want one per accepted attempt of 3 calls", draws, s.Calls())
		}
		return xi, s
	}
	got, s := run(25)
	sig := s.Sigmas()
	want := odeEnd(x, std, float64(sig[0]), float64(sig[len(sig)-1]))
	for k := range want {
		want[k] *= s.InitNoiseSigma()
	}
	e := worstRel(got, want)
	t.Logf("25 steps: %d model calls, relative error %.2e at σ_min %.4f", s.Calls(), e, sig[len(sig)-1])
	if e > 5e-3 {
		t.Errorf("relative error %.3g exceeds 5e-3", e)
	}
	// The schedule's step count only sets σ_min, which the normal schedule
	// keeps at the model's smallest σ.
	got10, s10 := run(10)
	if s10.Calls() != s.Calls() || worstRel(got10, want) != e {
		t.Errorf("10 steps: %d calls, error %.3g; 25 steps: %d, %.3g (σ range is the same)", s10.Calls(), worstRel(got10, want), s.Calls(), e)
	}

	// Tighter tolerances on the sampler function with the exact denoiser.
	sigmas := []float64{14.6, 0.03, 0}
	x0 := make([]float32, len(x))
	for k, v := range x {
		x0[k] = v * float32(sigmas[0])
	}
	want = odeEnd(x0, std, sigmas[0], sigmas[1])
	prev := math.Inf(1)
	prevCalls := 0
	for _, rtol := range []float64{0.05, 5e-3, 5e-4} {
		calls := 0
		k := &kCtx{mark: func(int) {},
			model: func(x []float32, sigma float64) []float32 {
				calls++
				out := make([]float32, len(x))
				for e, v := range x {
					out[e] = float32(float64(v) * std * std / (std*std + sigma*sigma))
				}
				return out
			},
			noise: func(int) []float32 { t.Fatal("DPM adaptive at eta 0 draws no noise"); return nil },
			burn:  func(int) {},
		}
		e := worstRel(dpmAdaptive(k, x0, sigmas, rtol, rtol*0.0078/0.05), want)
		t.Logf("rtol %g: %d calls, relative error %.2e", rtol, calls, e)
		if !(e < prev) || calls <= prevCalls {
			t.Errorf("rtol %g: error %.3g with %d calls, want below %.3g and more than %d calls", rtol, e, calls, prev, prevCalls)
		}
		prev, prevCalls = e, calls
	}
	if prev > 5e-4 {
		t.Errorf("at rtol 5e-4 the relative error is %.3g, want ≤ 5e-4", prev)
	}
}

// TestDPMAdaptiveNeedsTwoSteps: with one step σ_min is σ_max; the plan
// refuses it as a steps error.
func TestDPMAdaptiveNeedsTwoSteps(t *testing.T) {
	s, err := New("DPM adaptive", withSD(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(1); !errors.Is(err, ErrSteps) {
		t.Fatalf("1 step: %v, want ErrSteps", err)
	}
}

// TestDPMAdaptiveCapsItsCalls: a model that never lets the error fall
// ends with the cap's error instead of running forever.
func TestDPMAdaptiveCapsItsCalls(t *testing.T) {
	s, err := New("k_dpm_ad", withSD(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(20); err != nil {
		t.Fatal(err)
	}
	x := s.InitLatents([]float32{1, -1, 0.5, 2})
	for i := 0; i < s.Calls(); i++ {
		out := make([]float32, len(x))
		for k := range out {
			out[k] = float32(math.Pow(-1, float64(i))) * 1e4 // wildly inconsistent ε
		}
		if x, err = s.Step(out, i, x, nil); err != nil {
			if !strings.Contains(err.Error(), "within 1000 model calls") || i != adaptiveMaxCalls-1 {
				t.Fatalf("call %d: %v, want the cap's error at call %d", i, err, adaptiveMaxCalls-1)
			}
			return
		}
	}
	t.Fatalf("finished after %d calls with an adversarial model", s.Calls())
}

// TestDPMAdaptiveImg2Img: BeginIndex re-plans the run to start at the
// strength's schedule step (σ_max = that step's σ, as A1111 runs it), call
// 0, and the run from the noised init latents lands on the ODE solution.
func TestDPMAdaptiveImg2Img(t *testing.T) {
	const std = 3
	s, err := New("DPM adaptive", withSD(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(25); err != nil {
		t.Fatal(err)
	}
	full := s.Sigmas()[0]
	if b := s.BeginIndex(0.6); b != 0 || s.Calls() != 1 {
		t.Fatalf("begin %d with %d calls, want 0 and 1", b, s.Calls())
	}
	s0 := s.Sigmas()[0]
	if !(s0 < full/2) {
		t.Fatalf("img2img starts at σ %g, want well below σ_max %g", s0, full)
	}
	init := []float32{0.4, -1.2, 2, 0.1}
	noise := []float32{1, -0.5, 0.3, -2}
	x, err := s.AddNoiseAt(init, noise, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := append([]float32(nil), x...)
	for i := 0; i < s.Calls(); i++ {
		if x, err = s.Step(gaussModel(s, i, s.ScaleModelInput(x, i), std), i, x, nil); err != nil {
			t.Fatal(err)
		}
	}
	sig := s.Sigmas()
	e := worstRel(x, odeEnd(start, std, float64(s0), float64(sig[len(sig)-1])))
	t.Logf("from σ %.3f: %d calls, relative error %.2e", s0, s.Calls(), e)
	if e > 5e-3 {
		t.Errorf("relative error %.3g exceeds 5e-3", e)
	}
}
