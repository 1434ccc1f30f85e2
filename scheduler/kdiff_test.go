package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
)

// consistencyModel is the exact consistency function for data ~ N(0, std²):
// f(x, σ) = x·std/sqrt(std²+σ²), the probability-flow ODE's end point,
// returned as ε (what an LCM-distilled U-Net predicts through the
// denoiser). xin is the model input x/sqrt(σ²+1).
func consistencyModel(s *Scheduler, i int, xin []float32, std float64) []float32 {
	sigma := callSigma(s, i)
	out := make([]float32, len(xin))
	for k, v := range xin {
		x := float64(v) * math.Sqrt(1+sigma*sigma)
		d := x * std / math.Sqrt(std*std+sigma*sigma)
		out[k] = float32((x - d) / sigma)
	}
	return out
}

// TestLCMWithTheConsistencyFunctionSamplesTheData: with the exact
// consistency function, LCM sampling (denoise, re-noise to the next σ) keeps
// every step on the data's marginal, so 1, 2 and 4 steps all end with the
// data's standard deviation, and the run draws noise at every step but the
// last.
func TestLCMWithTheConsistencyFunctionSamplesTheData(t *testing.T) {
	const std = 0.8
	r := rand.New(rand.NewPCG(5, 6))
	x0 := make([]float32, 20000)
	randNoise{r}.Normal(x0)
	for _, steps := range []int{1, 2, 4} {
		s, err := New("LCM", sd15Config)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(steps); err != nil {
			t.Fatal(err)
		}
		x := s.InitLatents(x0)
		draws := 0
		noise := NoiseFunc(func(dst []float32) { draws++; randNoise{r}.Normal(dst) })
		for i := range s.Timesteps() {
			if x, err = s.Step(consistencyModel(s, i, s.ScaleModelInput(x, i), std), i, x, noise); err != nil {
				t.Fatal(err)
			}
		}
		var v float64
		for _, g := range x {
			v += float64(g) * float64(g)
		}
		sd := math.Sqrt(v / float64(len(x)))
		t.Logf("%d steps: std %.4f (data %.2f), %d noise draws", steps, sd, std, draws)
		if math.Abs(sd/std-1) > 0.02 || draws != steps-1 {
			t.Errorf("%d steps: std %.4f with %d draws, want %.2f with %d", steps, sd, draws, std, steps-1)
		}
	}
}

// TestRestartReachesTheDataDistribution: A1111's Restart sampler with the
// exact Gaussian model. Below 20 steps it is Heun on Karras sigmas (whose
// ODE error the deterministic test bounds); from 20 steps on its restart
// segments re-noise and re-descend, and the result stays distributed as
// the data.
func TestRestartReachesTheDataDistribution(t *testing.T) {
	const std = 0.8
	r := rand.New(rand.NewPCG(7, 8))
	x0 := make([]float32, 20000)
	randNoise{r}.Normal(x0)
	for _, steps := range []int{12, 24, 40} {
		s, err := New("Restart", sd15Config)
		if err != nil {
			t.Fatal(err)
		}
		draws := 0
		noise := NoiseFunc(func(dst []float32) { draws++; randNoise{r}.Normal(dst) })
		got := sampleGauss(t, s, steps, x0, std, noise)
		if steps < 20 {
			// No restart: exactly Heun over the same Karras sigmas.
			h, _ := New("Heun Karras", sd15Config)
			want := sampleGauss(t, h, steps, x0, std, nil)
			for k := range got {
				if got[k] != want[k] || draws != 0 {
					t.Fatalf("%d steps: Restart %v differs from Heun Karras %v at %d (%d draws)", steps, got[k], want[k], k, draws)
				}
			}
			continue
		}
		var v float64
		for _, g := range got {
			v += float64(g) * float64(g)
		}
		sd := math.Sqrt(v / float64(len(got)))
		t.Logf("%d steps: %d calls, std %.4f (data %.2f), %d draws", steps, len(s.Timesteps()), sd, std, draws)
		if math.Abs(sd/std-1) > 0.03 || draws == 0 {
			t.Errorf("%d steps: std %.4f with %d restarts, want %.2f", steps, sd, draws, std)
		}
	}
}

// TestEDMEulerSolvesTheGaussianODE: EDMEulerScheduler with the exact EDM
// network for Gaussian data, F = (D − c_skip·x)/c_out with the ideal
// denoiser D = x·s²/(s²+σ²), lands on the probability-flow ODE's closed-form
// end point x(σ₀)·s/sqrt(s²+σ₀²), closer with more steps.
func TestEDMEulerSolvesTheGaussianODE(t *testing.T) {
	const std, sd = 3.0, 0.5
	x := []float32{1, -0.5, 2.5, -1.7}
	errAt := func(steps int) float64 {
		s, err := New(ClassEDMEuler, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(steps); err != nil {
			t.Fatal(err)
		}
		cur := s.InitLatents(x)
		s0 := float64(s.Sigmas()[0])
		start := append([]float32(nil), cur...)
		for i := range s.Timesteps() {
			sigma := float64(s.Sigmas()[i])
			in := s.ScaleModelInput(cur, i)
			out := make([]float32, len(in))
			for k, v := range in {
				xk := float64(v) * math.Sqrt(sigma*sigma+sd*sd)
				d := xk * std * std / (std*std + sigma*sigma)
				cSkip := sd * sd / (sigma*sigma + sd*sd)
				cOut := sigma * sd / math.Sqrt(sigma*sigma+sd*sd)
				out[k] = float32((d - cSkip*xk) / cOut)
			}
			if cur, err = s.Step(out, i, cur, nil); err != nil {
				t.Fatal(err)
			}
		}
		worst := 0.0
		for k := range cur {
			want := float64(start[k]) * std / math.Sqrt(std*std+s0*s0)
			worst = math.Max(worst, math.Abs(float64(cur[k])-want)/math.Abs(want))
		}
		return worst
	}
	e25, e50 := errAt(25), errAt(50)
	t.Logf("relative error %.2e at 25 steps, %.2e at 50", e25, e50)
	if e25 > 0.1 || !(e50 < e25) { // first order over σ 80…0.002
		t.Errorf("relative error %.3g at 25 steps, %.3g at 50: want ≤ 0.1 and shrinking", e25, e50)
	}
}
