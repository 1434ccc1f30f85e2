package scheduler

import (
	"fmt"
	"sort"
	"strings"
)

// Which implementation a name means:
//
//   - An AUTOMATIC1111 sampler name ("Euler a", "DPM++ 2M", "DPM++ SDE",
//     "LCM", …) runs what A1111 runs: k-diffusion's sampler function over
//     the model's discrete sigmas, with A1111's schedule for the name
//     ("Automatic": Karras for DPM++ 2M, exponential for DPM++ 2M SDE, …)
//     and its quirks (DPM2 and DPM++ 3M SDE plan one step more and drop the
//     next-to-last sigma). A1111's own timestep samplers (DDIM, PLMS,
//     UniPC) and DDPM run the diffusers class of the same algorithm.
//   - A ComfyUI sampler name ("euler_ancestral", "dpmpp_2m_sde_gpu", …) runs
//     the same k-diffusion function with ComfyUI's default schedule
//     ("normal") and ComfyUI's quirks (dpm_2 drops the next-to-last sigma).
//   - A diffusers class name ("EulerAncestralDiscreteScheduler") runs
//     diffusers' algorithm with the model's scheduler_config.json.
//
// So a user coming from either tool gets that tool's image for the same
// noise. The legacy combined names ("DPM++ 2M Karras", "DPM++ SDE Karras")
// are the sampler plus the named schedule, as A1111 ≥1.9 splits them.

// Choice is a sampler picked by name: a diffusers class, or a k-diffusion
// sampler function with its sigma schedule. The model's scheduler_config
// supplies everything else (see NewChoice).
type Choice struct {
	Class       string // diffusers scheduler class name ("" for a k-diffusion sampler)
	Karras      bool   // Karras sigmas (diffusers: use_karras_sigmas)
	Exponential bool   // sigmas uniform in log σ (diffusers DPM++: use_lu_lambdas)
	// Sampler is the k-diffusion sampler ("euler", "dpmpp_2m", …) and
	// Schedule its sigma schedule kind ("normal", "karras", …); empty for a
	// diffusers class.
	Sampler, Schedule string
	// Spacing overrides a diffusers class's timestep_spacing ("trailing").
	Spacing  string
	settings func(*Config)
	// explicit: a schedule was named, so it also switches off the config's
	// own Karras/exponential setting.
	explicit bool
	k        kOptions
}

// SamplerInfo describes one named sampler, as an A1111-style
// /sdapi/v1/samplers listing needs it.
type SamplerInfo struct {
	Name    string   // AUTOMATIC1111 display name
	Aliases []string // A1111 internal aliases and ComfyUI sampler names
	// Class is the diffusers class that runs it, or "" when it is a
	// k-diffusion sampler (KSampler names its function).
	Class, KSampler string
	// Schedule is the schedule the name selects ("karras" for the legacy
	// "… Karras" names) or that A1111 picks under "Automatic".
	Schedule string
	Karras   bool // the name selects Karras sigmas
}

type samplerDef struct {
	name    string   // A1111 display name
	aliases []string // A1111 aliases (k_…)
	comfy   []string // ComfyUI sampler names
	class   string   // diffusers class, or
	k       string   // k-diffusion sampler function
	// auto is A1111's schedule under "Automatic" ("" means uniform).
	auto     string
	settings func(*Config)
	opts     kOptions
	// a1111Discard, comfyDiscard: the UI plans one step more and drops the
	// next-to-last sigma (A1111's discard_next_to_last_sigma; ComfyUI's
	// list in KSampler.calculate_sigmas).
	a1111Discard, comfyDiscard bool
}

func plms(c *Config) { c.SkipPRKSteps = true }

// samplerDefs are the named samplers: AUTOMATIC1111's list (its k-diffusion
// samplers, then its timestep samplers), with ComfyUI's names of the same
// functions. A new sampler is one row here and one function in kFuncs.
var samplerDefs = []samplerDef{
	{name: "DPM++ 2M", aliases: []string{"k_dpmpp_2m"}, comfy: []string{"dpmpp_2m"}, k: "dpmpp_2m", auto: "karras"},
	{name: "DPM++ SDE", aliases: []string{"k_dpmpp_sde"}, comfy: []string{"dpmpp_sde", "dpmpp_sde_gpu"}, k: "dpmpp_sde", auto: "karras"},
	{name: "DPM++ 2M SDE", aliases: []string{"k_dpmpp_2m_sde"}, comfy: []string{"dpmpp_2m_sde", "dpmpp_2m_sde_gpu"}, k: "dpmpp_2m_sde", auto: "exponential"},
	{name: "DPM++ 2M SDE Heun", aliases: []string{"k_dpmpp_2m_sde_heun"}, comfy: []string{"dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu"}, k: "dpmpp_2m_sde", auto: "exponential", opts: kOptions{heun: true}},
	{name: "DPM++ 2S a", aliases: []string{"k_dpmpp_2s_a"}, comfy: []string{"dpmpp_2s_ancestral"}, k: "dpmpp_2s_ancestral", auto: "karras"},
	{name: "DPM++ 3M SDE", aliases: []string{"k_dpmpp_3m_sde"}, comfy: []string{"dpmpp_3m_sde", "dpmpp_3m_sde_gpu"}, k: "dpmpp_3m_sde", auto: "exponential", a1111Discard: true},
	{name: "Euler a", aliases: []string{"k_euler_a", "k_euler_ancestral"}, comfy: []string{"euler_ancestral"}, k: "euler_ancestral"},
	{name: "Euler", aliases: []string{"k_euler"}, comfy: []string{"euler"}, k: "euler"},
	{name: "LMS", aliases: []string{"k_lms"}, comfy: []string{"lms"}, k: "lms"},
	{name: "Heun", aliases: []string{"k_heun"}, comfy: []string{"heun"}, k: "heun"},
	{name: "DPM2", aliases: []string{"k_dpm_2"}, comfy: []string{"dpm_2"}, k: "dpm_2", auto: "karras", a1111Discard: true, comfyDiscard: true},
	{name: "DPM2 a", aliases: []string{"k_dpm_2_a"}, comfy: []string{"dpm_2_ancestral"}, k: "dpm_2_ancestral", auto: "karras", a1111Discard: true, comfyDiscard: true},
	{name: "DPM fast", aliases: []string{"k_dpm_fast"}, comfy: []string{"dpm_fast"}, k: "dpm_fast"},
	{name: "DPM adaptive", aliases: []string{"k_dpm_ad"}, comfy: []string{"dpm_adaptive"}, k: "dpm_adaptive"},
	{name: "HeunPP2", aliases: []string{"heunpp2", "Heun++"}, comfy: []string{"heunpp2"}, k: "heunpp2"},
	{name: "LCM", aliases: []string{"k_lcm"}, comfy: []string{"lcm"}, k: "lcm"},
	{name: "Restart", aliases: []string{"restart"}, k: "restart", auto: "karras"},
	{name: "DDIM", aliases: []string{"ddim"}, comfy: []string{"ddim"}, class: ClassDDIM},
	{name: "PLMS", aliases: []string{"plms", "pndm"}, class: ClassPNDM, settings: plms},
	{name: "UniPC", aliases: []string{"uni_pc"}, comfy: []string{"uni_pc", "uni_pc_bh2"}, class: ClassUniPC},
	{name: "DDPM", aliases: []string{"ddpm"}, comfy: []string{"ddpm"}, class: ClassDDPM},
	// Few-step consistency samplers that have no k-diffusion function:
	// diffusers' classes (A1111's "LCM" above is k-diffusion's).
	{name: "TCD", aliases: []string{"tcd"}, class: ClassTCD},
}

// scheduleDef is one named sigma schedule: A1111's label and id, ComfyUI's
// name and aliases, and the kind (a sigmaSchedules key; "auto" is the
// sampler's own default).
type scheduleDef struct {
	label string
	names []string
	kind  string
}

var scheduleDefs = []scheduleDef{
	{"Automatic", []string{"automatic"}, "auto"},
	// k-diffusion's DiscreteSchedule.get_sigmas; on a discrete model it is
	// the same function as ComfyUI's "normal".
	{"Uniform", []string{"uniform", "default"}, "normal"},
	{"Karras", []string{"karras"}, "karras"},
	{"Exponential", []string{"exponential"}, "exponential"},
	{"Polyexponential", []string{"polyexponential"}, "polyexponential"},
	{"SGM Uniform", []string{"sgm_uniform", "SGMUniform"}, "sgm_uniform"},
	{"KL Optimal", []string{"kl_optimal"}, "kl_optimal"},
	{"Align Your Steps", []string{"align_your_steps", "ays", "ays_sd1", "AYS SD1"}, "ays_sd1"},
	{"Simple", []string{"simple"}, "simple"},
	{"Normal", []string{"normal"}, "normal"},
	{"DDIM", []string{"ddim", "ddim_uniform"}, "ddim_uniform"},
	{"Beta", []string{"beta"}, "beta"},
	{"Linear Quadratic", []string{"linear_quadratic"}, "linear_quadratic"},
	// Lin et al. 2023's trailing timesteps (SD-Turbo, zero-SNR models):
	// diffusers' timestep_spacing trailing for a class; for a k-diffusion
	// sampler the same idea, sgm_uniform.
	{"Trailing", []string{"trailing"}, "trailing"},
}

// ScheduleInfo describes one named schedule for a /sdapi/v1/schedulers
// listing.
type ScheduleInfo struct {
	Name, Label string
	Aliases     []string
	DefaultRho  float64 // -1 when the schedule has no rho
}

// Schedules lists the named schedules.
func Schedules() []ScheduleInfo {
	out := make([]ScheduleInfo, len(scheduleDefs))
	for i, d := range scheduleDefs {
		rho := -1.0
		switch d.kind {
		case "karras":
			rho = 7 // Karras et al. 2022
		case "polyexponential":
			rho = 1 // A1111's default
		}
		out[i] = ScheduleInfo{Name: d.names[0], Label: d.label, Aliases: append([]string(nil), d.names[1:]...), DefaultRho: rho}
	}
	return out
}

// ScheduleNames lists the accepted schedule names: A1111's labels, then
// every id and alias.
func ScheduleNames() []string {
	var out []string
	for _, d := range scheduleDefs {
		out = append(out, d.label)
	}
	for _, d := range scheduleDefs {
		for _, n := range d.names {
			if normName(n) != normName(d.label) {
				out = append(out, n)
			}
		}
	}
	return out
}

func parseSchedule(name string) (string, error) {
	key := normName(name)
	for _, d := range scheduleDefs {
		if normName(d.label) == key {
			return d.kind, nil
		}
		for _, n := range d.names {
			if normName(n) == key {
				return d.kind, nil
			}
		}
	}
	var labels []string
	for _, d := range scheduleDefs {
		labels = append(labels, d.label)
	}
	return "", fmt.Errorf("scheduler: unknown schedule %q; valid names: %s (or their ComfyUI names: normal, karras, sgm_uniform, ddim_uniform, …)", name, strings.Join(labels, ", "))
}

// ParseSchedule resolves a schedule name (A1111 label or id, ComfyUI name)
// to its kind: "auto", or a sigma schedule ("normal", "karras", …).
func ParseSchedule(name string) (string, error) { return parseSchedule(name) }

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

func (d samplerDef) info(schedule string) SamplerInfo {
	return SamplerInfo{Name: d.name, Aliases: append(append([]string(nil), d.aliases...), d.comfy...), Class: d.class, KSampler: d.k,
		Schedule: schedule, Karras: schedule == "karras"}
}

// Samplers lists the named samplers, then the legacy "<sampler> Karras"
// names A1111 listed before it split samplers from schedules.
func Samplers() []SamplerInfo {
	var out []SamplerInfo
	for _, d := range samplerDefs {
		out = append(out, d.info(d.auto))
	}
	for _, d := range samplerDefs {
		if _, err := d.choice(false, "karras", true); err != nil {
			continue // DDIM, PLMS, DDPM: integer timesteps, no Karras sigmas
		}
		i := d.info("karras")
		i.Name, i.Aliases = d.name+" Karras", nil
		for _, a := range d.aliases {
			if strings.HasPrefix(a, "k_") {
				i.Aliases = append(i.Aliases, a+"_ka")
			}
		}
		out = append(out, i)
	}
	return out
}

// SamplerNames lists the A1111 display names of the available samplers.
func SamplerNames() []string {
	var out []string
	for _, s := range Samplers() {
		out = append(out, s.Name)
	}
	return out
}

// AcceptedSamplerNames lists every sampler name ParseSampler accepts, up to
// case and spacing: the A1111 display names and aliases, the ComfyUI names,
// the legacy "<sampler> Karras" names and the diffusers class names.
func AcceptedSamplerNames() []string {
	var out []string
	for _, s := range Samplers() {
		out = append(out, s.Name)
		out = append(out, s.Aliases...)
	}
	return append(out, ClassNames()...)
}

// findSampler looks a name up; comfy reports a ComfyUI name.
func findSampler(key string) (d samplerDef, comfy, ok bool) {
	for _, d := range samplerDefs {
		if normName(d.name) == key {
			return d, false, true
		}
		for _, a := range d.aliases {
			if normName(a) == key {
				return d, false, true
			}
		}
	}
	for _, d := range samplerDefs {
		for _, a := range d.comfy {
			if normName(a) == key {
				return d, true, true
			}
		}
	}
	return samplerDef{}, false, false
}

// choice is the def with a schedule kind ("" or "auto": the tool's default).
func (d samplerDef) choice(comfy bool, kind string, explicit bool) (Choice, error) {
	if d.class != "" {
		ch := Choice{Class: d.class, settings: d.settings, explicit: explicit}
		switch kind {
		case "", "auto", "normal":
		case "trailing":
			ch.Spacing = "trailing"
		case "karras":
			ch.Karras = true
		case "exponential":
			ch.Exponential = true
		default:
			return Choice{}, fmt.Errorf("schedule %q is for the k-diffusion samplers; %s runs diffusers' %s, which takes Uniform, Karras or Exponential", kind, d.name, d.class)
		}
		return ch, ch.supported()
	}
	if kind == "trailing" {
		kind = "sgm_uniform"
	}
	ch := Choice{Sampler: d.k, Schedule: kind, k: d.opts, explicit: explicit}
	if kind == "" || kind == "auto" {
		ch.Schedule = "normal"
		if !comfy && d.auto != "" {
			ch.Schedule = d.auto
		}
	}
	if comfy {
		ch.k.discard = d.comfyDiscard
	} else {
		ch.k.discard = d.a1111Discard
	}
	ch.Karras = ch.Schedule == "karras"
	return ch, nil
}

func unknownSampler(name string) error {
	var comfy []string
	for _, d := range samplerDefs {
		comfy = append(comfy, d.comfy...)
	}
	sort.Strings(comfy)
	var a1111 []string
	for _, d := range samplerDefs {
		a1111 = append(a1111, d.name)
	}
	return fmt.Errorf("scheduler: unknown sampler %q; valid names: %s (any of them + \" Karras\" or another schedule, as A1111's legacy names); ComfyUI: %s; or a diffusers class: %s",
		name, strings.Join(a1111, ", "), strings.Join(comfy, ", "), strings.Join(ClassNames(), ", "))
}

// ParseSampler resolves a sampler name: an AUTOMATIC1111 name ("Euler a",
// "DPM++ 2M Karras", including the legacy "<sampler> <schedule>" names),
// a ComfyUI sampler name ("euler_ancestral", "dpmpp_2m") or a diffusers
// class name. Case, spaces, underscores and hyphens are ignored. An unknown
// name is an error that lists the valid ones.
func ParseSampler(name string) (Choice, error) { return ParseSamplerSchedule(name, "") }

// ParseSamplerSchedule resolves the split form that A1111 (≥1.9:
// sampler_name + scheduler) and ComfyUI (sampler_name + scheduler) use. An
// empty or "Automatic" schedule is the tool's default for the sampler (see
// the package's naming rule); an explicit schedule overrides the one a
// legacy "… Karras" name implies.
func ParseSamplerSchedule(sampler, schedule string) (Choice, error) {
	key := normName(sampler)
	if key == "" {
		return Choice{}, unknownSampler(sampler)
	}
	kind, explicit := "", strings.TrimSpace(schedule) != ""
	if explicit {
		var err error
		if kind, err = parseSchedule(schedule); err != nil {
			return Choice{}, err
		}
	}
	wrap := func(ch Choice, err error) (Choice, error) {
		if err != nil {
			if explicit {
				return Choice{}, fmt.Errorf("scheduler: sampler %q with schedule %q: %w", sampler, schedule, err)
			}
			return Choice{}, fmt.Errorf("scheduler: sampler %q: %w", sampler, err)
		}
		return ch, nil
	}
	if d, comfy, ok := findSampler(key); ok {
		return wrap(d.choice(comfy, kind, explicit))
	}
	for _, c := range ClassNames() {
		if normName(c) == key {
			return wrap(samplerDef{name: c, class: c}.choice(false, kind, explicit))
		}
	}
	// A legacy combined name: "<sampler> <schedule>" ("DPM++ 2M Karras",
	// "k_dpmpp_2m_ka").
	for _, sd := range scheduleDefs {
		for _, sn := range append([]string{sd.label}, sd.names...) {
			base, ok := strings.CutSuffix(key, normName(sn))
			if !ok || base == "" || sd.kind == "auto" {
				continue
			}
			if d, comfy, ok := findSampler(base); ok {
				if !explicit {
					kind = sd.kind
				}
				return wrap(d.choice(comfy, kind, true))
			}
		}
	}
	if base, ok := strings.CutSuffix(key, "ka"); ok && strings.HasPrefix(key, "k") {
		if d, _, ok := findSampler(base); ok {
			if !explicit {
				kind = "karras"
			}
			return wrap(d.choice(false, kind, true))
		}
	}
	return Choice{}, unknownSampler(sampler)
}

// supported reports whether a diffusers class can run the chosen schedule.
func (c Choice) supported() error {
	if c.Class == "" {
		return nil
	}
	if c.Karras {
		switch c.Class {
		case ClassDDIM, ClassDDPM, ClassPNDM, ClassLCM, ClassTCD:
			return fmt.Errorf("%s works on integer timesteps and has no Karras sigmas", c.Class)
		}
	}
	if c.Exponential && c.Class != ClassDPMSolver {
		return fmt.Errorf("the exponential schedule is only available for diffusers' DPM++ (%s)", ClassDPMSolver)
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
	if c.Spacing != "" {
		cfg.TimestepSpacing = c.Spacing
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

// InfotextNames is how AUTOMATIC1111 records a sampler and schedule in
// PNG infotext: the sampler's display name ("DPM++ 2M", also for the legacy
// "DPM++ 2M Karras" and the ComfyUI "dpmpp_2m") and the label of the
// schedule that ran ("Karras"; A1111 ≥1.9 writes it even under
// "Automatic"). Reading the pair back gives the same sampler. A name that
// is not an A1111 sampler, or whose A1111 form would run differently
// (ComfyUI's dpmpp_3m_sde keeps the next-to-last sigma), is kept as given.
func InfotextNames(sampler, schedule string) (name, label string) {
	ch, err := ParseSamplerSchedule(sampler, schedule)
	if err != nil {
		return sampler, schedule
	}
	d, _, ok := findSampler(normName(sampler))
	if !ok {
		// A legacy combined name, or a diffusers class.
		for _, def := range samplerDefs {
			if c, err := def.choice(false, ch.Schedule, true); err == nil && ch.Sampler != "" && sameRun(c, ch) {
				d, ok = def, true
				break
			}
		}
	}
	if !ok || d.class != "" && ch.Class != d.class {
		return sampler, schedule
	}
	kind := ch.Schedule
	if ch.Sampler != "" && d.auto == "" && !ch.explicitNamed(sampler, schedule) {
		// A1111 under "Automatic" with no default schedule runs
		// get_sigmas and records no schedule.
		return d.name, ""
	}
	if ch.Class != "" {
		switch {
		case ch.Karras:
			kind = "karras"
		case ch.Exponential:
			kind = "exponential"
		case ch.Spacing != "":
			kind = ch.Spacing
		case strings.TrimSpace(schedule) == "":
			return d.name, ""
		default:
			kind = "normal"
		}
	}
	for _, sd := range scheduleDefs {
		if sd.kind == kind {
			label = sd.label
			break
		}
	}
	if kind == "normal" {
		label = "Uniform" // A1111's name for k-diffusion's default sigmas
	}
	if back, err := ParseSamplerSchedule(d.name, label); err != nil || !sameRun(back, ch) {
		return sampler, schedule
	}
	return d.name, label
}

// explicitNamed reports whether the user named a schedule (split or in a
// legacy combined name) other than Automatic.
func (c Choice) explicitNamed(sampler, schedule string) bool {
	if k, err := parseSchedule(schedule); err == nil && strings.TrimSpace(schedule) != "" && k != "auto" {
		return true
	}
	_, _, direct := findSampler(normName(sampler))
	return !direct
}

// sameRun reports whether two choices run the same algorithm.
func sameRun(a, b Choice) bool {
	return a.Class == b.Class && a.Sampler == b.Sampler && a.Schedule == b.Schedule && a.Karras == b.Karras &&
		a.Exponential == b.Exponential && a.Spacing == b.Spacing && a.k == b.k
}
