package scheduler

import (
	"strings"
	"testing"
)

func TestParseSamplerMapsUserNamesToClasses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		class  string
		karras bool
	}{
		// AUTOMATIC1111 display names.
		{"Euler a", ClassEulerAncestral, false},
		{"Euler", ClassEuler, false},
		{"DPM++ 2M", ClassDPMSolver, false},
		{"DPM++ 2M Karras", ClassDPMSolver, true},
		{"DPM++ 2M SDE", ClassDPMSolver, false},
		{"DPM++ 2M SDE Karras", ClassDPMSolver, true},
		{"DDIM", ClassDDIM, false},
		{"PLMS", ClassPNDM, false},
		{"LMS", ClassLMS, false},
		{"LMS Karras", ClassLMS, true},
		{"Heun", ClassHeun, false},
		{"UniPC", ClassUniPC, false},
		{"DDPM", ClassDDPM, false},
		// Case and spacing do not matter.
		{"euler a", ClassEulerAncestral, false},
		{"  EULER   A ", ClassEulerAncestral, false},
		{"dpm++ 2m karras", ClassDPMSolver, true},
		{"DPM++2MKarras", ClassDPMSolver, true},
		{"unipc", ClassUniPC, false},
		// "<sampler> Karras" for every sampler with Karras sigmas.
		{"Euler Karras", ClassEuler, true},
		{"Euler a Karras", ClassEulerAncestral, true},
		{"Heun Karras", ClassHeun, true},
		{"UniPC Karras", ClassUniPC, true},
		// A1111's internal aliases.
		{"k_euler_a", ClassEulerAncestral, false},
		{"k_dpmpp_2m_ka", ClassDPMSolver, true},
		{"k_lms_ka", ClassLMS, true},
		// ComfyUI sampler names.
		{"euler", ClassEuler, false},
		{"euler_ancestral", ClassEulerAncestral, false},
		{"heun", ClassHeun, false},
		{"dpmpp_2m", ClassDPMSolver, false},
		{"dpmpp_2m_sde", ClassDPMSolver, false},
		{"lms", ClassLMS, false},
		{"ddim", ClassDDIM, false},
		{"uni_pc", ClassUniPC, false},
		{"uni_pc_bh2", ClassUniPC, false},
		{"ddpm", ClassDDPM, false},
		// diffusers class names.
		{"EulerDiscreteScheduler", ClassEuler, false},
		{"dpmsolvermultistepscheduler", ClassDPMSolver, false},
		{"PNDMScheduler", ClassPNDM, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := ParseSampler(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Class != tc.class || ch.Karras != tc.karras {
				t.Errorf("got class %s karras %v, want %s karras %v", ch.Class, ch.Karras, tc.class, tc.karras)
			}
		})
	}
}

func TestParseSamplerScheduleSplitForm(t *testing.T) {
	for _, tc := range []struct {
		sampler, schedule string
		class             string
		karras, exp       bool
	}{
		{"DPM++ 2M", "Karras", ClassDPMSolver, true, false},
		{"DPM++ 2M", "Automatic", ClassDPMSolver, true, false}, // A1111 ≥1.9 default for DPM++ 2M
		{"DPM++ 2M", "Uniform", ClassDPMSolver, false, false},
		{"DPM++ 2M", "", ClassDPMSolver, false, false},
		{"DPM++ 2M Karras", "Automatic", ClassDPMSolver, true, false},
		{"DPM++ 2M Karras", "Uniform", ClassDPMSolver, false, false},
		{"DPM++ 2M SDE", "Automatic", ClassDPMSolver, false, true},
		{"DPM++ 2M", "Exponential", ClassDPMSolver, false, true},
		{"Euler a", "Automatic", ClassEulerAncestral, false, false},
		{"Euler a", "Karras", ClassEulerAncestral, true, false},
		{"Euler", "karras", ClassEuler, true, false},
		{"LMS", "Karras", ClassLMS, true, false},
		{"Heun", "Karras", ClassHeun, true, false},
		{"DDIM", "Automatic", ClassDDIM, false, false},
		{"DDIM", "Uniform", ClassDDIM, false, false},
		{"dpmpp_2m", "karras", ClassDPMSolver, true, false},
		{"dpmpp_2m", "normal", ClassDPMSolver, false, false},
		{"euler_ancestral", "karras", ClassEulerAncestral, true, false},
		{"uni_pc", "karras", ClassUniPC, true, false},
		{"ddim", "normal", ClassDDIM, false, false},
		{"lms", "KARRAS", ClassLMS, true, false},
	} {
		t.Run(tc.sampler+"/"+tc.schedule, func(t *testing.T) {
			ch, err := ParseSamplerSchedule(tc.sampler, tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Class != tc.class || ch.Karras != tc.karras || ch.Exponential != tc.exp {
				t.Errorf("got %s karras %v exponential %v, want %s karras %v exponential %v",
					ch.Class, ch.Karras, ch.Exponential, tc.class, tc.karras, tc.exp)
			}
		})
	}
}

func TestUnknownNamesAreErrorsListingValidOnes(t *testing.T) {
	for _, tc := range []struct {
		sampler, schedule string
		mention           []string
	}{
		{"Euler b", "", []string{"Euler a", "DPM++ 2M Karras", "dpmpp_2m", "euler_ancestral", "UniPC"}},
		{"", "", []string{"Euler a"}},
		{"DPM2 a", "", []string{"Euler a"}},
		{"Euler", "Beta", []string{"Karras", "Automatic", "normal"}},
		{"DDIM Karras", "", []string{"Karras"}},
		{"ddim", "karras", []string{"Karras"}},
		{"PLMS", "Karras", []string{"Karras"}},
		{"euler", "exponential", []string{"exponential"}},
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
	if len(names) != len(Samplers()) || len(names) < 11 {
		t.Fatalf("SamplerNames %v", names)
	}
	for _, info := range Samplers() {
		for _, n := range append([]string{info.Name}, info.Aliases...) {
			s, err := New(n, sd15Config)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if s.Class() != info.Class {
				t.Errorf("%s: class %s, want %s", n, s.Class(), info.Class)
			}
			if s.Config().UseKarrasSigmas != info.Karras && info.Class != ClassEulerAncestral {
				t.Errorf("%s: use_karras_sigmas %v", n, s.Config().UseKarrasSigmas)
			}
			if err := s.SetTimesteps(12); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
	}
}

func TestNamesImplySolverSettings(t *testing.T) {
	for _, tc := range []struct {
		name, algo string
		skipPRK    bool
	}{
		{"DPM++ 2M", "dpmsolver++", false},
		{"DPM++ 2M SDE Karras", "sde-dpmsolver++", false},
		{"PLMS", "", true},
	} {
		// A config for another setting: the name wins.
		s, err := New(tc.name, []byte(`{"algorithm_type": "dpmsolver", "solver_order": 3, "skip_prk_steps": false, "final_sigmas_type": "sigma_min"}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := s.Config()
		if tc.algo != "" && (c.AlgorithmType != tc.algo || c.SolverOrder != 2) {
			t.Errorf("%s: algorithm %s order %d", tc.name, c.AlgorithmType, c.SolverOrder)
		}
		if c.SkipPRKSteps != tc.skipPRK {
			t.Errorf("%s: skip_prk_steps %v", tc.name, c.SkipPRKSteps)
		}
	}
}

func TestEulerAncestralKarrasFromName(t *testing.T) {
	a, err := New("Euler a Karras", sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New("Euler Karras", sd15Config)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := New("Euler a", sd15Config)
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
