package scheduler

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"runtime"
	"sort"
	"strings"
)

// The samplers in this file are k-diffusion's (crowsonkb/k-diffusion
// sampling.py at 4601bf0, plus ComfyUI's sample_lcm and sample_heunpp2), as
// AUTOMATIC1111 and ComfyUI run them: each is one function looping over a
// sigma schedule and calling the denoiser D(x, σ), written as k-diffusion
// writes it. The denoiser is the model behind k-diffusion's discrete
// wrapper (DiscreteEpsDDPMDenoiser / CompVisVDenoiser, quantize off): it
// sees x/sqrt(σ²+1) at the fractional timestep t(σ) (log-σ interpolation
// in the model's table) and its output is converted to D by kDenoised.
//
// The Scheduler drives a sampler function as a coroutine: every D call
// becomes one model call of the step API (Timesteps, ScaleModelInput,
// Step), so the pipeline's loop stays sampler-agnostic. Every random draw
// comes from the Noise passed to Step, in k-diffusion's order.

// kOptions are the per-name settings of a k-diffusion sampler.
type kOptions struct {
	heun    bool // DPM++ 2M SDE: the Heun solver type (A1111's "DPM++ 2M SDE Heun")
	discard bool // plan one step more and drop the next-to-last sigma (A1111, ComfyUI)
}

// kCtx is what a sampler function sees.
type kCtx struct {
	model func(x []float32, sigma float64) []float32 // the denoiser D
	noise func(n int) []float32                      // fresh unit normal noise
	burn  func(n int)                                // a draw whose value is unused, when a source exists
	eta   float64                                    // ancestral / SDE noise weight
	churn Churn
	opts  kOptions
	// mark records that step i of the schedule begins (img2img starts a run
	// at a step's first call).
	mark func(i int)
}

// kFunc is one k-diffusion sampler: it runs from x (already at sigmas[0])
// over sigmas (descending, ending in 0) and returns the sample.
type kFunc func(k *kCtx, x []float32, sigmas []float64) []float32

// kFuncs are the samplers by their k-diffusion name. A new sampler is one
// function here and one row in samplerDefs.
var kFuncs = map[string]kFunc{
	"euler":              kEuler,
	"euler_ancestral":    kEulerAncestral,
	"heun":               kHeun,
	"heunpp2":            kHeunPP2,
	"dpm_2":              kDPM2,
	"dpm_2_ancestral":    kDPM2Ancestral,
	"lms":                kLMS,
	"dpm_fast":           kDPMFast,
	"dpm_adaptive":       kDPMAdaptive,
	"dpmpp_2s_ancestral": kDPMpp2SAncestral,
	"dpmpp_sde":          kDPMppSDE,
	"dpmpp_2m":           kDPMpp2M,
	"dpmpp_2m_sde":       kDPMpp2MSDE,
	"dpmpp_3m_sde":       kDPMpp3MSDE,
	"lcm":                kLCM,
	"restart":            kRestart,
}

// KSamplerNames lists the k-diffusion sampler functions.
func KSamplerNames() []string {
	var out []string
	for n := range kFuncs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Elementwise helpers, float64 arithmetic rounded to float32 per result.

// axpy returns x + a·d.
func axpy(x []float32, a float64, d []float32) []float32 {
	out := make([]float32, len(x))
	for k := range out {
		out[k] = float32(float64(x[k]) + a*float64(d[k]))
	}
	return out
}

// lin2 returns a·x + b·y.
func lin2(a float64, x []float32, b float64, y []float32) []float32 {
	out := make([]float32, len(x))
	for k := range out {
		out[k] = float32(a*float64(x[k]) + b*float64(y[k]))
	}
	return out
}

// toD is the Karras ODE derivative (x − D)/σ.
func toD(x []float32, sigma float64, den []float32) []float32 {
	out := make([]float32, len(x))
	for k := range out {
		out[k] = float32((float64(x[k]) - float64(den[k])) / sigma)
	}
	return out
}

// ancestralStep splits a step from σ_from to σ_to into a deterministic step
// to σ_down and fresh noise of σ_up (k-diffusion's get_ancestral_step).
func ancestralStep(from, to, eta float64) (down, up float64) {
	if eta == 0 {
		return to, 0
	}
	up = math.Min(to, eta*math.Sqrt(to*to*(from*from-to*to)/(from*from)))
	return math.Sqrt(to*to - up*up), up
}

// addNoise returns x + c·z for fresh noise z.
func (k *kCtx) addNoise(x []float32, c float64) []float32 { return axpy(x, c, k.noise(len(x))) }

// churnHat is Karras et al.'s σ̂ = σ(1+γ) with the noise that raises x to it.
func (k *kCtx) churnHat(x []float32, sigmas []float64, i int) ([]float32, float64) {
	c := k.churn
	tmax := c.TMax
	if tmax == 0 {
		tmax = math.Inf(1)
	}
	gamma := 0.0
	if c.Amount > 0 && c.TMin <= sigmas[i] && sigmas[i] <= tmax {
		gamma = math.Min(c.Amount/float64(len(sigmas)-1), math.Sqrt2-1)
	}
	hat := sigmas[i] * (gamma + 1)
	if gamma > 0 {
		sn := c.Noise
		if sn == 0 {
			sn = 1
		}
		x = k.addNoise(x, sn*math.Sqrt(hat*hat-sigmas[i]*sigmas[i]))
	}
	return x, hat
}

func kEuler(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		var hat float64
		x, hat = k.churnHat(x, sig, i)
		d := toD(x, hat, k.model(x, hat))
		x = axpy(x, sig[i+1]-hat, d)
	}
	return x
}

func kEulerAncestral(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		down, up := ancestralStep(sig[i], sig[i+1], k.eta)
		x = axpy(x, down-sig[i], toD(x, sig[i], den))
		if sig[i+1] > 0 {
			x = k.addNoise(x, up)
		}
	}
	return x
}

func kHeun(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		var hat float64
		x, hat = k.churnHat(x, sig, i)
		d := toD(x, hat, k.model(x, hat))
		dt := sig[i+1] - hat
		if sig[i+1] == 0 {
			x = axpy(x, dt, d)
			continue
		}
		x2 := axpy(x, dt, d)
		d2 := toD(x2, sig[i+1], k.model(x2, sig[i+1]))
		x = axpy(x, dt, lin2(0.5, d, 0.5, d2))
	}
	return x
}

// kHeunPP2 is Heun++ (ComfyUI's sample_heunpp2, after Carzit's
// sd-webui-samplers-scheduler): a third evaluation away from the end and
// σ-weighted derivatives.
func kHeunPP2(k *kCtx, x []float32, sig []float64) []float32 {
	end := sig[len(sig)-1]
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		var hat float64
		x, hat = k.churnHat(x, sig, i)
		d := toD(x, hat, k.model(x, hat))
		dt := sig[i+1] - hat
		switch {
		case sig[i+1] == end:
			x = axpy(x, dt, d)
		case sig[i+2] == end:
			x2 := axpy(x, dt, d)
			d2 := toD(x2, sig[i+1], k.model(x2, sig[i+1]))
			w2 := sig[i+1] / (2 * sig[0])
			x = axpy(x, dt, lin2(1-w2, d, w2, d2))
		default:
			x2 := axpy(x, dt, d)
			d2 := toD(x2, sig[i+1], k.model(x2, sig[i+1]))
			x3 := axpy(x2, sig[i+2]-sig[i+1], d2)
			d3 := toD(x3, sig[i+2], k.model(x3, sig[i+2]))
			w := 3 * sig[0]
			w2, w3 := sig[i+1]/w, sig[i+2]/w
			w1 := 1 - w2 - w3
			dp := make([]float32, len(x))
			for j := range dp {
				dp[j] = float32(w1*float64(d[j]) + w2*float64(d2[j]) + w3*float64(d3[j]))
			}
			x = axpy(x, dt, dp)
		}
	}
	return x
}

// logMid is exp(lerp(log a, log b, 1/2)), the DPM-Solver-2 midpoint.
func logMid(a, b float64) float64 { return math.Exp(math.Log(a) + 0.5*(math.Log(b)-math.Log(a))) }

func kDPM2(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		var hat float64
		x, hat = k.churnHat(x, sig, i)
		d := toD(x, hat, k.model(x, hat))
		if sig[i+1] == 0 {
			x = axpy(x, sig[i+1]-hat, d)
			continue
		}
		mid := logMid(hat, sig[i+1])
		x2 := axpy(x, mid-hat, d)
		d2 := toD(x2, mid, k.model(x2, mid))
		x = axpy(x, sig[i+1]-hat, d2)
	}
	return x
}

func kDPM2Ancestral(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		down, up := ancestralStep(sig[i], sig[i+1], k.eta)
		d := toD(x, sig[i], den)
		if down == 0 {
			x = axpy(x, down-sig[i], d)
			continue
		}
		mid := logMid(sig[i], down)
		x2 := axpy(x, mid-sig[i], d)
		d2 := toD(x2, mid, k.model(x2, mid))
		x = axpy(x, down-sig[i], d2)
		x = k.addNoise(x, up)
	}
	return x
}

func kLMS(k *kCtx, x []float32, sig []float64) []float32 {
	const order = 4
	var ds [][]float32
	s32 := make([]float32, len(sig))
	for i, v := range sig {
		s32[i] = float32(v)
	}
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		d := toD(x, sig[i], k.model(x, sig[i]))
		ds = append(ds, d)
		if len(ds) > order {
			ds = ds[1:]
		}
		cur := min(i+1, order)
		next := make([]float32, len(x))
		cs := make([]float64, cur)
		for j := range cs {
			cs[j] = lmsCoefficient(s32, cur, i, j)
		}
		for e := range next {
			acc := float64(x[e])
			for j := range cs {
				acc += cs[j] * float64(ds[len(ds)-1-j][e])
			}
			next[e] = float32(acc)
		}
		x = next
	}
	return x
}

// sigmaFn and tFn are DPM-Solver's σ(t) = e^−t and t(σ) = −log σ.
func sigmaFn(t float64) float64 { return math.Exp(-t) }
func tFn(sigma float64) float64 { return -math.Log(sigma) }

func kDPMpp2SAncestral(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		down, up := ancestralStep(sig[i], sig[i+1], k.eta)
		if down == 0 {
			x = axpy(x, down-sig[i], toD(x, sig[i], den))
		} else {
			t, tn := tFn(sig[i]), tFn(down)
			h := tn - t
			s := t + 0.5*h
			x2 := lin2(sigmaFn(s)/sigmaFn(t), x, -math.Expm1(-h*0.5), den)
			den2 := k.model(x2, sigmaFn(s))
			x = lin2(sigmaFn(tn)/sigmaFn(t), x, -math.Expm1(-h), den2)
		}
		if sig[i+1] > 0 {
			x = k.addNoise(x, up)
		}
	}
	return x
}

// kDPMppSDE is DPM-Solver++ (stochastic) with r = 1/2; it draws noise twice
// per step (k-diffusion uses a Brownian tree there; here the request's
// noise source).
func kDPMppSDE(k *kCtx, x []float32, sig []float64) []float32 {
	const r = 0.5
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		if sig[i+1] == 0 {
			x = axpy(x, sig[i+1]-sig[i], toD(x, sig[i], den))
			continue
		}
		t, tn := tFn(sig[i]), tFn(sig[i+1])
		h := tn - t
		s := t + h*r
		fac := 1 / (2 * r)
		sd, su := ancestralStep(sigmaFn(t), sigmaFn(s), k.eta)
		s_ := tFn(sd)
		x2 := lin2(sigmaFn(s_)/sigmaFn(t), x, -math.Expm1(t-s_), den)
		x2 = k.addNoise(x2, su)
		den2 := k.model(x2, sigmaFn(s))
		sd, su = ancestralStep(sigmaFn(t), sigmaFn(tn), k.eta)
		tn_ := tFn(sd)
		dd := lin2(1-fac, den, fac, den2)
		x = lin2(sigmaFn(tn_)/sigmaFn(t), x, -math.Expm1(t-tn_), dd)
		x = k.addNoise(x, su)
	}
	return x
}

func kDPMpp2M(k *kCtx, x []float32, sig []float64) []float32 {
	var old []float32
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		t, tn := tFn(sig[i]), tFn(sig[i+1])
		h := tn - t
		if old == nil || sig[i+1] == 0 {
			x = lin2(sigmaFn(tn)/sigmaFn(t), x, -math.Expm1(-h), den)
		} else {
			r := (t - tFn(sig[i-1])) / h
			dd := lin2(1+1/(2*r), den, -1/(2*r), old)
			x = lin2(sigmaFn(tn)/sigmaFn(t), x, -math.Expm1(-h), dd)
		}
		old = den
	}
	return x
}

func kDPMpp2MSDE(k *kCtx, x []float32, sig []float64) []float32 {
	var old []float32
	var hLast float64
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		var h float64
		if sig[i+1] == 0 {
			x = den
		} else {
			t, s := -math.Log(sig[i]), -math.Log(sig[i+1])
			h = s - t
			eh := k.eta * h
			x = lin2(sig[i+1]/sig[i]*math.Exp(-eh), x, -math.Expm1(-h-eh), den)
			if old != nil {
				r := hLast / h
				var c float64
				if k.opts.heun {
					c = (-math.Expm1(-h-eh)/(-h-eh) + 1) * (1 / r)
				} else {
					c = 0.5 * -math.Expm1(-h-eh) * (1 / r)
				}
				x = axpy(x, c, lin2(1, den, -1, old))
			}
			if k.eta != 0 {
				x = k.addNoise(x, sig[i+1]*math.Sqrt(-math.Expm1(-2*eh)))
			}
		}
		old, hLast = den, h
	}
	return x
}

func kDPMpp3MSDE(k *kCtx, x []float32, sig []float64) []float32 {
	var d1, d2 []float32 // the last two denoised
	var h1, h2 float64
	have := 0
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		den := k.model(x, sig[i])
		var h float64
		if sig[i+1] == 0 {
			x = den
		} else {
			t, s := -math.Log(sig[i]), -math.Log(sig[i+1])
			h = s - t
			he := h * (k.eta + 1)
			x = lin2(math.Exp(-he), x, -math.Expm1(-he), den)
			phi2 := math.Expm1(-he)/he + 1
			switch {
			case have >= 2:
				r0, r1 := h1/h, h2/h
				x = step3M(x, den, d1, d2, r0, r1, phi2, phi2/he-0.5)
			case have == 1:
				x = axpy(x, phi2/(h1/h), lin2(1, den, -1, d1))
			}
			if k.eta != 0 {
				x = k.addNoise(x, sig[i+1]*math.Sqrt(-math.Expm1(-2*h*k.eta)))
			}
		}
		d1, d2 = den, d1
		h1, h2 = h, h1
		have++
	}
	return x
}

// step3M adds DPM-Solver++(3M)'s second- and third-order corrections.
func step3M(x, den, d1, d2 []float32, r0, r1, phi2, phi3 float64) []float32 {
	out := make([]float32, len(x))
	for e := range out {
		d10 := (float64(den[e]) - float64(d1[e])) / r0
		d11 := (float64(d1[e]) - float64(d2[e])) / r1
		dd1 := d10 + (d10-d11)*r0/(r0+r1)
		dd2 := (d10 - d11) / (r0 + r1)
		out[e] = float32(float64(x[e]) + phi2*dd1 - phi3*dd2)
	}
	return out
}

// kLCM is the LCM sampler (Luo et al. 2023; ComfyUI's sample_lcm, A1111's
// LCM): jump to the denoised sample, then noise it to the next σ.
func kLCM(k *kCtx, x []float32, sig []float64) []float32 {
	for i := 0; i < len(sig)-1; i++ {
		k.mark(i)
		x = k.model(x, sig[i])
		if sig[i+1] > 0 {
			x = k.addNoise(x, sig[i+1])
		}
	}
	return x
}

// kRestart is Restart sampling (Xu et al. 2023, arXiv:2306.14878) as
// AUTOMATIC1111's sd_samplers_extra.restart_sampler runs it: Heun steps;
// from 20 steps on, a Karras schedule with fewer steps plus restart
// segments that add noise back up from σ≈0.1 to σ≈2 and descend again
// (9 steps once, or steps/4 twice from 36 steps on).
func kRestart(k *kCtx, x []float32, sig []float64) []float32 {
	k.mark(0) // it rebuilds the schedule: a run starts at the top only
	steps := len(sig) - 1
	type seg struct{ from, to float64 }
	restart := map[int][3]float64{} // index → restart steps, times, max σ
	if steps >= 20 {
		rs, rt := 9, 1
		if steps >= 36 {
			rs, rt = steps/4, 2
		}
		sig = append(karrasSigmas(sig[len(sig)-2], sig[0], steps-rs*rt), 0)
		restart[nearest(sig, 0.1)] = [3]float64{float64(rs + 1), float64(rt), 2}
	}
	var list []seg
	for i := 0; i < len(sig)-1; i++ {
		list = append(list, seg{sig[i], sig[i+1]})
		r, ok := restart[i+1]
		if !ok {
			continue
		}
		lo, hi := i+1, nearest(sig, r[2])
		if hi < lo {
			rs := karrasSigmas(sig[lo], sig[hi], int(r[0]))
			for t := 0; t < int(r[1]); t++ {
				for j := 0; j+1 < len(rs); j++ {
					list = append(list, seg{rs[j], rs[j+1]})
				}
			}
		}
	}
	last := math.NaN()
	for _, st := range list {
		if !math.IsNaN(last) && last < st.from {
			x = k.addNoise(x, math.Sqrt(st.from*st.from-last*last))
		}
		d := toD(x, st.from, k.model(x, st.from))
		dt := st.to - st.from
		if st.to == 0 {
			x = axpy(x, dt, d)
		} else {
			x2 := axpy(x, dt, d)
			d2 := toD(x2, st.to, k.model(x2, st.to))
			x = axpy(x, dt, lin2(0.5, d, 0.5, d2))
		}
		last = st.to
	}
	return x
}

// nearest is the index of the sigma closest to v (torch.argmin |σ − v|).
func nearest(sig []float64, v float64) int {
	best, bi := math.Inf(1), 0
	for i, s := range sig {
		if d := math.Abs(s - v); d < best {
			best, bi = d, i
		}
	}
	return bi
}

// kDPMFast is DPM-Solver-Fast (Lu et al. 2022, arXiv:2206.00927; k-diffusion's
// sample_dpm_fast with eta 0): n model calls in third-order steps evenly
// spaced in t = −log σ from σ_max (sigmas[0]) to σ_min (the last nonzero
// sigma), n = len(sigmas) − 1.
func kDPMFast(k *kCtx, x []float32, sig []float64) []float32 {
	k.mark(0)
	nfe := len(sig) - 1
	lo := sig[len(sig)-1]
	if lo == 0 {
		lo = sig[len(sig)-2]
	}
	tStart, tEnd := tFn(sig[0]), tFn(lo)
	m := nfe/3 + 1
	ts := torchLinspace32(float32(tStart), float32(tEnd), m+1)
	var orders []int
	if nfe%3 == 0 {
		for range m - 2 {
			orders = append(orders, 3)
		}
		orders = append(orders, 2, 1)
	} else {
		for range m - 1 {
			orders = append(orders, 3)
		}
		orders = append(orders, nfe%3)
	}
	epsAt := func(x []float32, t float64) []float32 {
		s := sigmaFn(t)
		return toD(x, s, k.model(x, s)) // (x − D)/σ
	}
	for i, o := range orders {
		t, tn := float64(ts[i]), float64(ts[i+1])
		h := tn - t
		eps := epsAt(x, t)
		switch o {
		case 1:
			x = axpy(x, -sigmaFn(tn)*math.Expm1(h), eps)
		case 2:
			const r1 = 0.5
			s1 := t + r1*h
			u1 := axpy(x, -sigmaFn(s1)*math.Expm1(r1*h), eps)
			e1 := epsAt(u1, s1)
			c := -sigmaFn(tn) * math.Expm1(h)
			x = dpmCombine(x, c, eps, c/(2*r1), e1)
		default:
			const r1, r2 = 1.0 / 3, 2.0 / 3
			s1, s2 := t+r1*h, t+r2*h
			u1 := axpy(x, -sigmaFn(s1)*math.Expm1(r1*h), eps)
			e1 := epsAt(u1, s1)
			u2 := dpmCombine(x, -sigmaFn(s2)*math.Expm1(r2*h), eps, -sigmaFn(s2)*(r2/r1)*(math.Expm1(r2*h)/(r2*h)-1), e1)
			e2 := epsAt(u2, s2)
			x = dpmCombine(x, -sigmaFn(tn)*math.Expm1(h), eps, -sigmaFn(tn)/r2*(math.Expm1(h)/h-1), e2)
		}
		// k-diffusion draws the step's noise even at eta 0 (times σ_up = 0);
		// drawing it keeps the noise stream where k-diffusion leaves it.
		k.burn(len(x))
	}
	return x
}

// dpmCombine returns x + a·eps + b·(e1 − eps).
func dpmCombine(x []float32, a float64, eps []float32, b float64, e1 []float32) []float32 {
	out := make([]float32, len(x))
	for k := range out {
		e := float64(eps[k])
		out[k] = float32(float64(x[k]) + a*e + b*(float64(e1[k])-e))
	}
	return out
}

// kdiff is a k-diffusion sampler behind the Scheduler's step API.
type kdiff struct {
	s     *Scheduler
	name  string
	fn    kFunc
	kind  string // sigma schedule kind
	opts  kOptions
	table modelSigmas

	sched     []float64 // the sigma schedule, final 0 included
	calls     []float64 // σ of every model call
	stepCalls []int     // first call of each step of sched (-1: none)
	run       *kRun
	holder    *kHolder
	// open: the model calls depend on the sample (dpm_adaptive). The plan
	// holds the first call only; each step appends the next one to the
	// Scheduler's timesteps and sigmas, and from is the schedule step the
	// run starts at (img2img).
	open bool
	from int
}

// kRun is one coroutine run of a sampler function. The coroutine refers to
// it but not to the Scheduler, so an abandoned Scheduler is collected and
// its cleanup stops the coroutine.
type kRun struct {
	next  func() (kCall, bool)
	stop  func()
	reply []float32
	noise Noise
	final []float32
	err   error
	start int // model-call index of the run's first call
}

type kHolder struct{ run *kRun }

type kCall struct {
	x     []float32
	sigma float64
}

type kAbort struct{ err error }

func newKDiff(s *Scheduler, ch Choice) (*kdiff, error) {
	fn, ok := kFuncs[ch.Sampler]
	if !ok {
		return nil, fmt.Errorf("scheduler: unknown k-diffusion sampler %q (%s)", ch.Sampler, strings.Join(KSamplerNames(), ", "))
	}
	if _, ok := sigmaSchedules[ch.Schedule]; !ok && ch.Schedule != "polyexponential_rho2" {
		return nil, fmt.Errorf("scheduler: unknown sigma schedule %q (%s)", ch.Schedule, scheduleKinds())
	}
	table, err := kModelSigmas(s.cfg)
	if err != nil {
		return nil, err
	}
	k := &kdiff{s: s, name: ch.Sampler, fn: fn, kind: ch.Schedule, opts: ch.k, table: table, holder: &kHolder{}, open: ch.Sampler == "dpm_adaptive"}
	runtime.AddCleanup(s, func(h *kHolder) {
		if h.run != nil {
			h.run.stop()
		}
	}, k.holder)
	return k, nil
}

func (k *kdiff) eta() float64 {
	if k.s.Eta > 0 {
		return k.s.Eta
	}
	return 1 // A1111's "Eta for ancestral samplers" and k-diffusion's default
}

// sigmasFor is the schedule for n steps, with the UI's discard quirk.
func (k *kdiff) sigmasFor(n int) ([]float64, error) {
	if k.opts.discard {
		sig, err := kScheduleSigmas(k.kind, k.table, n+1)
		if err != nil || len(sig) < 3 {
			return sig, err
		}
		return append(sig[:len(sig)-2:len(sig)-2], sig[len(sig)-1]), nil
	}
	return kScheduleSigmas(k.kind, k.table, n)
}

func (k *kdiff) plan(n int) ([]float64, []float32, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("%w: %d steps: need at least 1", ErrSteps, n)
	}
	sig, err := k.sigmasFor(n)
	if err != nil {
		return nil, nil, err
	}
	if len(sig) < 2 {
		return nil, nil, fmt.Errorf("%w: the %s schedule has no step at %d steps", ErrSteps, k.kind, n)
	}
	k.stopRun()
	k.sched = sig
	if k.open {
		if len(sig) < 3 {
			return nil, nil, fmt.Errorf("%w: DPM adaptive integrates from σ_max to the schedule's last nonzero σ: it needs at least 2 steps", ErrSteps)
		}
		k.from = 0
		ts, sigmas := k.openPlan()
		return ts, sigmas, nil
	}
	// A dry run on a one-element latent records the call sigmas: they
	// depend on the schedule only, never on the sample.
	k.calls, k.stepCalls = nil, make([]int, len(sig))
	for i := range k.stepCalls {
		k.stepCalls[i] = -1
	}
	dry := &kCtx{eta: k.eta(), churn: k.s.Churn, opts: k.opts,
		model: func(x []float32, sigma float64) []float32 {
			k.calls = append(k.calls, sigma)
			return append([]float32(nil), x...)
		},
		noise: func(n int) []float32 { return make([]float32, n) },
		burn:  func(int) {},
		mark: func(i int) {
			if k.stepCalls[i] < 0 {
				k.stepCalls[i] = len(k.calls)
			}
		},
	}
	k.fn(dry, []float32{0}, sig)
	ts := make([]float64, len(k.calls))
	sigmas := make([]float32, len(k.calls)+1)
	for i, v := range k.calls {
		ts[i] = k.table.t(v)
		sigmas[i] = float32(v)
	}
	if k.name == "dpm_fast" { // it ends at σ_min, not 0
		sigmas[len(k.calls)] = float32(sig[len(sig)-2])
	}
	return ts, sigmas, nil
}

// openPlan is an open sampler's plan from schedule step k.from: its first
// call, at sched[from], and the final σ_min.
func (k *kdiff) openPlan() ([]float64, []float32) {
	first := k.sched[k.from]
	k.calls = []float64{first}
	k.stepCalls = make([]int, len(k.sched))
	for i := range k.stepCalls {
		k.stepCalls[i] = -1
	}
	k.stepCalls[k.from] = 0
	return []float64{k.table.t(first)}, []float32{float32(first), float32(k.sched[len(k.sched)-2])}
}

func (k *kdiff) stopRun() {
	if k.run != nil {
		k.run.stop()
		k.run, k.holder.run = nil, nil
	}
}

func (k *kdiff) initNoiseSigma() float64 { return k.sched[0] }

func (k *kdiff) inputDivisor(i int) float32 {
	s := k.s.sigmas[i]
	return sqrt32(s*s + 1)
}

func (k *kdiff) addNoise(x0, noise []float32, i int) []float32 {
	return axpy(x0, float64(k.s.sigmas[i]), noise)
}

func (k *kdiff) x0Map(i int) (lin, error) {
	return kDenoised(k.s.cfg.PredictionType, k.s.sigmas[i]), nil
}

// beginCall is the model call where step j of the schedule starts.
//
// An open sampler (dpm_adaptive) re-plans to start at step j, as A1111 runs
// it in img2img (σ_max = the schedule's σ at the start step), and returns 0.
func (k *kdiff) beginCall(j int) int {
	if k.open && j > 0 && j < len(k.sched)-1 {
		k.stopRun()
		k.from = j
		k.s.timesteps, k.s.sigmas = k.openPlan()
		return 0
	}
	if j <= 0 {
		return 0
	}
	if j >= len(k.stepCalls) || k.stepCalls[j] < 0 {
		return len(k.calls)
	}
	return k.stepCalls[j]
}

// start runs the sampler from call i with sample x: from the step that
// call i begins, on the rest of the schedule.
func (k *kdiff) start(i int, x []float32) error {
	j := 0
	if i > 0 {
		j = -1
		for s, c := range k.stepCalls {
			if c == i {
				j = s
				break
			}
		}
		if j < 0 || k.open || k.name == "dpm_fast" || k.name == "restart" {
			return fmt.Errorf("%s cannot start at model call %d (img2img starts at a step)", k.name, i)
		}
	}
	if k.open {
		j = k.from
	}
	sig := k.sched[j:]
	run := &kRun{start: i}
	fn, eta, churn, opts, x0 := k.fn, k.eta(), k.s.Churn, k.opts, append([]float32(nil), x...)
	seq := func(yield func(kCall) bool) {
		defer func() {
			if r := recover(); r != nil {
				if a, ok := r.(kAbort); ok {
					run.err = a.err
					return
				}
				panic(r)
			}
		}()
		c := &kCtx{eta: eta, churn: churn, opts: opts, mark: func(int) {},
			model: func(x []float32, sigma float64) []float32 {
				if !yield(kCall{x, sigma}) {
					panic(kAbort{errors.New("stopped")})
				}
				return run.reply
			},
			noise: func(n int) []float32 {
				if run.noise == nil {
					panic(kAbort{errors.New("this sampler injects noise: a Noise source is required")})
				}
				buf := make([]float32, n)
				run.noise.Normal(buf)
				return buf
			},
			burn: func(n int) {
				if run.noise != nil {
					run.noise.Normal(make([]float32, n))
				}
			},
		}
		run.final = fn(c, x0, sig)
	}
	run.next, run.stop = iter.Pull(seq)
	k.run, k.holder.run = run, run
	call, ok := run.next()
	if !ok {
		return fmt.Errorf("%s made no model call", k.name)
	}
	if want := k.calls[i]; math.Abs(call.sigma-want) > 1e-6*want {
		return fmt.Errorf("%s from step %d calls the model at σ %g, planned %g", k.name, j, call.sigma, want)
	}
	return nil
}

func (k *kdiff) step(i int, out, x []float32, noise Noise) ([]float32, error) {
	if k.run == nil {
		if err := k.start(i, x); err != nil {
			return nil, err
		}
	}
	d := kDenoised(k.s.cfg.PredictionType, k.s.sigmas[i])
	den := make([]float32, len(x))
	for e := range den {
		den[e] = float32(d.at(x[e], out[e]))
	}
	run := k.run
	run.reply, run.noise = den, noise
	call, ok := run.next()
	if run.err != nil {
		err := run.err
		k.stopRun()
		return nil, err
	}
	if ok && k.open {
		// The sampler asked for its next call: it becomes call i+1.
		if len(k.calls) >= adaptiveMaxCalls {
			k.stopRun()
			return nil, errAdaptiveCap()
		}
		k.calls = append(k.calls, call.sigma)
		last := k.s.sigmas[len(k.s.sigmas)-1]
		k.s.timesteps = append(k.s.timesteps, k.table.t(call.sigma))
		k.s.sigmas = append(k.s.sigmas[:len(k.s.sigmas)-1:len(k.s.sigmas)-1], float32(call.sigma), last)
	}
	if ok {
		return call.x, nil
	}
	if i != len(k.calls)-1 {
		return nil, fmt.Errorf("%s finished after call %d of %d", k.name, i+1, len(k.calls))
	}
	final := run.final
	k.stopRun()
	return final, nil
}
