package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// Choice is a sampler picked by name: the diffusers class that runs it and
// the schedule settings the name implies. The model's scheduler_config
// supplies everything else (see NewChoice).
type Choice struct {
	Class       string // diffusers scheduler class name
	Karras      bool   // Karras sigmas (use_karras_sigmas)
	Exponential bool   // sigmas uniform in log σ (DPM++ only: use_lu_lambdas)
	settings    func(*Config)
	// explicit: a schedule was named, so it also switches off the config's
	// own Karras/exponential setting.
	explicit bool
}

// SamplerInfo describes one named sampler, as an A1111-style
// /sdapi/v1/samplers listing needs it.
type SamplerInfo struct {
	Name    string   // AUTOMATIC1111 display name
	Aliases []string // A1111 internal aliases and ComfyUI sampler names
	Class   string   // diffusers class
	Karras  bool     // the name selects Karras sigmas
}

type samplerDef struct {
	SamplerInfo
	settings func(*Config)
	// auto is the schedule AUTOMATIC1111 (≥1.9) uses for this sampler under
	// "Automatic": "", "karras" or "exponential".
	auto string
}

func dpmpp2M(c *Config) { c.AlgorithmType, c.SolverOrder = "dpmsolver++", 2 }
func dpmpp2MSDE(c *Config) {
	c.AlgorithmType, c.SolverOrder, c.SolverType = "sde-dpmsolver++", 2, "midpoint"
}
func plms(c *Config) { c.SkipPRKSteps = true }

// samplerDefs maps the names users type to diffusers classes, following the
// table in diffusers' scheduler documentation (A1111 name → class).
var samplerDefs = []samplerDef{
	{SamplerInfo: SamplerInfo{Name: "Euler a", Aliases: []string{"k_euler_a", "k_euler_ancestral", "euler_ancestral"}, Class: ClassEulerAncestral}},
	{SamplerInfo: SamplerInfo{Name: "Euler", Aliases: []string{"k_euler", "euler"}, Class: ClassEuler}},
	{SamplerInfo: SamplerInfo{Name: "LMS", Aliases: []string{"k_lms", "lms"}, Class: ClassLMS}},
	{SamplerInfo: SamplerInfo{Name: "LMS Karras", Aliases: []string{"k_lms_ka"}, Class: ClassLMS, Karras: true}},
	{SamplerInfo: SamplerInfo{Name: "Heun", Aliases: []string{"k_heun", "heun"}, Class: ClassHeun}},
	{SamplerInfo: SamplerInfo{Name: "DPM++ 2M", Aliases: []string{"k_dpmpp_2m", "dpmpp_2m"}, Class: ClassDPMSolver}, settings: dpmpp2M, auto: "karras"},
	{SamplerInfo: SamplerInfo{Name: "DPM++ 2M Karras", Aliases: []string{"k_dpmpp_2m_ka"}, Class: ClassDPMSolver, Karras: true}, settings: dpmpp2M},
	{SamplerInfo: SamplerInfo{Name: "DPM++ 2M SDE", Aliases: []string{"k_dpmpp_2m_sde", "dpmpp_2m_sde"}, Class: ClassDPMSolver}, settings: dpmpp2MSDE, auto: "exponential"},
	{SamplerInfo: SamplerInfo{Name: "DPM++ 2M SDE Karras", Aliases: []string{"k_dpmpp_2m_sde_ka"}, Class: ClassDPMSolver, Karras: true}, settings: dpmpp2MSDE},
	{SamplerInfo: SamplerInfo{Name: "DDIM", Aliases: []string{"ddim"}, Class: ClassDDIM}},
	{SamplerInfo: SamplerInfo{Name: "PLMS", Aliases: []string{"plms", "pndm"}, Class: ClassPNDM}, settings: plms},
	{SamplerInfo: SamplerInfo{Name: "UniPC", Aliases: []string{"uni_pc", "uni_pc_bh2"}, Class: ClassUniPC}},
	{SamplerInfo: SamplerInfo{Name: "DDPM", Aliases: []string{"ddpm"}, Class: ClassDDPM}},
}

// scheduleNames are the schedule ("Schedule type" in A1111, "scheduler" in
// ComfyUI) names accepted by ParseSamplerSchedule, with their effect.
var scheduleNames = map[string]string{
	"automatic":   "auto",
	"uniform":     "",
	"normal":      "",
	"karras":      "karras",
	"exponential": "exponential",
}

// ScheduleNames lists the accepted schedule names.
func ScheduleNames() []string {
	return []string{"Automatic", "Uniform", "Karras", "Exponential", "normal", "karras", "exponential"}
}

// normName folds case and drops spaces, underscores and hyphens.
func normName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		switch r {
		case ' ', '_', '-', '\t':
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Samplers lists the named samplers.
func Samplers() []SamplerInfo {
	out := make([]SamplerInfo, len(samplerDefs))
	for i, d := range samplerDefs {
		out[i] = d.SamplerInfo
		out[i].Aliases = append([]string(nil), d.Aliases...)
	}
	return out
}

// SamplerNames lists the A1111 display names of the available samplers.
func SamplerNames() []string {
	out := make([]string, len(samplerDefs))
	for i, d := range samplerDefs {
		out[i] = d.Name
	}
	return out
}

// AcceptedSamplerNames lists every sampler name ParseSampler accepts, up to
// case and spacing: the A1111 display names and aliases, the ComfyUI names,
// the legacy "<sampler> Karras" names and the diffusers class names.
func AcceptedSamplerNames() []string {
	var out []string
	for _, d := range samplerDefs {
		out = append(out, d.Name)
		out = append(out, d.Aliases...)
		if !d.Karras {
			ch := Choice{Class: d.Class, Karras: true}
			if _, dup := findSampler(normName(d.Name + "karras")); !dup && ch.supported() == nil {
				out = append(out, d.Name+" Karras")
			}
		}
	}
	return append(out, ClassNames()...)
}

func findSampler(key string) (samplerDef, bool) {
	for _, d := range samplerDefs {
		if normName(d.Name) == key {
			return d, true
		}
		for _, a := range d.Aliases {
			if normName(a) == key {
				return d, true
			}
		}
	}
	return samplerDef{}, false
}

func unknownSampler(name string) error {
	var comfy []string
	for _, d := range samplerDefs {
		for _, a := range d.Aliases {
			if !strings.HasPrefix(a, "k_") {
				comfy = append(comfy, a)
			}
		}
	}
	sort.Strings(comfy)
	return fmt.Errorf("scheduler: unknown sampler %q; valid names: %s (any of them + \" Karras\" where the sampler supports it); ComfyUI: %s; or a diffusers class: %s",
		name, strings.Join(SamplerNames(), ", "), strings.Join(comfy, ", "), strings.Join(ClassNames(), ", "))
}

// ParseSampler resolves a sampler name: an AUTOMATIC1111 name ("Euler a",
// "DPM++ 2M Karras", including the legacy "<sampler> Karras" names), a
// ComfyUI sampler name ("euler_ancestral", "dpmpp_2m") or a diffusers class
// name. Case, spaces, underscores and hyphens are ignored. An unknown name is
// an error that lists the valid ones.
func ParseSampler(name string) (Choice, error) {
	key := normName(name)
	if key == "" {
		return Choice{}, unknownSampler(name)
	}
	if d, ok := findSampler(key); ok {
		return Choice{Class: d.Class, Karras: d.Karras, settings: d.settings}, nil
	}
	for _, c := range ClassNames() {
		if normName(c) == key {
			return Choice{Class: c}, nil
		}
	}
	if base, ok := strings.CutSuffix(key, "karras"); ok && base != "" {
		if d, ok := findSampler(base); ok && !d.Karras {
			ch := Choice{Class: d.Class, Karras: true, settings: d.settings}
			if err := ch.supported(); err != nil {
				return Choice{}, fmt.Errorf("scheduler: sampler %q: %w", name, err)
			}
			return ch, nil
		}
	}
	return Choice{}, unknownSampler(name)
}

// ParseSamplerSchedule resolves the split form that A1111 (≥1.9:
// sampler_name + scheduler) and ComfyUI (sampler_name + scheduler) use. The
// schedule is "Automatic" (A1111's per-sampler default: Karras for
// "DPM++ 2M", exponential for "DPM++ 2M SDE", else uniform), "Uniform" /
// "normal" (the class's own spacing), "Karras" or "Exponential". An empty
// schedule keeps what the sampler name says, as ParseSampler does; an
// explicit schedule overrides a legacy "… Karras" name.
func ParseSamplerSchedule(sampler, schedule string) (Choice, error) {
	ch, err := ParseSampler(sampler)
	if err != nil || strings.TrimSpace(schedule) == "" {
		return ch, err
	}
	effect, ok := scheduleNames[normName(schedule)]
	if !ok {
		return Choice{}, fmt.Errorf("scheduler: unknown schedule %q; valid names: %s", schedule, strings.Join(ScheduleNames(), ", "))
	}
	if effect == "auto" {
		if d, ok := findSampler(normName(sampler)); ok && !d.Karras {
			effect = d.auto
		} else {
			return ch, nil
		}
	}
	ch.Karras, ch.Exponential, ch.explicit = effect == "karras", effect == "exponential", true
	if err := ch.supported(); err != nil {
		return Choice{}, fmt.Errorf("scheduler: sampler %q with schedule %q: %w", sampler, schedule, err)
	}
	return ch, nil
}

// supported reports whether the class can run the chosen schedule.
func (c Choice) supported() error {
	if c.Karras {
		switch c.Class {
		case ClassDDIM, ClassDDPM, ClassPNDM:
			return fmt.Errorf("%s works on integer timesteps and has no Karras sigmas", c.Class)
		}
	}
	if c.Exponential && c.Class != ClassDPMSolver {
		return fmt.Errorf("the exponential schedule is only available for DPM++ samplers")
	}
	return nil
}

// apply puts the choice's settings into a parsed config. It reports whether
// Karras sigmas must be forced on a class whose diffusers config has no
// use_karras_sigmas (Euler ancestral).
func (c Choice) apply(className string, cfg Config) (Config, bool, error) {
	if c.settings != nil {
		c.settings(&cfg)
	}
	c.Class = className
	if err := c.supported(); err != nil {
		return cfg, false, fmt.Errorf("scheduler: %w", err)
	}
	if c.explicit {
		cfg.UseKarrasSigmas, cfg.UseLuLambdas = false, false
	}
	if c.Exponential {
		cfg.UseLuLambdas = true
	}
	if c.Karras {
		if className == ClassEulerAncestral {
			return cfg, true, nil
		}
		cfg.UseKarrasSigmas, cfg.UseLuLambdas = true, false
	}
	return cfg, false, nil
}
