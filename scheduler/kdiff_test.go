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
