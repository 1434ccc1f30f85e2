package ldm

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"math"
	"strconv"
	"strings"

	"github.com/disintegration/imaging"

	"github.com/ldm-project/ldm/scheduler"
)

// HiresFix is AUTOMATIC1111's hires fix: the image is generated at the
// request's size, upscaled (in latent space or in pixels) to HiresFix's
// size and denoised again as img2img of the upscaled image, with noise from
// the same seed. The fields have A1111's names and meanings.
type HiresFix struct {
	// Scale multiplies the size (A1111's hr_scale; default 2) unless
	// ResizeX/ResizeY give the target size: one of them keeps the aspect
	// ratio, both crop the upscaled image to exactly that size.
	Scale   float64 `json:"hr_scale,omitempty"`
	ResizeX int     `json:"hr_resize_x,omitempty"`
	ResizeY int     `json:"hr_resize_y,omitempty"`
	// Upscaler is one of HiresUpscalers ("Latent" by default).
	Upscaler string `json:"hr_upscaler,omitempty"`
	// Steps of the second pass (0: the request's steps); Strength is its
	// denoising strength (default 0.7, A1111's).
	Steps    int     `json:"hr_second_pass_steps,omitempty"`
	Strength float64 `json:"denoising_strength,omitempty"`
	// Sampler, Schedule, Prompt and NegativePrompt of the second pass ("":
	// the request's).
	Sampler        string `json:"hr_sampler_name,omitempty"`
	Schedule       string `json:"hr_scheduler,omitempty"`
	Prompt         string `json:"hr_prompt,omitempty"`
	NegativePrompt string `json:"hr_negative_prompt,omitempty"`
}

// DefaultHiresStrength is A1111's denoising strength of the second pass.
const DefaultHiresStrength = 0.7

// LatentUpscaleModes are A1111's latent upscalers: the first pass's latents
// are resized (torch.nn.functional.interpolate's modes) and denoised again.
var LatentUpscaleModes = []string{"Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"}

// PixelUpscalers resize the decoded first image, which is encoded again.
var PixelUpscalers = []string{"None", "Lanczos", "Nearest"}

// HiresUpscalers lists every hires upscaler name.
func HiresUpscalers() []string {
	return append(append([]string{}, LatentUpscaleModes...), PixelUpscalers...)
}

func isLatentUpscaler(name string) bool {
	for _, m := range LatentUpscaleModes {
		if strings.EqualFold(m, name) {
			return true
		}
	}
	return false
}

func canonicalUpscaler(name string) (string, bool) {
	for _, m := range HiresUpscalers() {
		if strings.EqualFold(m, name) {
			return m, true
		}
	}
	return "", false
}

// sameAs maps A1111's "Use same sampler"/"Use same scheduler" to "".
func sameAs(s string) string {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "use same") {
		return ""
	}
	return s
}

// hiresDefaults fills the hires fix's unset fields.
func (h *HiresFix) defaults() {
	if h.Scale == 0 && h.ResizeX == 0 && h.ResizeY == 0 {
		h.Scale = 2
	}
	if h.Upscaler == "" {
		h.Upscaler = "Latent"
	} else if c, ok := canonicalUpscaler(h.Upscaler); ok {
		h.Upscaler = c
	}
	if h.Strength == 0 {
		h.Strength = DefaultHiresStrength
	}
	h.Sampler, h.Schedule = sameAs(h.Sampler), sameAs(h.Schedule)
}

// target is A1111's init_hr: the size the first image is upscaled to and
// the crop (in pixels, each side) that makes it ResizeX×ResizeY.
func (h *HiresFix) target(w, hgt int) (upW, upH, cropX, cropY int) {
	switch {
	case h.ResizeX == 0 && h.ResizeY == 0:
		return int(float64(w) * h.Scale), int(float64(hgt) * h.Scale), 0, 0
	case h.ResizeY == 0:
		return h.ResizeX, h.ResizeX * hgt / w, 0, 0
	case h.ResizeX == 0:
		return h.ResizeY * w / hgt, h.ResizeY, 0, 0
	}
	if float64(w)/float64(hgt) < float64(h.ResizeX)/float64(h.ResizeY) {
		upW, upH = h.ResizeX, h.ResizeX*hgt/w
	} else {
		upW, upH = h.ResizeY*w/hgt, h.ResizeY
	}
	return upW, upH, (upW - h.ResizeX) / 2, (upH - h.ResizeY) / 2
}

// checkHires validates the hires fix of a defaulted request.
func (r *Request) checkHires(l Limits) error {
	if r.Hires == nil {
		return nil
	}
	hd := *r.Hires
	hd.defaults()
	h := &hd
	bad := func(field, format string, a ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case r.InitImage != nil:
		return bad("enable_hr", "is for txt2img: an init image has no first pass to upscale")
	case math.IsNaN(h.Scale) || h.Scale < 0 || h.Scale > 8:
		return bad("hr_scale", "%g must be between 1 and 8", h.Scale)
	case h.Scale != 0 && h.Scale < 1:
		return bad("hr_scale", "%g must be between 1 and 8", h.Scale)
	case h.ResizeX < 0 || h.ResizeY < 0:
		return bad("hr_resize_x", "%dx%d: sizes must be positive", h.ResizeX, h.ResizeY)
	case math.IsNaN(h.Strength) || h.Strength <= 0 || h.Strength > 1:
		return bad("denoising_strength", "%g must be in (0, 1]", h.Strength)
	case h.Steps < 0 || (l.MaxSteps > 0 && h.Steps > l.MaxSteps):
		return bad("hr_second_pass_steps", "%d must be between 0 (the same steps) and %d", h.Steps, l.MaxSteps)
	case l.MaxPromptChars > 0 && (len(h.Prompt) > l.MaxPromptChars || len(h.NegativePrompt) > l.MaxPromptChars):
		return bad("hr_prompt", "is longer than the limit of %d characters", l.MaxPromptChars)
	}
	if _, ok := canonicalUpscaler(h.Upscaler); !ok {
		return bad("hr_upscaler", "%q is not an upscaler: use one of %s", h.Upscaler, strings.Join(HiresUpscalers(), ", "))
	}
	if _, err := scheduler.ParseSamplerSchedule(h.samplerOf(*r), h.scheduleOf(*r)); err != nil {
		return bad("hr_sampler_name", "%s", strings.TrimPrefix(err.Error(), "scheduler: "))
	}
	if r.Width > 0 && r.Height > 0 {
		w, hh := h.finalSize(r.Width, r.Height)
		if (l.MaxWidth > 0 && w > l.MaxWidth) || (l.MaxHeight > 0 && hh > l.MaxHeight) || w < 1 || hh < 1 {
			return bad("hr_scale", "the hires size %dx%d is outside 1…%dx%d", w, hh, l.MaxWidth, l.MaxHeight)
		}
	}
	return nil
}

func (h *HiresFix) samplerOf(r Request) string {
	if h.Sampler != "" {
		return h.Sampler
	}
	return r.Sampler
}

func (h *HiresFix) scheduleOf(r Request) string {
	if h.Sampler == "" && h.Schedule == "" {
		return r.Schedule
	}
	return h.Schedule
}

// finalSize is the second pass's size before it is made a multiple of the
// VAE factor.
func (h *HiresFix) finalSize(w, hgt int) (int, int) {
	upW, upH, cx, cy := h.target(w, hgt)
	if cx != 0 || cy != 0 || (h.ResizeX > 0 && h.ResizeY > 0) {
		return h.ResizeX, h.ResizeY
	}
	return upW, upH
}

// hiresTask is a first-pass result's second pass: an img2img plan of the
// upscaled image (or latents) with the image's seed.
func (p *Pipeline) hiresPlan(first *Plan, res Result) (*Plan, error) {
	r, h := first.req, *first.req.Hires
	f := p.Factor()
	upW, upH, _, _ := h.target(r.Width, r.Height)
	finW, finH := h.finalSize(r.Width, r.Height)
	finW, finH = max(finW/f*f, f), max(finH/f*f, f)
	sec := r
	sec.Hires = nil
	sec.Seed, sec.BatchSize, sec.BatchCount = res.Seed, 1, 1
	sec.Width, sec.Height = finW, finH
	sec.Strength = h.Strength
	if h.Steps > 0 {
		sec.Steps = h.Steps
	}
	sec.Sampler, sec.Schedule = h.samplerOf(r), h.scheduleOf(r)
	if h.Prompt != "" {
		sec.Prompt = h.Prompt
	}
	if h.NegativePrompt != "" {
		sec.NegativePrompt = h.NegativePrompt
	}
	// LoRA tags of the first prompt stay in force when hr_prompt is given
	// without them, as in A1111 (the set is the plan's, applied once).
	if isLatentUpscaler(h.Upscaler) {
		if res.latents == nil {
			return nil, fmt.Errorf("ldm: hires fix: the first pass kept no latents")
		}
		C := p.UNet.Config.OutChannels
		lat := resizeLatents(res.latents, C, r.Height/f, r.Width/f, upH/f, upW/f, h.Upscaler)
		sec.initLatents = cropLatents(lat, C, upH/f, upW/f, finH/f, finW/f)
		sec.InitImage = resizeTo(res.Image, finW, finH) // its size only: the latents are given
	} else {
		sec.InitImage = cropCenter(upscaleImage(res.Image, upW, upH, h.Upscaler), finW, finH)
	}
	return p.Prepare(sec, first.limits)
}

// checkHiresPass checks, before the first pass runs, that the second pass
// has a denoising step and that the model takes its size.
func (p *Pipeline) checkHiresPass(r Request) error {
	h := r.Hires
	if h == nil {
		return nil
	}
	choice, err := scheduler.ParseSamplerSchedule(h.samplerOf(r), h.scheduleOf(r))
	if err != nil {
		return &FieldError{Field: "hr_sampler_name", Msg: strings.TrimPrefix(err.Error(), "scheduler: ")}
	}
	sched, err := scheduler.NewChoice(choice, p.SchedulerConfig)
	if err != nil {
		return &FieldError{Field: "hr_sampler_name", Msg: strings.TrimPrefix(err.Error(), "scheduler: ")}
	}
	steps := r.Steps
	if h.Steps > 0 {
		steps = h.Steps
	}
	if err := sched.SetTimesteps(steps); err != nil {
		return &FieldError{Field: "hr_second_pass_steps", Msg: strings.TrimPrefix(err.Error(), "scheduler: ")}
	}
	if sched.BeginIndex(h.Strength) >= len(sched.Timesteps()) {
		return &FieldError{Field: "denoising_strength", Msg: fmt.Sprintf("%g leaves no denoising step of the hires pass with %d steps: raise it or hr_second_pass_steps", h.Strength, steps)}
	}
	f := p.Factor()
	w, hh := h.finalSize(r.Width, r.Height)
	w, hh = max(w/f*f, f), max(hh/f*f, f)
	if err := p.UNet.Config.CheckSize(hh/f, w/f); err != nil {
		return &FieldError{Field: "hr_scale", Msg: fmt.Sprintf("the hires size %dx%d cannot run on this model: %v", w, hh, err)}
	}
	return nil
}

// upscaleImage resizes img with a pixel upscaler.
func upscaleImage(img image.Image, w, h int, name string) *image.RGBA {
	filter := imaging.Lanczos
	if strings.EqualFold(name, "Nearest") {
		filter = imaging.NearestNeighbor
	}
	n := imaging.Resize(img, w, h, filter)
	out := image.NewRGBA(n.Bounds())
	draw.Draw(out, out.Bounds(), n, image.Point{}, draw.Src)
	return out
}

// cropCenter cuts w×h out of img's centre as A1111's latent truncation
// does (the extra row or column goes to the end).
func cropCenter(img *image.RGBA, w, h int) *image.RGBA {
	b := img.Bounds()
	if b.Dx() == w && b.Dy() == h {
		return img
	}
	x0, y0 := (b.Dx()-w)/2, (b.Dy()-h)/2
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), img, image.Pt(b.Min.X+x0, b.Min.Y+y0), draw.Src)
	return out
}

// cropLatents cuts h×w out of a C×H×W latent, centred as A1111 truncates.
func cropLatents(x []float32, C, H, W, h, w int) []float32 {
	if H == h && W == w {
		return x
	}
	y0, x0 := (H-h)/2, (W-w)/2
	out := make([]float32, 0, C*h*w)
	for c := range C {
		for y := range h {
			row := (c*H+y0+y)*W + x0
			out = append(out, x[row:row+w]...)
		}
	}
	return out
}

// resizeLatents resizes a C×H×W latent to C×h×w with the latent upscale
// mode's torch.nn.functional.interpolate (align_corners=False; antialias
// widens the kernel when shrinking and takes bicubic's a = −0.5).
func resizeLatents(x []float32, C, H, W, h, w int, mode string) []float32 {
	m := strings.ToLower(mode)
	kind, aa := "bilinear", strings.Contains(m, "antialiased")
	switch {
	case strings.Contains(m, "nearest-exact"):
		kind = "nearest-exact"
	case strings.Contains(m, "nearest"):
		kind = "nearest"
	case strings.Contains(m, "bicubic"):
		kind = "bicubic"
	}
	wy := resampleWeights(H, h, kind, aa)
	wx := resampleWeights(W, w, kind, aa)
	tmp := make([]float32, C*H*w) // width first
	for c := range C {
		for y := range H {
			src := x[(c*H+y)*W : (c*H+y+1)*W]
			for j, tw := range wx {
				var s float64
				for _, t := range tw {
					s += float64(src[t.i]) * t.w
				}
				tmp[(c*H+y)*w+j] = float32(s)
			}
		}
	}
	out := make([]float32, C*h*w)
	for c := range C {
		for i, tw := range wy {
			for j := range w {
				var s float64
				for _, t := range tw {
					s += float64(tmp[(c*H+t.i)*w+j]) * t.w
				}
				out[(c*h+i)*w+j] = float32(s)
			}
		}
	}
	return out
}

type tap struct {
	i int
	w float64
}

// resampleWeights are the taps of each of out outputs over in inputs.
func resampleWeights(in, out int, kind string, aa bool) [][]tap {
	scale := float64(in) / float64(out)
	ws := make([][]tap, out)
	clamp := func(i int) int { return min(max(i, 0), in-1) }
	for o := range out {
		switch kind {
		case "nearest":
			ws[o] = []tap{{clamp(int(math.Floor(float64(o) * scale))), 1}}
			continue
		case "nearest-exact":
			ws[o] = []tap{{clamp(int(math.Floor((float64(o) + 0.5) * scale))), 1}}
			continue
		}
		if aa && scale > 1 { // torch's antialiased kernels: support × scale, weights normalised
			support, a := 1.0, -0.5
			if kind == "bicubic" {
				support = 2
			}
			center := (float64(o) + 0.5) * scale
			lo := max(int(center-support*scale+0.5), 0)
			hi := min(int(center+support*scale+0.5), in)
			var t []tap
			var sum float64
			for i := lo; i < hi; i++ {
				d := (float64(i) - center + 0.5) / scale
				v := triangle(d)
				if kind == "bicubic" {
					v = cubic(d, a)
				}
				t = append(t, tap{i, v})
				sum += v
			}
			for k := range t {
				t[k].w /= sum
			}
			ws[o] = t
			continue
		}
		src := (float64(o)+0.5)*scale - 0.5
		if kind == "bilinear" {
			src = max(src, 0)
			i0 := int(math.Floor(src))
			fr := src - float64(i0)
			ws[o] = []tap{{clamp(i0), 1 - fr}, {clamp(i0 + 1), fr}}
			continue
		}
		a := -0.75
		if aa {
			a = -0.5
		}
		i0 := int(math.Floor(src))
		fr := src - float64(i0)
		var t []tap
		for k := -1; k <= 2; k++ {
			t = append(t, tap{clamp(i0 + k), cubic(float64(k)-fr, a)})
		}
		ws[o] = t
	}
	return ws
}

func triangle(x float64) float64 { return max(0, 1-math.Abs(x)) }

// cubic is Keys' cubic convolution kernel with parameter a.
func cubic(x, a float64) float64 {
	x = math.Abs(x)
	switch {
	case x <= 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return ((a*x-5*a)*x+8*a)*x - 4*a
	}
	return 0
}

// hiresInfotext adds A1111's hires fields to an infotext.
func hiresInfotext(add func(k, v string), r Request) {
	h := r.Hires
	if h == nil {
		return
	}
	add("Denoising strength", fmtFloat(h.Strength))
	if h.ResizeX == 0 && h.ResizeY == 0 {
		add("Hires upscale", fmtFloat(h.Scale))
	} else {
		add("Hires resize", fmt.Sprintf("%dx%d", h.ResizeX, h.ResizeY))
	}
	if h.Steps > 0 {
		add("Hires steps", fmt.Sprint(h.Steps))
	}
	add("Hires upscaler", h.Upscaler)
	if h.Sampler != "" && h.Sampler != r.Sampler {
		s, _ := scheduler.InfotextNames(h.Sampler, "")
		add("Hires sampler", s)
	}
	if h.Schedule != "" && h.Schedule != r.Schedule {
		add("Hires schedule type", h.Schedule)
	}
	if h.Prompt != "" && h.Prompt != r.Prompt {
		add("Hires prompt", quoteIfNeeded(h.Prompt))
	}
	if h.NegativePrompt != "" && h.NegativePrompt != r.NegativePrompt {
		add("Hires negative prompt", quoteIfNeeded(h.NegativePrompt))
	}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// quoteIfNeeded quotes a value with A1111's infotext syntax characters.
func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, ",:\"\n") {
		return strconv.Quote(s)
	}
	return s
}

// hiresFromInfotext reads A1111's hires fields back.
func hiresFromInfotext(it Infotext, r *Request) error {
	up, hasUp := it.Get("Hires upscale")
	rs, hasRs := it.Get("Hires resize")
	upscaler, hasU := it.Get("Hires upscaler")
	if !hasUp && !hasRs && !hasU {
		return nil
	}
	h := &HiresFix{Upscaler: upscaler, Strength: r.Strength}
	r.Strength = 0 // the second pass's, not an init image's
	var err error
	if hasUp {
		if h.Scale, err = strconv.ParseFloat(strings.TrimSpace(up), 64); err != nil {
			return fmt.Errorf("Hires upscale: %q is not a number", up)
		}
	}
	if hasRs {
		x, y, ok := strings.Cut(rs, "x")
		var e1, e2 error
		h.ResizeX, e1 = strconv.Atoi(strings.TrimSpace(x))
		h.ResizeY, e2 = strconv.Atoi(strings.TrimSpace(y))
		if !ok || e1 != nil || e2 != nil {
			return fmt.Errorf("Hires resize: %q is not WIDTHxHEIGHT", rs)
		}
	}
	if v, ok := it.Get("Hires steps"); ok {
		if h.Steps, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("Hires steps: %q is not a number", v)
		}
	}
	h.Sampler, _ = it.Get("Hires sampler")
	h.Schedule, _ = it.Get("Hires schedule type")
	h.Prompt, _ = it.Get("Hires prompt")
	h.NegativePrompt, _ = it.Get("Hires negative prompt")
	r.Hires = h
	return nil
}

// runHires runs the second pass of every task whose plan has a hires fix:
// one img2img plan per first-pass image, through runGroup like any plan,
// and replaces the task's results with the second pass's. Called with p.mu
// held.
func (p *Pipeline) runHires(ctx context.Context, tasks []Task, hires []Options, out []BatchResult) {
	var sec []Task
	var owner []int
	for i, t := range tasks {
		if t.Plan == nil || t.Plan.req.Hires == nil || out[i].Err != nil {
			continue
		}
		for _, res := range out[i].Results {
			pl, err := p.hiresPlan(t.Plan, res)
			if err != nil {
				out[i].Err = err
				break
			}
			o := hires[i]
			o.OnImage = nil // called below with the final infotext
			sec = append(sec, Task{Ctx: t.Ctx, Plan: pl, Opts: o})
			owner = append(owner, i)
		}
	}
	if len(sec) == 0 {
		return
	}
	done := make([]BatchResult, len(sec))
	for _, g := range groupByKey(sec) {
		p.runGroup(ctx, sec, g, done)
	}
	firsts := map[int]bool{}
	for k, i := range owner {
		if !firsts[i] {
			firsts[i] = true
			out[i].Results = nil
		}
		if done[k].Err != nil && out[i].Err == nil {
			out[i].Err = done[k].Err
		}
		for _, r := range done[k].Results {
			r.Infotext = p.infotext(tasks[i].Plan.req, r.Seed)
			r.latents = nil
			out[i].Results = append(out[i].Results, r)
			if f := tasks[i].Opts.OnImage; f != nil {
				f(r)
			}
		}
	}
}

// groupByKey groups task indices by plan key, in first-seen order.
func groupByKey(tasks []Task) [][]int {
	var groups [][]int
	byKey := map[string]int{}
	for i, t := range tasks {
		g, ok := byKey[t.Plan.key]
		if !ok {
			g = len(groups)
			byKey[t.Plan.key] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}
