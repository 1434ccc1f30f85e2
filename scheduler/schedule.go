package scheduler

import (
	"fmt"
	"math"
)

var negInf = math.Inf(-1)

// Schedule is the training noise schedule: betas, alphas = 1 − betas and
// alphas_cumprod, all float32 as diffusers keeps them. It gives the forward
// process q(x_t | x_0) used for training and img2img.
type Schedule struct {
	Betas         []float32
	Alphas        []float32
	AlphasCumprod []float32
}

// NewSchedule builds the schedule described by cfg (num_train_timesteps,
// beta_start, beta_end, beta_schedule, trained_betas, rescale_betas_zero_snr).
func NewSchedule(cfg Config) (*Schedule, error) {
	return newSchedule(cfg, true, false, "sigmoid", "exp")
}

func newSchedule(cfg Config, rescale, floor bool, extra ...string) (*Schedule, error) {
	n := cfg.NumTrainTimesteps
	if cfg.TrainedBetas != nil {
		n = len(cfg.TrainedBetas)
	}
	if n < 2 {
		return nil, fmt.Errorf("scheduler: num_train_timesteps %d: need at least 2", n)
	}
	var betas []float32
	allowed := func(name string) bool {
		for _, e := range extra {
			if e == name {
				return true
			}
		}
		return false
	}
	switch {
	case cfg.TrainedBetas != nil:
		betas = make([]float32, n)
		for i, b := range cfg.TrainedBetas {
			betas[i] = float32(b)
		}
	case cfg.BetaSchedule == "linear":
		betas = torchLinspace32(float32(cfg.BetaStart), float32(cfg.BetaEnd), n)
	case cfg.BetaSchedule == "scaled_linear":
		betas = torchLinspace32(float32(math.Sqrt(cfg.BetaStart)), float32(math.Sqrt(cfg.BetaEnd)), n)
		for i, b := range betas {
			betas[i] = b * b
		}
	case cfg.BetaSchedule == "squaredcos_cap_v2":
		// Nichol & Dhariwal 2021, "Improved DDPM", eq. 17 with s = 0.008.
		betas = betasForAlphaBar(n, func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		})
	case cfg.BetaSchedule == "exp" && allowed("exp"):
		betas = betasForAlphaBar(n, func(t float64) float64 { return math.Exp(t * -12.0) })
	case cfg.BetaSchedule == "sigmoid" && allowed("sigmoid"):
		x := torchLinspace32(-6, 6, n)
		betas = make([]float32, n)
		for i, v := range x {
			s := float32(1 / (1 + math.Exp(-float64(v))))
			betas[i] = s*float32(cfg.BetaEnd-cfg.BetaStart) + float32(cfg.BetaStart)
		}
	default:
		return nil, fmt.Errorf("scheduler: beta_schedule %q is not supported (linear, scaled_linear, squaredcos_cap_v2)", cfg.BetaSchedule)
	}
	if rescale && cfg.RescaleBetasZeroSNR {
		betas = rescaleZeroTerminalSNR(betas)
	}
	s := &Schedule{Betas: betas, Alphas: make([]float32, n), AlphasCumprod: make([]float32, n)}
	for i, b := range betas {
		s.Alphas[i] = 1 - b
	}
	cumprod32(s.AlphasCumprod, s.Alphas)
	if rescale && floor && cfg.RescaleBetasZeroSNR {
		// diffusers keeps the last sigma finite this way.
		s.AlphasCumprod[n-1] = 1.0 / (1 << 24)
	}
	return s, nil
}

// betasForAlphaBar discretises a cumulative alpha function on [0,1], in float64
// and capped at 0.999, as diffusers' betas_for_alpha_bar does.
func betasForAlphaBar(n int, alphaBar func(float64) float64) []float32 {
	betas := make([]float32, n)
	for i := range betas {
		t1 := float64(i) / float64(n)
		t2 := float64(i+1) / float64(n)
		betas[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
	}
	return betas
}

// rescaleZeroTerminalSNR shifts and scales sqrt(alphas_cumprod) so that the
// last step has zero SNR (Lin et al. 2023, arXiv:2305.08891, Algorithm 1),
// in float32 as diffusers does.
func rescaleZeroTerminalSNR(betas []float32) []float32 {
	n := len(betas)
	alphas := make([]float32, n)
	for i, b := range betas {
		alphas[i] = 1 - b
	}
	sq := make([]float32, n)
	cumprod32(sq, alphas)
	for i, a := range sq {
		sq[i] = sqrt32(a)
	}
	a0, aT := sq[0], sq[n-1]
	scale := a0 / (a0 - aT)
	for i := range sq {
		v := sq[i] - aT
		v *= scale
		sq[i] = v * v
	}
	out := make([]float32, n)
	out[0] = 1 - sq[0]
	for i := 1; i < n; i++ {
		out[i] = 1 - sq[i]/sq[i-1]
	}
	return out
}

// cumprod32 is torch.cumprod on a CPU float32 tensor: the running product is
// kept in float64 and each output rounded to float32.
func cumprod32(dst, src []float32) {
	p := 1.0
	for i, v := range src {
		p *= float64(v)
		dst[i] = float32(p)
	}
}

// torchLinspace32 reproduces torch.linspace(start, end, n, dtype=float32) on
// an x86-64 CPU bit for bit: the AVX2 kernel computes values from the nearer
// end in blocks of 8 (start + step·idx, then + j·step, fused multiply-adds)
// and the tail element by element.
func torchLinspace32(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(n-1)
	half := n / 2
	fma := func(a, b, c float32) float32 { return float32(math.FMA(float64(a), float64(b), float64(c))) }
	at := func(idx int) float32 {
		if idx < half {
			return fma(step, float32(idx), start)
		}
		return fma(-step, float32(n-idx-1), end)
	}
	const vec = 8
	i := 0
	for ; i <= n-2*vec; i += vec {
		base := at(i)
		for j := 0; j < vec; j++ {
			out[i+j] = fma(float32(j), step, base)
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
func log32(x float32) float32  { return float32(math.Log(float64(x))) }
func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }

// checkT validates a training timestep.
func (s *Schedule) checkT(t int) error {
	if t < 0 || t >= len(s.AlphasCumprod) {
		return fmt.Errorf("scheduler: timestep %d outside [0, %d)", t, len(s.AlphasCumprod))
	}
	return nil
}

func (s *Schedule) coeffs(t int) (a, b float32) {
	ac := s.AlphasCumprod[t]
	return sqrt32(ac), sqrt32(1 - ac)
}

// AddNoise returns sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·noise, the forward diffusion
// q(x_t | x_0) (diffusers' add_noise for DDPM/DDIM/PNDM), in float32.
func (s *Schedule) AddNoise(x0, noise []float32, t int) ([]float32, error) {
	if err := s.checkT(t); err != nil {
		return nil, err
	}
	if len(x0) != len(noise) {
		return nil, fmt.Errorf("scheduler: AddNoise: %d samples but %d noise values", len(x0), len(noise))
	}
	a, b := s.coeffs(t)
	out := make([]float32, len(x0))
	for i := range out {
		out[i] = float32(a*x0[i]) + float32(b*noise[i])
	}
	return out, nil
}

// Velocity returns the v-prediction training target
// sqrt(ᾱ_t)·noise − sqrt(1−ᾱ_t)·x0 (Salimans & Ho 2022), in float32.
func (s *Schedule) Velocity(x0, noise []float32, t int) ([]float32, error) {
	if err := s.checkT(t); err != nil {
		return nil, err
	}
	if len(x0) != len(noise) {
		return nil, fmt.Errorf("scheduler: Velocity: %d samples but %d noise values", len(x0), len(noise))
	}
	a, b := s.coeffs(t)
	out := make([]float32, len(x0))
	for i := range out {
		out[i] = float32(a*noise[i]) - float32(b*x0[i])
	}
	return out, nil
}

// AddNoiseBatch is AddNoise for a batch stored back to back: x0 holds
// len(ts) equal-sized samples and sample k is noised to timestep ts[k].
func (s *Schedule) AddNoiseBatch(x0, noise []float32, ts []int) ([]float32, error) {
	return s.batch(x0, noise, ts, s.AddNoise)
}

// VelocityBatch is Velocity for a batch stored back to back.
func (s *Schedule) VelocityBatch(x0, noise []float32, ts []int) ([]float32, error) {
	return s.batch(x0, noise, ts, s.Velocity)
}

func (s *Schedule) batch(x0, noise []float32, ts []int, f func(x, n []float32, t int) ([]float32, error)) ([]float32, error) {
	if len(ts) == 0 || len(x0)%len(ts) != 0 || len(noise) != len(x0) {
		return nil, fmt.Errorf("scheduler: batch of %d timesteps does not divide %d samples (%d noise values)", len(ts), len(x0), len(noise))
	}
	per := len(x0) / len(ts)
	out := make([]float32, 0, len(x0))
	for k, t := range ts {
		v, err := f(x0[k*per:(k+1)*per], noise[k*per:(k+1)*per], t)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return out, nil
}

// SNR returns the signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at training timestep t
// (used by Min-SNR loss weighting).
func (s *Schedule) SNR(t int) float64 {
	ac := float64(s.AlphasCumprod[t])
	return ac / (1 - ac)
}

// SNRs returns SNR(t) for every training timestep.
func (s *Schedule) SNRs() []float64 {
	out := make([]float64, len(s.AlphasCumprod))
	for t := range out {
		out[t] = s.SNR(t)
	}
	return out
}

// Sigmas returns the Karras-style noise levels sqrt((1−ᾱ_t)/ᾱ_t) for every
// training timestep, in float32 as diffusers computes them.
func (s *Schedule) Sigmas() []float32 {
	out := make([]float32, len(s.AlphasCumprod))
	for t, ac := range s.AlphasCumprod {
		out[t] = sqrt32((1 - ac) / ac)
	}
	return out
}
