package scheduler

import (
	"strings"
	"testing"
)

// TestParseSamplerFollowsTheNamingRule: A1111 and ComfyUI names run
// k-diffusion's function with that tool's default schedule; A1111's
// timestep samplers and diffusers class names run diffusers classes.
func TestParseSamplerFollowsTheNamingRule(t *testing.T) {
	for _, tc := range []struct {
		name, class, k, schedule string
		karras                   bool
	}{
		// AUTOMATIC1111 display names: k-diffusion, A1111's "Automatic".
		{"Euler a", "", "euler_ancestral", "normal", false},
		{"Euler", "", "euler", "normal", false},
		{"DPM++ 2M", "", "dpmpp_2m", "karras", true},
		{"DPM++ 2M Karras", "", "dpmpp_2m", "karras", true},
		{"DPM++ 2M SDE", "", "dpmpp_2m_sde", "exponential", false},
		{"DPM++ 2M SDE Karras", "", "dpmpp_2m_sde", "karras", true},
		{"DPM++ 2M SDE Heun", "", "dpmpp_2m_sde", "exponential", false},
		{"DPM++ SDE Karras", "", "dpmpp_sde", "karras", true},
		{"DPM++ 2S a", "", "dpmpp_2s_ancestral", "karras", true},
		{"DPM++ 3M SDE", "", "dpmpp_3m_sde", "exponential", false},
		{"DPM2", "", "dpm_2", "karras", true},
		{"DPM2 a Karras", "", "dpm_2_ancestral", "karras", true},
		{"DPM fast", "", "dpm_fast", "normal", false},
		{"DPM adaptive", "", "dpm_adaptive", "normal", false},
		{"k_dpm_ad", "", "dpm_adaptive", "normal", false},
		{"LMS", "", "lms", "normal", false},
		{"LMS Karras", "", "lms", "karras", true},
		{"Heun", "", "heun", "normal", false},
		{"HeunPP2", "", "heunpp2", "normal", false},
		{"LCM", "", "lcm", "normal", false},
		{"Euler a Exponential", "", "euler_ancestral", "exponential", false},
		// A1111's timestep samplers: diffusers classes.
		{"DDIM", ClassDDIM, "", "", false},
		{"PLMS", ClassPNDM, "", "", false},
		{"UniPC", ClassUniPC, "", "", false},
		{"UniPC Karras", ClassUniPC, "", "", true},
		{"DDPM", ClassDDPM, "", "", false},
		// Case and spacing do not matter.
		{"  EULER   A ", "", "euler_ancestral", "normal", false},
		{"dpm++ 2m karras", "", "dpmpp_2m", "karras", true},
		{"DPM++2MKarras", "", "dpmpp_2m", "karras", true},
		// A1111's internal aliases.
		{"k_euler_a", "", "euler_ancestral", "normal", false},
		{"k_dpmpp_2m_ka", "", "dpmpp_2m", "karras", true},
		{"k_lms_ka", "", "lms", "karras", true},
		// ComfyUI sampler names: ComfyUI's default schedule, normal.
		{"euler", "", "euler", "normal", false},
		{"euler_ancestral", "", "euler_ancestral", "normal", false},
		{"dpmpp_2m", "", "dpmpp_2m", "normal", false},
		{"dpmpp_2m_sde_gpu", "", "dpmpp_2m_sde", "normal", false},
		{"dpmpp_3m_sde", "", "dpmpp_3m_sde", "normal", false},
		{"heunpp2", "", "heunpp2", "normal", false},
		{"lcm", "", "lcm", "normal", false},
		{"ddim", ClassDDIM, "", "", false},
		{"uni_pc_bh2", ClassUniPC, "", "", false},
		// diffusers class names.
		{"EulerDiscreteScheduler", ClassEuler, "", "", false},
		{"EulerAncestralDiscreteScheduler", ClassEulerAncestral, "", "", false},
		{"dpmsolvermultistepscheduler", ClassDPMSolver, "", "", false},
		{"PNDMScheduler", ClassPNDM, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := ParseSampler(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Class != tc.class || ch.Sampler != tc.k || ch.Schedule != tc.schedule || ch.Karras != tc.karras {
				t.Errorf("got class %q k %q schedule %q karras %v, want %q %q %q %v", ch.Class, ch.Sampler, ch.Schedule, ch.Karras, tc.class, tc.k, tc.schedule, tc.karras)
			}
		})
	}
	// The UIs' discard quirk: A1111 for DPM2 and DPM++ 3M SDE, ComfyUI for dpm_2.
	for name, want := range map[string]bool{"DPM2": true, "dpm_2": true, "DPM++ 3M SDE": true, "dpmpp_3m_sde": false, "Euler": false} {
		if ch, _ := ParseSampler(name); ch.k.discard != want {
			t.Errorf("%s: discard next-to-last sigma %v, want %v", name, ch.k.discard, want)
		}
	}
}

func TestParseSamplerScheduleSplitForm(t *testing.T) {
	for _, tc := range []struct {
		sampler, schedule string
		class, k, kind    string
		karras, exp       bool
	}{
		{"DPM++ 2M", "Karras", "", "dpmpp_2m", "karras", true, false},
		{"DPM++ 2M", "Automatic", "", "dpmpp_2m", "karras", true, false},
		{"DPM++ 2M", "Uniform", "", "dpmpp_2m", "normal", false, false},
		{"DPM++ 2M", "", "", "dpmpp_2m", "karras", true, false},
		{"DPM++ 2M Karras", "Uniform", "", "dpmpp_2m", "normal", false, false},
		{"DPM++ 2M SDE", "Automatic", "", "dpmpp_2m_sde", "exponential", false, false},
		{"Euler a", "Align Your Steps", "", "euler_ancestral", "ays_sd1", false, false},
		{"Euler", "SGM Uniform", "", "euler", "sgm_uniform", false, false},
		{"dpmpp_2m", "beta", "", "dpmpp_2m", "beta", false, false},
		{"dpmpp_2m", "kl_optimal", "", "dpmpp_2m", "kl_optimal", false, false},
		{"euler", "linear_quadratic", "", "euler", "linear_quadratic", false, false},
		{"lcm", "ddim_uniform", "", "lcm", "ddim_uniform", false, false},
		{"DDIM", "Automatic", ClassDDIM, "", "", false, false},
		{"DDIM", "Uniform", ClassDDIM, "", "", false, false},
		{"uni_pc", "karras", ClassUniPC, "", "", true, false},
		{"DPMSolverMultistepScheduler", "Exponential", ClassDPMSolver, "", "", false, true},
		{"EulerDiscreteScheduler", "Karras", ClassEuler, "", "", true, false},
		{"Euler a", "Trailing", "", "euler_ancestral", "sgm_uniform", false, false},
	} {
		t.Run(tc.sampler+"/"+tc.schedule, func(t *testing.T) {
			ch, err := ParseSamplerSchedule(tc.sampler, tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Class != tc.class || ch.Sampler != tc.k || ch.Schedule != tc.kind || ch.Karras != tc.karras || ch.Exponential != tc.exp {
				t.Errorf("got %+v", ch)
			}
		})
	}
}

func TestUnknownNamesAreErrorsListingValidOnes(t *testing.T) {
	for _, tc := range []struct {
		sampler, schedule string
		mention           []string
	}{
		{"Euler b", "", []string{"Euler a", "DPM++ 2M", "dpmpp_2m", "euler_ancestral", "UniPC"}},
		{"", "", []string{"Euler a"}},
		{"Euler", "Gamma", []string{"Karras", "Automatic", "Beta"}},
		{"DDIM Karras", "", []string{"Karras"}},
		{"ddim", "karras", []string{"Karras"}},
		{"PLMS", "Karras", []string{"Karras"}},
		{"DDIM", "Beta", []string{"k-diffusion"}},
		{"EulerDiscreteScheduler", "exponential", []string{"exponential"}},
	} {
		t.Run(tc.sampler+"/"+tc.schedule, func(t *testing.T) {
			_, err := ParseSamplerSchedule(tc.sampler, tc.schedule)
			if err == nil {
				t.Fatal("no error")
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	if _, err := New("NoSuchScheduler", nil); err == nil || !strings.Contains(err.Error(), "Euler a") {
		t.Errorf("New with an unknown name: %v", err)
	}
}

func TestSamplerNamesAllConstruct(t *testing.T) {
	names := SamplerNames()
	if len(names) != len(Samplers()) || len(names) < 30 {
		t.Fatalf("SamplerNames %v", names)
	}
	for _, info := range Samplers() {
		for _, n := range append([]string{info.Name}, info.Aliases...) {
			s, err := New(n, sd15Config)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if info.Class != "" && s.Class() != info.Class || info.Class == "" && !strings.HasPrefix(s.Class(), "k-diffusion "+info.KSampler+" ") {
				t.Errorf("%s: class %s, want %s%s", n, s.Class(), info.Class, info.KSampler)
			}
			if err := s.SetTimesteps(12); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
	}
}

func TestNamesImplySolverSettings(t *testing.T) {
	// A config for another setting: the name wins.
	s, err := New("PLMS", []byte(`{"skip_prk_steps": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Config().SkipPRKSteps {
		t.Errorf("PLMS: skip_prk_steps false")
	}
}

func TestEulerAncestralKarrasFromName(t *testing.T) {
	a, err := NewChoice(Choice{Class: ClassEulerAncestral, Karras: true}, sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewChoice(Choice{Class: ClassEuler, Karras: true}, sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := New(ClassEulerAncestral, sd15Config)
	for _, s := range []*Scheduler{a, b, plain} {
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb, sp := a.Sigmas(), b.Sigmas(), plain.Sigmas()
	for i := range sa {
		if sa[i] != sb[i] {
			t.Fatalf("Euler a Karras sigmas %v differ from Euler Karras %v", sa, sb)
		}
	}
	if sa[1] == sp[1] {
		t.Errorf("Karras sigmas equal the plain ones: %v", sa)
	}
	// diffusers' EulerAncestralDiscreteScheduler has no use_karras_sigmas:
	// a config asking for it is ignored, as in diffusers.
	c, _ := New(ClassEulerAncestral, []byte(`{"use_karras_sigmas": true, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`))
	_ = c.SetTimesteps(10)
	if c.Sigmas()[1] != sp[1] {
		t.Errorf("EulerAncestral honoured use_karras_sigmas from a config")
	}
}

// Every listed name parses, alone and with every listed schedule (where the
// pair is refused, the error says which sampler and schedule).
func TestAcceptedSamplerNamesParse(t *testing.T) {
	names := AcceptedSamplerNames()
	if len(names) < len(samplerDefs)+len(ClassNames()) {
		t.Fatalf("only %d names listed", len(names))
	}
	for _, n := range names {
		if _, err := ParseSampler(n); err != nil {
			t.Errorf("%q is listed but does not parse: %v", n, err)
		}
		for _, sc := range ScheduleNames() {
			if _, err := ParseSamplerSchedule(n, sc); err != nil && !strings.Contains(err.Error(), sc) {
				t.Errorf("%q with %q: error %q does not name the schedule", n, sc, err)
			}
		}
	}
}

// Infotext records A1111's display name and the schedule label, and reads
// back to the same sampler.
func TestInfotextNamesAreA1111s(t *testing.T) {
	for _, tc := range []struct{ sampler, schedule, name, label string }{
		{"DPM++ 2M Karras", "", "DPM++ 2M", "Karras"},
		{"DPM++ 2M", "", "DPM++ 2M", "Karras"},
		{"DPM++ 2M", "Automatic", "DPM++ 2M", "Karras"},
		{"dpmpp_2m", "karras", "DPM++ 2M", "Karras"},
		{"dpmpp_2m", "", "DPM++ 2M", "Uniform"},
		{"Euler a", "", "Euler a", ""},
		{"Euler a", "Automatic", "Euler a", ""},
		{"Euler a", "Uniform", "Euler a", "Uniform"},
		{"euler_ancestral", "sgm_uniform", "Euler a", "SGM Uniform"},
		{"DPM++ 2M SDE", "", "DPM++ 2M SDE", "Exponential"},
		{"k_lms_ka", "", "LMS", "Karras"},
		{"LCM", "", "LCM", ""},
		{"dpmpp_3m_sde", "normal", "dpmpp_3m_sde", "normal"}, // A1111's would drop a sigma
		{"DDIM", "", "DDIM", ""},
		{"DDIM", "trailing", "DDIM", "Trailing"},
		{"TCD", "", "TCD", ""},
		{"UniPC", "Karras", "UniPC", "Karras"},
		{"EulerDiscreteScheduler", "", "EulerDiscreteScheduler", ""},
	} {
		name, label := InfotextNames(tc.sampler, tc.schedule)
		if name != tc.name || label != tc.label {
			t.Errorf("%q + %q: recorded %q + %q, want %q + %q", tc.sampler, tc.schedule, name, label, tc.name, tc.label)
		}
		a, _ := ParseSamplerSchedule(tc.sampler, tc.schedule)
		b, err := ParseSamplerSchedule(name, label)
		if err != nil || !sameRun(a, b) {
			t.Errorf("%q + %q: read back as %+v (%v), want %+v", name, label, b, err, a)
		}
	}
}
