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
