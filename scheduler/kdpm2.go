package scheduler

import "math"

// kdpm2 is diffusers' KDPM2DiscreteScheduler and, with ancestral set,
// KDPM2AncestralDiscreteScheduler: k-diffusion's DPM-Solver-2 (sample_dpm_2,
// sample_dpm_2_ancestral) as diffusers lays it out, one first-order call at
// σ_j and one at the log-midpoint per step (2n−1 calls), the last step
// Euler to 0.
type kdpm2 struct {
	kBase
	ancestral bool
	callSig   []float32 // σ the model sees at each call
	// per step j: σ_j, the midpoint, and (ancestral) σ_down, σ_up
	sig, mid, down, up []float32
	sample             []float32 // the step's start, between its two calls
	midX               []float32
}

func (k *kdpm2) plan(n int) ([]float64, []float32, error) {
	ts, s, err := k.kSchedule(n) // n+1 sigmas, the last 0
	if err != nil {
		return nil, nil, err
	}
	if k.s.cfg.UseKarrasSigmas && k.allowKarras {
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i])
		}
	}
	m := newModelSigmas(k.s.sched)
	N := len(s)
	k.sig, k.mid = s, make([]float32, N)
	k.down, k.up = make([]float32, N), make([]float32, N)
	lerpExp := func(a, b float32) float32 {
		// exp(torch.lerp(log a, log b, 1/2)) in float32; torch computes a
		// weight of 1/2 from the end, so log 0 = −∞ gives 0, not NaN.
		la, lb := log32(a), log32(b)
		return exp32(lb - (lb-la)*0.5)
	}
	if k.ancestral {
		for j := range s {
			next := float32(0)
			if j+1 < N {
				next = s[j+1]
			}
			k.up[j] = sqrt32(next * next * (s[j]*s[j] - next*next) / (s[j] * s[j]))
			k.down[j] = sqrt32(next*next - k.up[j]*k.up[j])
		}
		k.down[N-1] = 0
		for j := range s {
			k.mid[j] = lerpExp(s[j], k.down[j])
		}
		k.mid[N-2], k.mid[N-1] = 0, 0
	} else {
		for j := 1; j < N; j++ {
			k.mid[j] = lerpExp(s[j], s[j-1])
		}
	}
	// Calls: σ_0, then per step j ≥ 1 the previous step's midpoint and σ_j.
	midOf := func(j int) float32 { // the midpoint used between σ_j and σ_{j+1}
		if k.ancestral {
			return k.mid[j]
		}
		return k.mid[j+1]
	}
	calls := []float64{ts[0]}
	k.callSig = []float32{s[0]}
	for j := 1; j < N-1; j++ {
		mj := midOf(j - 1)
		calls = append(calls, float64(float32(m.t(float64(mj)))), ts[j])
		k.callSig = append(k.callSig, mj, s[j])
	}
	// diffusers' self.sigmas: σ_0, σ_1, σ_1, …, σ_{n−1}, σ_{n−1}, 0, 0, 0.
	rep := []float32{s[0]}
	for _, v := range s[1:] {
		rep = append(rep, v, v)
	}
	rep = append(rep, s[N-1])
	k.sample, k.midX = nil, nil
	return calls, rep, nil
}

func (k *kdpm2) initNoiseSigma() float64 {
	m := k.sig[0]
	if sp := k.s.cfg.TimestepSpacing; sp == "linspace" || sp == "trailing" {
		return float64(m)
	}
	return float64(sqrt32(m*m + 1))
}

func (k *kdpm2) inputDivisor(i int) float32 {
	s := k.callSig[i]
	return sqrt32(s*s + 1)
}

func (k *kdpm2) addNoise(x0, noise []float32, i int) []float32 {
	return axpy(x0, float64(k.callSig[i]), noise)
}

func (k *kdpm2) x0Map(i int) (lin, error) {
	return kDenoised(k.s.cfg.PredictionType, k.callSig[i]), nil
}

func (k *kdpm2) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	var z []float32
	if k.ancestral { // diffusers draws at every call, and uses it at the second
		var err error
		if z, err = draw(noise, len(x)); err != nil {
			return nil, err
		}
	}
	d := kDenoised(k.s.cfg.PredictionType, k.callSig[i])
	j := (i + 1) / 2
	if i%2 == 0 { // first order at σ_j, to the midpoint
		mid := k.mid[j+1]
		if k.ancestral {
			mid = k.mid[j]
		}
		s := float64(k.sig[j])
		dt := float64(mid - k.sig[j])
		prev := make([]float32, len(x))
		for e := range prev {
			der := float32((float64(x[e]) - d.at(x[e], out[e])) / s)
			prev[e] = float32(float64(x[e]) + float64(der)*dt)
		}
		k.sample = append([]float32(nil), x...)
		return prev, nil
	}
	// second order: the derivative at the midpoint from the step's start
	j--
	mid := k.callSig[i]
	target := k.sig[j+1]
	if k.ancestral {
		target = k.down[j]
	}
	dt := float64(target - k.sig[j])
	prev := make([]float32, len(x))
	for e := range prev {
		der := float32((float64(x[e]) - d.at(x[e], out[e])) / float64(mid))
		prev[e] = float32(float64(k.sample[e]) + float64(der)*dt)
		if z != nil {
			prev[e] = float32(float64(prev[e]) + float64(z[e])*float64(k.up[j]))
		}
	}
	k.sample = nil
	return prev, nil
}

func init() {
	defaults := func(c *Config) { c.BetaStart, c.BetaEnd = 0.00085, 0.012 }
	register(&class{name: ClassKDPM2, defaults: defaults, order: 2,
		build: func(s *Scheduler) (sampler, error) {
			return &kdpm2{kBase: kBase{s: s, allowKarras: true}}, nil
		}})
	register(&class{name: ClassKDPM2Ancestral, defaults: defaults, order: 2,
		build: func(s *Scheduler) (sampler, error) {
			return &kdpm2{kBase: kBase{s: s, allowKarras: true}, ancestral: true}, nil
		}})
}

// callSigmaAt is the σ of call i (Sigmas is diffusers' own array).
func (k *kdpm2) callSigmaAt(i int) float32 { return k.callSig[i] }
