package scheduler

import (
	"encoding/json"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

// toyModel is the golden data's stand-in for a U-Net:
// eps = 0.5·x_in + 0.1·sin(x_in + t/100), in float32.
func toyModel(xin []float32, t float64) []float32 {
	tt := float32(t / 100)
	out := make([]float32, len(xin))
	for k, v := range xin {
		s := float32(math.Sin(float64(v + tt)))
		out[k] = float32(0.5)*v + float32(0.1)*s
	}
	return out
}

// replayNoise hands out the recorded noise of the current loop step and
// counts how often it was asked.
type replayNoise struct {
	cur   []float32
	calls int
}

func (r *replayNoise) Normal(dst []float32) {
	copy(dst, r.cur)
	r.calls++
}

// TestGoldenSchedulers runs every "scheduler" case of the golden manifest:
// the toy model in the diffusers sampling loop, checking timesteps (integers
// exactly), sigmas, init_noise_sigma, model inputs, model outputs, the noise
// draws and every step's sample.
func TestGoldenSchedulers(t *testing.T) {
	golden.ForKind(t, "scheduler", runSchedulerCase)
}

// TestGoldenSchedulersExtra runs every "scheduler_extra" case (LCM, TCD,
// trailing spacing, zero-SNR, single-step DPM, KDPM2, DEIS, SDE, EDM) the
// same way. A case whose class this package does not have skips, naming it.
func TestGoldenSchedulersExtra(t *testing.T) {
	golden.ForKind(t, "scheduler_extra", func(t *testing.T, c golden.Case) {
		if _, err := lookupClass(c.String("scheduler")); err != nil {
			t.Skipf("class %s is not implemented yet", c.String("scheduler"))
		}
		runSchedulerCase(t, c)
	})
}

func runSchedulerCase(t *testing.T, c golden.Case) {
	{
		var cfg json.RawMessage
		if err := c.Decode("scheduler_config", &cfg); err != nil {
			t.Fatal(err)
		}
		s, err := New(c.String("scheduler"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		f := c.Tensors(t, "data")
		kw := f.Metadata["step_kwargs"]
		for name, dst := range map[string]*float64{"eta": &s.Eta, "s_churn": &s.Churn.Amount,
			"s_tmin": &s.Churn.TMin, "s_tmax": &s.Churn.TMax, "s_noise": &s.Churn.Noise} {
			re := regexp.MustCompile(`\b` + name + `\s*[=:]\s*"?([0-9.eE+-]+|inf)`)
			if m := re.FindStringSubmatch(kw); m != nil {
				if *dst, err = strconv.ParseFloat(m[1], 64); err != nil {
					t.Fatal(err)
				}
			}
		}
		var noiseSteps []int
		if v, ok := f.Metadata["noise_used_at_steps"]; ok {
			_ = json.Unmarshal([]byte(v), &noiseSteps)
		}
		if err := s.SetTimesteps(c.Int("steps")); err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()

		info, _ := f.Info("timesteps")
		if info.DType == "I64" {
			want, _ := golden.Int64(t, f, "timesteps")
			if len(want) != len(ts) {
				t.Fatalf("timesteps: got %d, want %d", len(ts), len(want))
			}
			for i := range want {
				if ts[i] != float64(want[i]) {
					t.Fatalf("timesteps: got %v, want %v", ts, want)
				}
			}
		} else {
			want, _ := golden.Float32(t, f, "timesteps")
			got := make([]float32, len(ts))
			for i, v := range ts {
				got[i] = float32(v)
			}
			golden.AssertClose(t, "timesteps", got, want, 1e-6*golden.MaxAbs(want))
		}
		if _, ok := f.Info("sigmas"); ok {
			want, _ := golden.Float32(t, f, "sigmas")
			golden.AssertClose(t, "sigmas", s.Sigmas(), want, c.Tol(golden.MaxAbs(want)))
		}
		ins, _ := golden.Float32(t, f, "init_noise_sigma")
		golden.AssertClose(t, "init_noise_sigma", []float32{float32(s.InitNoiseSigma())}, ins, c.Tol(float64(ins[0])))

		xT, _ := golden.Float32(t, f, "x_T")
		x := s.InitLatents(xT)
		start, _ := golden.Float32(t, f, "latents_start")
		golden.AssertClose(t, "latents_start", x, start, c.Tol(golden.MaxAbs(start)))

		samples, _ := golden.Float32(t, f, "samples")
		outs, _ := golden.Float32(t, f, "model_outputs")
		var inputs, noise []float32
		if _, ok := f.Info("model_inputs"); ok {
			inputs, _ = golden.Float32(t, f, "model_inputs")
		}
		if _, ok := f.Info("noise"); ok {
			noise, _ = golden.Float32(t, f, "noise")
		}
		var denoised []float32
		if _, ok := f.Info("denoised"); ok {
			denoised, _ = golden.Float32(t, f, "denoised")
		}
		n := len(x)
		if len(samples) != len(ts)*n {
			t.Fatalf("golden has %d steps, the scheduler plans %d", len(samples)/n, len(ts))
		}
		rn := &replayNoise{}
		var drew []int
		for i, tv := range ts {
			at := func(all []float32) []float32 { return all[i*n : (i+1)*n] }
			xin := s.ScaleModelInput(x, i)
			if inputs != nil {
				want := at(inputs)
				golden.AssertClose(t, "model_inputs["+strconv.Itoa(i)+"]", xin, want, c.Tol(golden.MaxAbs(want)))
			}
			eps := toyModel(xin, tv)
			golden.AssertClose(t, "model_outputs["+strconv.Itoa(i)+"]", eps, at(outs), c.Tol(golden.MaxAbs(at(outs))))
			if denoised != nil {
				got, err := s.PredictOriginal(eps, i, x)
				if err != nil {
					t.Fatal(err)
				}
				golden.AssertClose(t, "denoised["+strconv.Itoa(i)+"]", got, at(denoised), c.Tol(golden.MaxAbs(at(denoised))))
			}
			if noise != nil {
				rn.cur = at(noise)
			}
			before := rn.calls
			x, err = s.Step(eps, i, x, rn)
			if err != nil {
				t.Fatal(err)
			}
			if rn.calls > before {
				drew = append(drew, i)
			}
			want := at(samples)
			golden.AssertClose(t, "samples["+strconv.Itoa(i)+"]", x, want, c.Tol(golden.MaxAbs(want)))
			if t.Failed() {
				t.FailNow()
			}
		}
		if len(drew) != len(noiseSteps) {
			t.Errorf("noise drawn at steps %v, golden drew at %v", drew, noiseSteps)
		} else {
			for k := range drew {
				if drew[k] != noiseSteps[k] {
					t.Errorf("noise drawn at steps %v, golden drew at %v", drew, noiseSteps)
					break
				}
			}
		}
	}
}

// TestGoldenTrainingSchedule checks betas, alphas, alphas_cumprod, add_noise
// and get_velocity against diffusers (SD1.5 config, scaled_linear).
func TestGoldenTrainingSchedule(t *testing.T) {
	m := golden.Load(t)
	c := golden.Case{Name: "training_schedule", Dir: m.Dir, Fields: map[string]json.RawMessage{
		"data": json.RawMessage(strconv.Quote(filepath.Join("schedulers", "training_schedule.safetensors"))),
	}}
	f := c.Tensors(t, "data")
	_, cfg, err := ParseConfig("", []byte(f.Metadata["config"]))
	if err != nil {
		t.Fatal(err)
	}
	sched, err := NewSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  []float32
	}{{"betas", sched.Betas}, {"alphas", sched.Alphas}, {"alphas_cumprod", sched.AlphasCumprod}} {
		want, _ := golden.Float32(t, f, tc.name)
		golden.AssertClose(t, tc.name, tc.got, want, 0) // bit-exact
	}
	x0, _ := golden.Float32(t, f, "x0")
	noise, _ := golden.Float32(t, f, "noise")
	ts, _ := golden.Int64(t, f, "timesteps")
	addNoise, _ := golden.Float32(t, f, "add_noise")
	velocity, _ := golden.Float32(t, f, "velocity")
	n := len(x0)
	for k, tt := range ts {
		got, err := sched.AddNoise(x0, noise, int(tt))
		if err != nil {
			t.Fatal(err)
		}
		want := addNoise[k*n : (k+1)*n]
		golden.AssertClose(t, "add_noise t="+strconv.Itoa(int(tt)), got, want, 1e-6*golden.MaxAbs(want))
		got, err = sched.Velocity(x0, noise, int(tt))
		if err != nil {
			t.Fatal(err)
		}
		want = velocity[k*n : (k+1)*n]
		golden.AssertClose(t, "velocity t="+strconv.Itoa(int(tt)), got, want, 1e-6*golden.MaxAbs(want))
	}
}
