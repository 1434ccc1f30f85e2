package scheduler

import (
	"fmt"
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
)

// TestGoldenComfyUISigmas runs every "sigmas" case: each named ComfyUI
// schedule for the case's step count on the SD1 model table, which is
// checked first.
func TestGoldenComfyUISigmas(t *testing.T) {
	golden.ForKind(t, "sigmas", func(t *testing.T, c golden.Case) {
		m := sd1KTable(t)
		f := c.Tensors(t, "data")
		if _, ok := f.Info("model_sigmas"); ok {
			want, _ := golden.Float32(t, f, "model_sigmas")
			golden.AssertClose(t, "model_sigmas", f32(m.sigmas), want, c.Tol(golden.MaxAbs(want)))
		}
		var names []string
		if err := c.Decode("schedulers", &names); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			kind, err := ParseSchedule(name)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			got, err := kScheduleSigmas(kind, m, c.Int("steps"))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			want, _ := golden.Float32(t, f, name)
			golden.AssertClose(t, name, f32(got), want, c.Tol(golden.MaxAbs(want)))
		}
	})
}

func sd1KTable(t *testing.T) modelSigmas {
	t.Helper()
	_, cfg, err := ParseConfig(ClassEuler, sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kModelSigmas(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// ksamplerSchedule maps the golden data's schedule names to kinds: its
// "default" is k-diffusion's DiscreteSchedule.get_sigmas and its
// polyexponential uses rho 2.
func ksamplerSchedule(name string) string {
	switch name {
	case "default", "dpm_fast": // dpm_fast spans the model's σ range
		return "normal"
	case "polyexponential":
		return "polyexponential_rho2"
	}
	return name
}

// TestGoldenKSamplers runs every "ksampler" case: the k-diffusion sampler
// function over the case's schedule with the toy model behind the discrete
// eps denoiser, checking the model table, the sigmas, every denoiser call
// (σ, t, x, denoised) and the final sample; recorded noise replays the
// noise sampler's draws in order.
func TestGoldenKSamplers(t *testing.T) {
	golden.ForKind(t, "ksampler", func(t *testing.T, c golden.Case) {
		s, err := NewChoice(Choice{Sampler: c.String("sampler"), Schedule: ksamplerSchedule(c.String("schedule"))}, sd15Config)
		if err != nil {
			t.Fatal(err)
		}
		if c.Has("model_sigmas") {
			mf := c.Tensors(t, "model_sigmas")
			want, _ := golden.Float32(t, mf, "sigmas")
			golden.AssertClose(t, "model sigmas", f32(s.alg.(*kdiff).table.sigmas), want, c.Tol(golden.MaxAbs(want)))
		}
		f := c.Tensors(t, "data")
		steps := c.Int("steps")
		if err := s.SetTimesteps(steps); err != nil {
			t.Fatal(err)
		}
		wantSig, _ := golden.Float32(t, f, "sigmas")
		gotSig := f32(s.alg.(*kdiff).sched)
		if len(wantSig) == steps+1 {
			golden.AssertClose(t, "sigmas", gotSig, wantSig, c.Tol(golden.MaxAbs(wantSig)))
		} else { // dpm_fast: [σ_max, σ_min]
			golden.AssertClose(t, "sigmas (ends)", []float32{gotSig[0], gotSig[len(gotSig)-2]}, wantSig, c.Tol(golden.MaxAbs(wantSig)))
		}
		callSig, _ := golden.Float32(t, f, "call_sigma")
		callT, _ := golden.Float32(t, f, "call_t")
		callX, _ := golden.Float32(t, f, "call_x")
		callD, _ := golden.Float32(t, f, "call_denoised")
		ts := s.Timesteps()
		if len(ts) != len(callSig) {
			t.Fatalf("%d model calls planned, golden made %d", len(ts), len(callSig))
		}
		golden.AssertClose(t, "call_sigma", s.Sigmas()[:len(ts)], callSig, c.Tol(golden.MaxAbs(callSig)))
		golden.AssertClose(t, "call_t", f32(ts), callT, c.Tol(golden.MaxAbs(callT)))
		xT, _ := golden.Float32(t, f, "x_T")
		x := s.InitLatents(xT)
		start, _ := golden.Float32(t, f, "x_start")
		golden.AssertClose(t, "x_start", x, start, c.Tol(golden.MaxAbs(start)))
		var noise []float32
		if _, ok := f.Info("noise"); ok {
			noise, _ = golden.Float32(t, f, "noise")
		}
		n := len(x)
		draws := 0
		rn := NoiseFunc(func(dst []float32) {
			if (draws+1)*n > len(noise) {
				t.Fatalf("noise draw %d: golden recorded %d", draws+1, len(noise)/n)
			}
			copy(dst, noise[draws*n:(draws+1)*n])
			draws++
		})
		for i, tv := range ts {
			at := func(all []float32) []float32 { return all[i*n : (i+1)*n] }
			golden.AssertClose(t, fmt.Sprintf("call_x[%d]", i), x, at(callX), c.Tol(golden.MaxAbs(at(callX))))
			eps := toyModel(s.ScaleModelInput(x, i), tv)
			den, err := s.PredictOriginal(eps, i, x)
			if err != nil {
				t.Fatal(err)
			}
			golden.AssertClose(t, fmt.Sprintf("call_denoised[%d]", i), den, at(callD), c.Tol(golden.MaxAbs(at(callD))))
			if x, err = s.Step(eps, i, x, rn); err != nil {
				t.Fatal(err)
			}
			if t.Failed() {
				t.FailNow()
			}
		}
		if draws*n != len(noise) {
			t.Errorf("drew noise %d times, golden %d", draws, len(noise)/n)
		}
		final, _ := golden.Float32(t, f, "final")
		golden.AssertClose(t, "final", x, final, c.Tol(golden.MaxAbs(final)))
	})
}
