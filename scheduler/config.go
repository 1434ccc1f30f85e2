package scheduler

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// Config holds the fields of a diffusers scheduler_config.json that the
// schedulers of this package read. Each class reads only the fields its
// diffusers counterpart accepts; the others are ignored, as diffusers ignores
// the keys of a config written for another class.
type Config struct {
	NumTrainTimesteps   int       `json:"num_train_timesteps"`
	BetaStart           float64   `json:"beta_start"`
	BetaEnd             float64   `json:"beta_end"`
	BetaSchedule        string    `json:"beta_schedule"` // linear, scaled_linear, squaredcos_cap_v2 (sigmoid: DDPM, exp: Heun)
	TrainedBetas        []float64 `json:"trained_betas"`
	RescaleBetasZeroSNR bool      `json:"rescale_betas_zero_snr"`

	PredictionType  string `json:"prediction_type"`  // epsilon, v_prediction, sample
	TimestepSpacing string `json:"timestep_spacing"` // leading, linspace, trailing
	StepsOffset     int    `json:"steps_offset"`
	SetAlphaToOne   bool   `json:"set_alpha_to_one"`

	ClipSample               bool    `json:"clip_sample"`
	ClipSampleRange          float64 `json:"clip_sample_range"`
	Thresholding             bool    `json:"thresholding"`
	DynamicThresholdingRatio float64 `json:"dynamic_thresholding_ratio"`
	SampleMaxValue           float64 `json:"sample_max_value"`

	VarianceType string `json:"variance_type"` // DDPM: fixed_small, fixed_small_log, fixed_large
	SkipPRKSteps bool   `json:"skip_prk_steps"`

	UseKarrasSigmas   bool     `json:"use_karras_sigmas"`
	SigmaMin          *float64 `json:"sigma_min"`
	SigmaMax          *float64 `json:"sigma_max"`
	InterpolationType string   `json:"interpolation_type"` // linear, log_linear
	TimestepType      string   `json:"timestep_type"`      // discrete, continuous
	FinalSigmasType   string   `json:"final_sigmas_type"`  // zero, sigma_min

	SolverOrder      int     `json:"solver_order"`
	AlgorithmType    string  `json:"algorithm_type"` // dpmsolver++, sde-dpmsolver++, dpmsolver, sde-dpmsolver
	SolverType       string  `json:"solver_type"`    // midpoint, heun (DPM); bh1, bh2 (UniPC)
	LowerOrderFinal  bool    `json:"lower_order_final"`
	EulerAtFinal     bool    `json:"euler_at_final"`
	UseLuLambdas     bool    `json:"use_lu_lambdas"`
	LambdaMinClipped float64 `json:"lambda_min_clipped"`
	PredictX0        bool    `json:"predict_x0"`
	DisableCorrector []int   `json:"disable_corrector"`

	// LCM and TCD: the distillation's step count and the boundary
	// condition's timestep scale (omitted when zero, so that a config
	// written for another class keeps these classes' defaults).
	OriginalInferenceSteps int     `json:"original_inference_steps,omitempty"`
	TimestepScaling        float64 `json:"timestep_scaling,omitempty"`

	// EDM (Karras et al. 2022) schedulers: σ_data, the sigma schedule
	// (karras, exponential) and its ρ; sigma_min/sigma_max above.
	SigmaData     float64 `json:"sigma_data,omitempty"`
	SigmaSchedule string  `json:"sigma_schedule,omitempty"`
	Rho           float64 `json:"rho,omitempty"`
}

// Diffusers class names.
const (
	ClassDDPM           = "DDPMScheduler"
	ClassDDIM           = "DDIMScheduler"
	ClassPNDM           = "PNDMScheduler"
	ClassLMS            = "LMSDiscreteScheduler"
	ClassEuler          = "EulerDiscreteScheduler"
	ClassEulerAncestral = "EulerAncestralDiscreteScheduler"
	ClassHeun           = "HeunDiscreteScheduler"
	ClassDPMSolver      = "DPMSolverMultistepScheduler"
	ClassUniPC          = "UniPCMultistepScheduler"
	ClassLCM            = "LCMScheduler"
	ClassTCD            = "TCDScheduler"
	ClassKDPM2          = "KDPM2DiscreteScheduler"
	ClassKDPM2Ancestral = "KDPM2AncestralDiscreteScheduler"
	ClassEDMEuler       = "EDMEulerScheduler"
	ClassDEIS           = "DEISMultistepScheduler"
	ClassEDMDPMSolver   = "EDMDPMSolverMultistepScheduler"
	ClassDPMSingle      = "DPMSolverSinglestepScheduler"
)

// class describes what a diffusers scheduler class accepts.
type class struct {
	name string
	// rescale: the class accepts rescale_betas_zero_snr; zeroSNRFloor: it then
	// sets alphas_cumprod[-1] = 2^-24 so that sigmas stay finite.
	rescale, zeroSNRFloor bool
	// schedules lists the beta_schedule values beyond the common three.
	extraSchedules []string
	// order is diffusers' scheduler order: model calls per inference step
	// (0 means 1).
	order    int
	defaults func(c *Config)
	build    func(s *Scheduler) (sampler, error)
}

var classes = map[string]*class{}

func register(c *class) { classes[c.name] = c }

// ClassNames lists the supported diffusers scheduler classes.
func ClassNames() []string {
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupClass(name string) (*class, error) {
	if c, ok := classes[name]; ok {
		return c, nil
	}
	for n, c := range classes {
		if strings.EqualFold(n, name) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("scheduler: unknown class %q (supported: %s)", name, strings.Join(ClassNames(), ", "))
}

// baseDefaults are the __init__ defaults shared by most diffusers schedulers.
func baseDefaults(c *Config) {
	*c = Config{
		NumTrainTimesteps:        1000,
		BetaStart:                0.0001,
		BetaEnd:                  0.02,
		BetaSchedule:             "linear",
		PredictionType:           "epsilon",
		TimestepSpacing:          "linspace",
		ClipSampleRange:          1,
		DynamicThresholdingRatio: 0.995,
		SampleMaxValue:           1,
		VarianceType:             "fixed_small",
		InterpolationType:        "linear",
		TimestepType:             "discrete",
		FinalSigmasType:          "zero",
		SolverOrder:              2,
		AlgorithmType:            "dpmsolver++",
		LowerOrderFinal:          true,
		LambdaMinClipped:         negInf,
		PredictX0:                true,
	}
}

// DefaultConfig returns the __init__ defaults of a diffusers scheduler class.
func DefaultConfig(className string) (Config, error) {
	c, err := lookupClass(className)
	if err != nil {
		return Config{}, err
	}
	var cfg Config
	baseDefaults(&cfg)
	c.defaults(&cfg)
	return cfg, nil
}

// ParseConfig reads a scheduler_config.json for the given class (empty: the
// file's own "_class_name"): the class defaults, overlaid with the file's
// values. Unknown keys are ignored and keys listed in "_use_default_values"
// keep the class default, as diffusers' from_config does; so does a key
// whose value is empty ("", null, [] or {}). Python's
// Infinity/NaN literals are accepted.
func ParseConfig(className string, data []byte) (string, Config, error) {
	var raw map[string]json.RawMessage
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(pyjson.Sanitize(data), &raw); err != nil {
			return "", Config{}, fmt.Errorf("scheduler: parsing scheduler config: %w", err)
		}
	}
	if className == "" {
		if err := json.Unmarshal(raw["_class_name"], &className); err != nil || className == "" {
			return "", Config{}, fmt.Errorf("scheduler: no class name given and the config has no \"_class_name\"")
		}
	}
	c, err := lookupClass(className)
	if err != nil {
		return "", Config{}, err
	}
	var useDefault []string
	if v, ok := raw["_use_default_values"]; ok {
		_ = json.Unmarshal(v, &useDefault)
	}
	for _, k := range useDefault {
		delete(raw, k)
	}
	for k, v := range raw {
		if strings.HasPrefix(k, "_") || emptyJSON(v) {
			delete(raw, k)
		}
	}
	cfg, _ := DefaultConfig(c.name)
	for k, v := range raw {
		// One key at a time so that a badly typed key we do not read (or a
		// null) cannot spoil the rest; keys we read must have the right type.
		b, _ := json.Marshal(map[string]json.RawMessage{k: v})
		if err := json.Unmarshal(b, &cfg); err != nil {
			return "", Config{}, fmt.Errorf("scheduler: config key %q: %w", k, err)
		}
	}
	return c.name, cfg, nil
}

// emptyJSON reports whether a config value is empty: "", null, [] or {}.
// Such a key reads as absent and keeps the class default, so a config
// written for another class (an Euler export's "solver_type": "") or by a
// tool that writes every key does not break a class that reads it.
func emptyJSON(v json.RawMessage) bool {
	var s string
	switch t := strings.Join(strings.Fields(string(v)), ""); t {
	case "null", "[]", "{}", `""`:
		return true
	default:
		return json.Unmarshal(v, &s) == nil && strings.TrimSpace(s) == ""
	}
}

// MarshalJSON writes the config with an infinite lambda_min_clipped as
// ∓1e308: standard JSON has no infinities, and diffusers treats the value
// the same way.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	p := plain(c)
	if math.IsInf(c.LambdaMinClipped, 0) {
		p.LambdaMinClipped = math.Copysign(1e308, c.LambdaMinClipped)
	}
	return json.Marshal(p)
}
