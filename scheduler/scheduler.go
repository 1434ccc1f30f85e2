package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// ErrSteps is wrapped by the errors of SetTimesteps that refuse the number
// of steps (too few for the sampler, more than the training schedule), so a
// caller can blame the request's step count rather than the model.
var ErrSteps = errors.New("scheduler: unsupported number of steps")

// Noise is a source of standard normal noise. Samplers that inject noise
// (DDPM, DDIM with eta > 0, Euler ancestral, the SDE solvers) call Normal once
// per step with a buffer the size of the latent, in diffusers' order, so a
// torch-compatible seeded generator reproduces diffusers' images; tests replay
// recorded noise. For a batch, dst holds the samples back to back, so a
// source with one generator per image fills its own part of dst.
type Noise interface {
	Normal(dst []float32)
}

// NoiseFunc adapts a function to Noise.
type NoiseFunc func(dst []float32)

// Normal calls f(dst).
func (f NoiseFunc) Normal(dst []float32) { f(dst) }

// Scheduler runs one diffusers scheduler: it plans the timesteps of a
// sampling run and steps the latent from one model call to the next. Latents
// and model outputs are flat float32 slices; the scheduler is elementwise, so
// their shape does not matter. A Scheduler holds the state of one run and is
// not safe for concurrent use; make one per generation.
//
// The txt2img loop is
//
//	s.SetTimesteps(n)
//	x := s.InitLatents(unitNoise) // × InitNoiseSigma
//	for i, t := range s.Timesteps() {
//		eps := model(s.ScaleModelInput(x, i), t)
//		x, err = s.Step(eps, i, x, noise)
//	}
//
// Timesteps has one entry per model call: Heun makes 2n−1 calls and PNDM
// (PLMS) n+1. For img2img, begin := s.BeginIndex(strength), start from
// x := s.AddNoiseAt(initLatents, unitNoise, begin) and run i from begin.
type Scheduler struct {
	class *class
	cfg   Config
	sched *Schedule
	alg   sampler

	// Eta is the DDIM noise weight η (0: deterministic DDIM, 1: DDPM-like).
	// Only DDIMScheduler reads it; it is a step argument in diffusers.
	Eta float64
	// Churn is Euler's stochastic churn; only EulerDiscreteScheduler reads
	// it (step arguments in diffusers). The zero value is off.
	Churn Churn

	forcedKarras bool // Karras sigmas from a sampler name, for classes without use_karras_sigmas

	steps     int
	timesteps []float64
	sigmas    []float32
	next      int
}

// Churn is the stochastic churn of Karras et al. 2022 (arXiv:2206.00364,
// Algorithm 2) as diffusers' EulerDiscreteScheduler takes it: at steps with
// TMin ≤ σ ≤ TMax, noise is added to raise σ by the factor
// 1 + min(Amount/(number of sigmas − 1), √2 − 1). A zero TMax means no upper
// bound and a zero Noise means 1 (diffusers' s_tmax = inf, s_noise = 1).
type Churn struct {
	Amount     float64 // s_churn
	TMin, TMax float64 // s_tmin, s_tmax
	Noise      float64 // s_noise
}

// sampler is one sampling algorithm over the schedules of this package.
// Adding a sampler is adding one implementation and registering its class.
type sampler interface {
	// plan lays out n inference steps: the per-model-call timesteps and, for
	// samplers that walk a sigma schedule, the sigmas (one more than the
	// calls); it also resets the sampler's state.
	plan(n int) (timesteps []float64, sigmas []float32, err error)
	initNoiseSigma() float64
	// inputDivisor is what scale_model_input divides by at call i; 0 means
	// the model input is the sample itself.
	inputDivisor(i int) float32
	// addNoise noises a clean sample to the noise level of call i.
	addNoise(x0, noise []float32, i int) []float32
	step(i int, out, x []float32, noise Noise) ([]float32, error)
	// x0Map is the x0 prediction at call i as a map of (x, model output).
	x0Map(i int) (lin, error)
}

// New returns a scheduler for name, which is a diffusers class name
// ("EulerDiscreteScheduler") or a sampler name as users type it in
// AUTOMATIC1111 ("DPM++ 2M Karras", "Euler a") or ComfyUI ("dpmpp_2m",
// "euler_ancestral"); matching ignores case and spaces. config is the
// contents of a scheduler_config.json (nil: the class defaults); name may be
// empty to use the config's own "_class_name". The model's config supplies
// the noise schedule; the sampler name picks the algorithm and, for "Karras"
// names, Karras sigmas.
func New(name string, config []byte) (*Scheduler, error) {
	choice := Choice{}
	if name != "" {
		var err error
		if choice, err = ParseSampler(name); err != nil {
			return nil, err
		}
	}
	return NewChoice(choice, config)
}

// NewChoice is New for an already parsed sampler choice (see ParseSampler and
// ParseSamplerSchedule).
func NewChoice(choice Choice, config []byte) (*Scheduler, error) {
	if choice.Sampler != "" {
		return newKScheduler(choice, config)
	}
	className, cfg, err := ParseConfig(choice.Class, config)
	if err != nil {
		return nil, err
	}
	cfg, karras, err := choice.apply(className, cfg)
	if err != nil {
		return nil, err
	}
	return newScheduler(className, cfg, karras)
}

// NewFromConfig returns a scheduler of a diffusers class with cfg used as
// given (start from DefaultConfig to get the class defaults).
func NewFromConfig(className string, cfg Config) (*Scheduler, error) {
	return newScheduler(className, cfg, false)
}

func newScheduler(className string, cfg Config, forceKarras bool) (*Scheduler, error) {
	c, err := lookupClass(className)
	if err != nil {
		return nil, err
	}
	if cfg.Thresholding {
		return nil, fmt.Errorf("scheduler: %s: dynamic thresholding is for pixel-space models and is not supported", c.name)
	}
	switch cfg.PredictionType {
	case "epsilon", "v_prediction", "sample":
	default:
		return nil, fmt.Errorf("scheduler: prediction_type %q is not supported (epsilon, v_prediction, sample)", cfg.PredictionType)
	}
	sched, err := newSchedule(cfg, c.rescale, c.zeroSNRFloor, c.extraSchedules...)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, c.name)
	}
	if forceKarras {
		cfg.UseKarrasSigmas = true
	}
	s := &Scheduler{class: c, cfg: cfg, sched: sched, forcedKarras: forceKarras, next: -1}
	if s.alg, err = c.build(s); err != nil {
		return nil, err
	}
	return s, nil
}

// newKScheduler is a k-diffusion sampler over the noise table of the
// model's config (its own class's defaults where it is silent; Euler's when
// it names no class).
func newKScheduler(choice Choice, config []byte) (*Scheduler, error) {
	cls := ""
	if !hasClassName(config) {
		cls = ClassEuler
	}
	_, cfg, err := ParseConfig(cls, config)
	if err != nil {
		return nil, err
	}
	switch cfg.PredictionType {
	case "epsilon", "v_prediction", "sample":
	default:
		return nil, fmt.Errorf("scheduler: prediction_type %q is not supported (epsilon, v_prediction, sample)", cfg.PredictionType)
	}
	sched, err := NewSchedule(cfg)
	if err != nil {
		return nil, err
	}
	c := &class{name: "k-diffusion " + choice.Sampler + " (" + choice.Schedule + ")"}
	s := &Scheduler{class: c, cfg: cfg, sched: sched, next: -1}
	if s.alg, err = newKDiff(s, choice); err != nil {
		return nil, err
	}
	return s, nil
}

func hasClassName(config []byte) bool {
	var probe struct {
		Name string `json:"_class_name"`
	}
	_ = json.Unmarshal(pyjson.Sanitize(config), &probe)
	return probe.Name != ""
}

// Class returns the diffusers class name of the scheduler, or for a
// k-diffusion sampler "k-diffusion <sampler> (<schedule>)".
func (s *Scheduler) Class() string { return s.class.name }

// Config returns the effective configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// Schedule returns the training noise schedule (betas, alphas_cumprod).
func (s *Scheduler) Schedule() *Schedule { return s.sched }

// SetTimesteps plans a run of n inference steps and resets the sampler state.
func (s *Scheduler) SetTimesteps(n int) error {
	ts, sig, err := s.alg.plan(n)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, s.class.name)
	}
	s.steps, s.timesteps, s.sigmas, s.next = n, ts, sig, -1
	return nil
}

// NumInferenceSteps returns n as given to SetTimesteps.
func (s *Scheduler) NumInferenceSteps() int { return s.steps }

// Timesteps returns the timestep of every model call, in order. They are
// whole numbers for DDPM, DDIM, PNDM, DPM++ and UniPC, and may be fractional
// for Euler, Euler ancestral, LMS and Heun, which diffusers calls the model
// with as floats.
func (s *Scheduler) Timesteps() []float64 { return append([]float64(nil), s.timesteps...) }

// Calls is the number of model calls planned so far, len(Timesteps()).
// For every sampler but DPM adaptive it is fixed by SetTimesteps (and
// BeginIndex). DPM adaptive's calls depend on the sample: it plans its
// first call only, and each Step that leaves another call to make adds it,
// so a loop runs `for i := begin; i < s.Calls(); i++` and stops when
// the sampler is done.
func (s *Scheduler) Calls() int { return len(s.timesteps) }

// Timestep is the timestep of model call i (Timesteps()[i] without the copy).
func (s *Scheduler) Timestep(i int) float64 { return s.timesteps[i] }

// ExpectedCalls is the number of model calls a progress display should
// show as the total: Calls() for a fixed plan; for DPM adaptive an estimate
// (three calls per schedule step, at least one more than planned so far)
// until it is done, then the exact count.
func (s *Scheduler) ExpectedCalls() int {
	if k, ok := s.alg.(*kdiff); ok && k.open && (s.next < 0 || s.next < len(s.timesteps)) {
		return max(3*(len(k.sched)-1-k.from), len(s.timesteps)+1)
	}
	return len(s.timesteps)
}

// Sigmas returns the noise levels of the run, one per model call plus the
// final one, or nil for samplers that work on alphas_cumprod (DDPM, DDIM, PNDM).
func (s *Scheduler) Sigmas() []float32 { return append([]float32(nil), s.sigmas...) }

// InitNoiseSigma is the standard deviation of the initial noise: multiply a
// unit normal latent by it before the first step (txt2img).
func (s *Scheduler) InitNoiseSigma() float64 { return s.alg.initNoiseSigma() }

// InitLatents returns the txt2img starting latent: unit normal noise times
// InitNoiseSigma, in float32 as the diffusers pipeline computes it.
func (s *Scheduler) InitLatents(noise []float32) []float32 {
	sigma := float32(s.InitNoiseSigma())
	out := make([]float32, len(noise))
	for k, v := range noise {
		out[k] = v * sigma
	}
	return out
}

// Order is diffusers' scheduler order: model calls per inference step for
// img2img's start index (2 for Heun, else 1), from the class row.
func (s *Scheduler) Order() int { return max(s.class.order, 1) }

// BeginIndex returns the index into Timesteps where img2img with the given
// strength (0..1) starts, as diffusers' img2img pipeline computes it; run the
// loop from there and noise the init latents with AddNoiseAt at that index.
func (s *Scheduler) BeginIndex(strength float64) int {
	n := s.steps
	initT := int(float64(n) * strength)
	if initT > n {
		initT = n
	}
	start := n - initT
	if start < 0 {
		start = 0
	}
	begin := start * s.Order()
	if b, ok := s.alg.(interface{ beginCall(step int) int }); ok {
		begin = b.beginCall(start)
	}
	if begin > len(s.timesteps) {
		begin = len(s.timesteps)
	}
	return begin
}

func (s *Scheduler) check(i int) error {
	if s.timesteps == nil {
		return fmt.Errorf("scheduler: SetTimesteps has not been called")
	}
	if i < 0 || i >= len(s.timesteps) {
		return fmt.Errorf("scheduler: step index %d outside [0, %d)", i, len(s.timesteps))
	}
	return nil
}

// ScaleModelInput returns the model input for call i: the sample divided by
// sqrt(σ_i²+1) for the sigma samplers (Euler, Euler ancestral, LMS, Heun);
// for the others it is x itself (not a copy).
func (s *Scheduler) ScaleModelInput(x []float32, i int) []float32 {
	if s.check(i) != nil {
		return x
	}
	d := s.alg.inputDivisor(i)
	if d == 0 {
		return x
	}
	out := make([]float32, len(x))
	for k, v := range x {
		out[k] = v / d
	}
	return out
}

// Step advances the sample x by model call i (an index into Timesteps) with
// the model output out and returns the new sample; x and out are not
// modified. Calls must come in order, starting at 0 (txt2img) or at the
// begin index (img2img). noise may be nil for samplers that draw none.
func (s *Scheduler) Step(out []float32, i int, x []float32, noise Noise) ([]float32, error) {
	if err := s.check(i); err != nil {
		return nil, err
	}
	if s.next >= 0 && i != s.next {
		return nil, fmt.Errorf("scheduler: step %d called after step %d; steps must run in order (call SetTimesteps to restart)", i, s.next-1)
	}
	if len(out) != len(x) {
		return nil, fmt.Errorf("scheduler: model output has %d values, sample has %d", len(out), len(x))
	}
	prev, err := s.alg.step(i, out, x, noise)
	if err != nil {
		return nil, fmt.Errorf("%s step %d: %w", s.class.name, i, err)
	}
	s.next = i + 1
	return prev, nil
}

// PredictOriginal returns the model's prediction of the clean latent x0 at
// call i (diffusers' pred_original_sample, k-diffusion's "denoised") from
// its output out and the sample x, for previews. It does not change the
// scheduler's state.
func (s *Scheduler) PredictOriginal(out []float32, i int, x []float32) ([]float32, error) {
	if err := s.check(i); err != nil {
		return nil, err
	}
	if len(out) != len(x) {
		return nil, fmt.Errorf("scheduler: model output has %d values, sample has %d", len(out), len(x))
	}
	l, err := s.alg.x0Map(i)
	if err != nil {
		return nil, err
	}
	x0 := make([]float32, len(x))
	for k := range x0 {
		x0[k] = float32(l.at(x[k], out[k]))
	}
	return x0, nil
}

// AddNoiseAt noises clean latents x0 to the noise level of model call i, as
// diffusers' add_noise does for the timestep of that call (img2img: i is the
// begin index). Unlike txt2img, the result is not scaled by InitNoiseSigma.
func (s *Scheduler) AddNoiseAt(x0, noise []float32, i int) ([]float32, error) {
	if err := s.check(i); err != nil {
		return nil, err
	}
	if len(x0) != len(noise) {
		return nil, fmt.Errorf("scheduler: AddNoiseAt: %d samples but %d noise values", len(x0), len(noise))
	}
	return s.alg.addNoise(x0, noise, i), nil
}

// draw fills a fresh buffer from the noise source.
func draw(noise Noise, n int) ([]float32, error) {
	if noise == nil {
		return nil, fmt.Errorf("this sampler injects noise: a Noise source is required")
	}
	buf := make([]float32, n)
	noise.Normal(buf)
	return buf, nil
}

// maxSigma returns the largest sigma of a schedule.
func maxSigma(sigmas []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range sigmas {
		if v > m {
			m = v
		}
	}
	return m
}
