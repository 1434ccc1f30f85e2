package scheduler

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sd15Config is runwayml's Stable Diffusion 1.5 scheduler_config.json
// (PNDM, no timestep_spacing).
var sd15Config = []byte(`{
 "_class_name": "PNDMScheduler",
 "_diffusers_version": "0.6.0",
 "beta_end": 0.012,
 "beta_schedule": "scaled_linear",
 "beta_start": 0.00085,
 "num_train_timesteps": 1000,
 "set_alpha_to_one": false,
 "skip_prk_steps": true,
 "steps_offset": 1,
 "trained_betas": null,
 "clip_sample": false
}`)

func TestClassDefaultsApplyWhereTheConfigIsSilent(t *testing.T) {
	for _, tc := range []struct {
		class   string
		spacing string
	}{
		{ClassDDIM, "leading"}, {ClassDDPM, "leading"}, {ClassPNDM, "leading"},
		{ClassEuler, "linspace"}, {ClassEulerAncestral, "linspace"}, {ClassLMS, "linspace"},
		{ClassHeun, "linspace"}, {ClassDPMSolver, "linspace"}, {ClassUniPC, "linspace"},
	} {
		name, cfg, err := ParseConfig(tc.class, sd15Config)
		if err != nil {
			t.Fatal(err)
		}
		if name != tc.class || cfg.TimestepSpacing != tc.spacing {
			t.Errorf("%s: class %s spacing %q, want %q", tc.class, name, cfg.TimestepSpacing, tc.spacing)
		}
		if cfg.BetaSchedule != "scaled_linear" || cfg.BetaStart != 0.00085 || cfg.StepsOffset != 1 || cfg.ClipSample {
			t.Errorf("%s: config values not taken from the file: %+v", tc.class, cfg)
		}
	}
	// Without a file, each class has its own __init__ defaults.
	checks := map[string]func(Config) bool{
		ClassDDIM: func(c Config) bool {
			return c.ClipSample && c.SetAlphaToOne && c.BetaSchedule == "linear" && c.BetaStart == 0.0001 && c.BetaEnd == 0.02
		},
		ClassDDPM: func(c Config) bool { return c.ClipSample && c.VarianceType == "fixed_small" },
		ClassPNDM: func(c Config) bool { return !c.SkipPRKSteps && !c.SetAlphaToOne },
		ClassHeun: func(c Config) bool { return c.BetaStart == 0.00085 && c.BetaEnd == 0.012 && !c.ClipSample },
		ClassDPMSolver: func(c Config) bool {
			return c.SolverOrder == 2 && c.AlgorithmType == "dpmsolver++" && c.SolverType == "midpoint" && c.LowerOrderFinal && math.IsInf(c.LambdaMinClipped, -1)
		},
		ClassUniPC: func(c Config) bool { return c.SolverOrder == 2 && c.SolverType == "bh2" && c.PredictX0 },
		ClassEuler: func(c Config) bool {
			return c.InterpolationType == "linear" && c.FinalSigmasType == "zero" && c.SigmaMin == nil
		},
	}
	for class, ok := range checks {
		cfg, err := DefaultConfig(class)
		if err != nil {
			t.Fatal(err)
		}
		if !ok(cfg) {
			t.Errorf("%s defaults: %+v", class, cfg)
		}
	}
}

func TestParseConfigFollowsFromConfigRules(t *testing.T) {
	// _class_name picks the class; unknown keys are ignored; -Infinity parses;
	// keys in _use_default_values keep the class default.
	data := []byte(`{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading",
		"_use_default_values": ["timestep_spacing"], "lambda_min_clipped": -Infinity,
		"some_future_key": {"x": [1, 2]}, "sigma_min": null, "steps_offset": 1}`)
	name, cfg, err := ParseConfig("", data)
	if err != nil {
		t.Fatal(err)
	}
	if name != ClassEuler || cfg.TimestepSpacing != "linspace" || cfg.StepsOffset != 1 || cfg.SigmaMin != nil {
		t.Errorf("got %s %+v", name, cfg)
	}
	if _, _, err := ParseConfig("", []byte(`{"beta_start": 0.1}`)); err == nil {
		t.Error("no class name and no _class_name: want an error")
	}
	if _, _, err := ParseConfig(ClassDDIM, []byte(`{"steps_offset": "one"}`)); err == nil {
		t.Error("badly typed steps_offset: want an error")
	}
	if _, err := New("", sd15Config); err != nil {
		t.Errorf("New from _class_name: %v", err)
	}
}

func TestConfigRoundTripsThroughJSON(t *testing.T) {
	_, cfg, err := ParseConfig(ClassDPMSolver, sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"lambda_min_clipped":-1e+308`) {
		t.Errorf("marshalled config: %s", b)
	}
	_, back, err := ParseConfig(ClassDPMSolver, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg) && !(back.LambdaMinClipped <= -1e308 && math.IsInf(cfg.LambdaMinClipped, -1)) {
		t.Errorf("round trip: %+v, want %+v", back, cfg)
	}
}

func TestLinearBetasAreEvenlySpaced(t *testing.T) {
	cfg, _ := DefaultConfig(ClassDDPM) // linear 1e-4 .. 0.02
	s, err := NewSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Betas[0] != float32(1e-4) || s.Betas[999] != float32(0.02) {
		t.Errorf("endpoints %v %v", s.Betas[0], s.Betas[999])
	}
	for i, b := range s.Betas {
		want := 1e-4 + float64(i)*(0.02-1e-4)/999
		if math.Abs(float64(b)-want) > 2.5e-7*want {
			t.Fatalf("beta[%d] = %v, want %v", i, b, want)
		}
	}
	cfg.BetaSchedule, cfg.BetaStart, cfg.BetaEnd = "scaled_linear", 0.00085, 0.012
	s, _ = NewSchedule(cfg)
	for i, b := range s.Betas {
		r := math.Sqrt(0.00085) + float64(i)*(math.Sqrt(0.012)-math.Sqrt(0.00085))/999
		if math.Abs(float64(b)-r*r) > 2.5e-7*r*r {
			t.Fatalf("scaled_linear beta[%d] = %v, want %v", i, b, r*r)
		}
	}
	for i := range s.Alphas {
		if s.Alphas[i] != 1-s.Betas[i] {
			t.Fatalf("alpha[%d] != 1 - beta", i)
		}
	}
}

func TestSquaredCosBetasFollowTheCosineSchedule(t *testing.T) {
	cfg, _ := DefaultConfig(ClassDDPM)
	cfg.BetaSchedule = "squaredcos_cap_v2"
	s, err := NewSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008; the product of
	// 1 − β telescopes to ᾱ((i+1)/T)/ᾱ(0) until β reaches its 0.999 cap.
	f := func(t float64) float64 { c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2); return c * c }
	for _, i := range []int{0, 1, 10, 100, 500, 900, 990} {
		want := f(float64(i+1)/1000) / f(0)
		got := float64(s.AlphasCumprod[i])
		if math.Abs(got-want) > 1e-5*math.Max(want, 1e-3) {
			t.Errorf("alphas_cumprod[%d] = %v, want %v", i, got, want)
		}
	}
	b0 := 1 - f(0.001)/f(0)
	if math.Abs(float64(s.Betas[0])-b0) > 1e-9 {
		t.Errorf("beta[0] = %v, want %v", s.Betas[0], b0)
	}
	if s.Betas[999] != float32(0.999) {
		t.Errorf("last beta %v, want the 0.999 cap", s.Betas[999])
	}
}

func TestRescaleBetasZeroSNRReachesZeroTerminalSNR(t *testing.T) {
	cfg, _, _ := parse(t, ClassDDIM, `{"rescale_betas_zero_snr": true, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`)
	s, err := NewFromConfig(ClassDDIM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ac := s.Schedule().AlphasCumprod
	if ac[999] != 0 {
		t.Errorf("final alphas_cumprod %v, want 0", ac[999])
	}
	if s.Schedule().SNR(999) != 0 {
		t.Errorf("final SNR %v, want 0", s.Schedule().SNR(999))
	}
	plain, _ := NewSchedule(Config{NumTrainTimesteps: 1000, BetaSchedule: "scaled_linear", BetaStart: 0.00085, BetaEnd: 0.012})
	if math.Abs(float64(ac[0]-plain.AlphasCumprod[0])) > 1e-6 {
		t.Errorf("first alphas_cumprod moved: %v vs %v", ac[0], plain.AlphasCumprod[0])
	}
	for i := 1; i < 1000; i++ {
		if ac[i] > ac[i-1] {
			t.Fatalf("alphas_cumprod not decreasing at %d", i)
		}
	}
	// Sigma-based classes keep the last sigma finite (ᾱ = 2^-24).
	ecfg, _, _ := parse(t, ClassEuler, `{"rescale_betas_zero_snr": true, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`)
	e, err := NewFromConfig(ClassEuler, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Schedule().AlphasCumprod[999]; got != 1.0/(1<<24) {
		t.Errorf("Euler final alphas_cumprod %v, want 2^-24", got)
	}
	if err := e.SetTimesteps(10); err != nil {
		t.Fatal(err)
	}
	if sig := e.Sigmas(); math.Abs(float64(sig[0])-4096) > 1 {
		t.Errorf("Euler zero-SNR first sigma %v, want about 4096", sig[0])
	}
}

func parse(t *testing.T, class, js string) (Config, string, error) {
	t.Helper()
	name, cfg, err := ParseConfig(class, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, name, err
}

func TestTimestepSpacing(t *testing.T) {
	for _, tc := range []struct {
		class, spacing string
		n              int
		want           []float64
	}{
		{ClassDDIM, "trailing", 10, []float64{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		{ClassDDIM, "leading", 10, []float64{901, 801, 701, 601, 501, 401, 301, 201, 101, 1}},
		{ClassDDIM, "linspace", 10, []float64{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}},
		{ClassDDIM, "trailing", 3, []float64{999, 666, 332}},
		{ClassDDPM, "trailing", 4, []float64{999, 749, 499, 249}},
		{ClassEuler, "trailing", 10, []float64{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		{ClassEuler, "linspace", 4, []float64{999, 666, 333, 0}},
		{ClassEuler, "leading", 4, []float64{751, 501, 251, 1}},
		{ClassDPMSolver, "trailing", 10, []float64{999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
		{ClassDPMSolver, "leading", 4, []float64{801, 601, 401, 201}},
		{ClassUniPC, "trailing", 5, []float64{999, 799, 599, 399, 199}},
		{ClassPNDM, "trailing", 4, []float64{999, 749, 749, 499, 249}},
		{ClassPNDM, "leading", 5, []float64{801, 601, 601, 401, 201, 1}},
		{ClassHeun, "trailing", 3, []float64{999, 666, 666, 332, 332}},
	} {
		s, err := New(tc.class, append(sd15Config[:len(sd15Config)-1:len(sd15Config)-1], []byte(`,"timestep_spacing":"`+tc.spacing+`"}`)...))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(tc.n); err != nil {
			t.Fatal(err)
		}
		if got := s.Timesteps(); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s %d: got %v, want %v", tc.class, tc.spacing, tc.n, got, tc.want)
		}
	}
	// Trailing starts at the last training step, so its first sigma is σ_max
	// and init_noise_sigma is σ_max itself, not sqrt(σ_max²+1).
	s, _ := New(ClassEuler, []byte(`{"beta_schedule":"scaled_linear","beta_start":0.00085,"beta_end":0.012,"timestep_spacing":"trailing"}`))
	_ = s.SetTimesteps(7)
	if sig := s.Sigmas(); float64(sig[0]) != s.InitNoiseSigma() || s.Schedule().Sigmas()[999] != sig[0] {
		t.Errorf("trailing: first sigma %v, init_noise_sigma %v", sig[0], s.InitNoiseSigma())
	}
	s, _ = New(ClassEuler, append(sd15Config[:len(sd15Config)-1:len(sd15Config)-1], []byte(`,"timestep_spacing":"leading"}`)...))
	_ = s.SetTimesteps(10)
	m := float64(s.Sigmas()[0])
	if math.Abs(s.InitNoiseSigma()-math.Sqrt(m*m+1)) > 1e-5 {
		t.Errorf("leading: init_noise_sigma %v, want sqrt(σ²+1) of %v", s.InitNoiseSigma(), m)
	}
}

func TestStepsMustRunInOrder(t *testing.T) {
	s, _ := New(ClassEuler, sd15Config)
	x := make([]float32, 8)
	if _, err := s.Step(x, 0, x, nil); err == nil {
		t.Error("Step before SetTimesteps: want an error")
	}
	_ = s.SetTimesteps(5)
	if _, err := s.Step(x, 0, x, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step(x, 2, x, nil); err == nil {
		t.Error("skipping a step: want an error")
	}
	if _, err := s.Step(x, 9, x, nil); err == nil {
		t.Error("index out of range: want an error")
	}
	if _, err := s.Step(x[:3], 1, x, nil); err == nil {
		t.Error("length mismatch: want an error")
	}
	a, _ := New("Euler a", sd15Config)
	_ = a.SetTimesteps(5)
	if _, err := a.Step(x, 0, x, nil); err == nil {
		t.Error("ancestral step without noise: want an error")
	}
	if err := s.SetTimesteps(0); err == nil {
		t.Error("0 steps: want an error")
	}
	if err := s.SetTimesteps(1001); err == nil {
		t.Error("more steps than training steps: want an error")
	}
	if _, err := New(ClassDDIM, []byte(`{"prediction_type":"x0"}`)); err == nil {
		t.Error("unknown prediction_type: want an error")
	}
	if _, err := New(ClassDDIM, []byte(`{"beta_schedule":"cubic"}`)); err == nil {
		t.Error("unknown beta_schedule: want an error")
	}
	if _, err := New(ClassDDIM, []byte(`{"thresholding":true}`)); err == nil {
		t.Error("thresholding: want an error")
	}
}

func TestTrainingHelpers(t *testing.T) {
	s, _ := New(ClassDDPM, sd15Config)
	sch := s.Schedule()
	x0 := []float32{1, -2, 0.5, 3}
	noise := []float32{0.3, 0.1, -1, 2}
	for _, tt := range []int{0, 500, 999} {
		a := math.Sqrt(float64(sch.AlphasCumprod[tt]))
		b := math.Sqrt(1 - float64(sch.AlphasCumprod[tt]))
		xt, _ := sch.AddNoise(x0, noise, tt)
		v, _ := sch.Velocity(x0, noise, tt)
		for k := range x0 {
			if math.Abs(float64(xt[k])-(a*float64(x0[k])+b*float64(noise[k]))) > 1e-6 {
				t.Errorf("AddNoise t=%d", tt)
			}
			if math.Abs(float64(v[k])-(a*float64(noise[k])-b*float64(x0[k]))) > 1e-6 {
				t.Errorf("Velocity t=%d", tt)
			}
		}
		if snr := sch.SNR(tt); math.Abs(snr-a*a/(b*b)) > 1e-9*snr {
			t.Errorf("SNR(%d) = %v, want %v", tt, snr, a*a/(b*b))
		}
	}
	batch, err := sch.AddNoiseBatch(append(x0, x0...), append(noise, noise...), []int{0, 999})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := sch.AddNoise(x0, noise, 999)
	if !slices.Equal(batch[4:], one) {
		t.Error("AddNoiseBatch second sample differs from AddNoise")
	}
	if _, err := sch.AddNoise(x0, noise, 1000); err == nil {
		t.Error("t out of range: want an error")
	}
	if _, err := sch.AddNoiseBatch(x0, noise, []int{0, 1, 2}); err == nil {
		t.Error("batch that does not divide: want an error")
	}
	if snrs := sch.SNRs(); len(snrs) != 1000 || !(snrs[0] > snrs[999]) {
		t.Error("SNRs")
	}
}

// TestEmptyConfigFieldsTakeTheClassDefault: a key whose value is empty
// ("", null, [] or {}) reads as absent, for every key of every class, so a
// config written for one class (an empty solver_type from an Euler export)
// does not break another.
func TestEmptyConfigFieldsTakeTheClassDefault(t *testing.T) {
	var keys []string
	rt := reflect.TypeOf(Config{})
	for i := range rt.NumField() {
		keys = append(keys, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
	}
	for _, class := range ClassNames() {
		want, err := DefaultConfig(class)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			for _, empty := range []string{`""`, `null`, `[]`, `{}`} {
				_, got, err := ParseConfig(class, []byte(`{"`+k+`": `+empty+`}`))
				if err != nil {
					t.Errorf("%s: %s = %s: %v", class, k, empty, err)
					continue
				}
				if !reflect.DeepEqual(got, want) && !(math.IsInf(got.LambdaMinClipped, -1) && reflect.DeepEqual(withLambda(got, 0), withLambda(want, 0))) {
					t.Errorf("%s: %s = %s: got %+v, want the defaults %+v", class, k, empty, got, want)
				}
			}
		}
	}
	// The embedded model's export carries "solver_type": ""; the samplers
	// that read solver_type must run with it.
	cfg := []byte(`{"_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
		"beta_end": 0.012, "solver_type": "", "algorithm_type": "", "timestep_spacing": "", "steps_offset": 1}`)
	for _, name := range []string{"DPM++ 2M", "DPM++ 2M SDE Karras", "UniPC", "Euler"} {
		s, err := New(name, cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := s.SetTimesteps(3); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func withLambda(c Config, v float64) Config { c.LambdaMinClipped = v; return c }
