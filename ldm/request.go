// Package ldm is the text-to-image pipeline: one Request type validated and
// defaulted in one place, txt2img / img2img / inpainting with classifier-free
// guidance over the unet, vae, textenc and scheduler packages, and the PNG
// output with AUTOMATIC1111-compatible metadata.
package ldm

import (
	"errors"
	"fmt"
	"image"
	"math"
	"strings"

	"github.com/ldm-project/ldm/scheduler"
)

// Request is everything one generation needs. The CLI flags, the native API,
// the AUTOMATIC1111 route and the OpenAI route all translate into it; Defaults
// and Validate are the only places defaults and limits live.
type Request struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Width          int     `json:"width,omitempty"`
	Height         int     `json:"height,omitempty"`
	Steps          int     `json:"steps,omitempty"`
	GuidanceScale  float64 `json:"guidance_scale,omitempty"`
	// Sampler is a diffusers class name, an AUTOMATIC1111 or a ComfyUI name
	// ("Euler a", "DPM++ 2M Karras", "dpmpp_2m"); Schedule optionally names
	// the sigma schedule separately ("karras"), as A1111's split form.
	Sampler  string  `json:"sampler,omitempty"`
	Schedule string  `json:"schedule,omitempty"`
	Seed     int64   `json:"seed"`
	Eta      float64 `json:"eta,omitempty"`
	// BatchSize images share one model batch; BatchCount batches run one
	// after another. Image i gets seed Seed+i (AUTOMATIC1111 convention).
	BatchSize  int `json:"batch_size,omitempty"`
	BatchCount int `json:"batch_count,omitempty"`
	// ClipSkip follows AUTOMATIC1111: 1 (or 0) uses the last layer, 2 the penultimate.
	ClipSkip int `json:"clip_skip,omitempty"`
	// Noise selects the generator: "philox" (default; stable across versions
	// and backends) or "torch" (bit-exact torch.randn on CPU, as diffusers
	// and ComfyUI draw it).
	Noise string `json:"noise,omitempty"`

	InitImage image.Image `json:"-"`
	Strength  float64     `json:"strength,omitempty"`
	Mask      image.Image `json:"-"`
	// MaskBlur is the Gaussian blur of the mask edge in pixels (σ =
	// MaskBlur/2); nil (an absent field) takes DefaultMaskBlur, as in
	// AUTOMATIC1111, and 0 is no blur. Set it with Blur(px).
	MaskBlur *int `json:"mask_blur,omitempty"`
	// MaskInvert repaints the mask's black part instead; InpaintingFill is
	// what the repainted region starts from (FillModes; "original" by
	// default); InpaintFullRes inpaints only the mask's region (grown by
	// InpaintFullResPadding pixels) at the full output size and pastes it
	// back (AUTOMATIC1111's inpainting_mask_invert, inpainting_fill,
	// inpaint_full_res and inpaint_full_res_padding).
	MaskInvert            bool   `json:"inpainting_mask_invert,omitempty"`
	InpaintingFill        string `json:"inpainting_fill,omitempty"`
	InpaintFullRes        bool   `json:"inpaint_full_res,omitempty"`
	InpaintFullResPadding int    `json:"inpaint_full_res_padding,omitempty"`

	// LoRAs are applied on top of the model for this request, as are the
	// prompt's <lora:name:weight> tags (see LoRASpec, ParseLoRATags).
	LoRAs []LoRASpec `json:"loras,omitempty"`

	// ControlNets steer the U-Net with control images (see ControlNetUnit).
	ControlNets []ControlNetUnit `json:"controlnets,omitempty"`

	// VAE names a VAE of the pipeline's VAE folder for this request
	// (AUTOMATIC1111's sd_vae override); "" keeps the pipeline's,
	// "Automatic" or "None" the checkpoint's own.
	VAE string `json:"vae,omitempty"`

	// Hires is AUTOMATIC1111's hires fix (nil: none; see HiresFix).
	Hires *HiresFix `json:"hires,omitempty"`
	// Outpaint extends the init image's canvas and inpaints the new area
	// (nil: none; see Outpaint).
	Outpaint *Outpaint `json:"outpaint,omitempty"`
	// initLatents replace the init image's encoding (a latent hires pass).
	initLatents []float32
}

// RandomSeed as Request.Seed asks for a random seed: Prepare draws it and
// the plan's request records the seed drawn.
const RandomSeed = -1

// Blank is the request every front end decodes onto, so that an absent
// field means the same everywhere. It differs from the zero value only in
// the seed: absent means random, as AUTOMATIC1111 users expect.
func Blank() Request { return Request{Seed: RandomSeed} }

// Limits bound what a request may ask for; servers set them, the CLI uses
// the defaults.
type Limits struct {
	MaxSteps, MaxWidth, MaxHeight, MaxBatchSize, MaxBatchCount, MaxPromptChars int
	// MaxLoRAs bounds the LoRAs of a request (loras and <lora:…> tags
	// together), MaxPromptChunks the 75-token chunks BREAK starts in a
	// prompt; 0 takes DefaultMaxLoRAs / DefaultMaxPromptChunks (each costs
	// a merge or a text-encoder pass and conditioning memory).
	MaxLoRAs, MaxPromptChunks int
	// LoRAPaths lets LoRASpec.Path name any file. The CLI allows it; a
	// server turns it off, so that clients choose LoRAs by name from its
	// LoRA folder only.
	LoRAPaths bool
}

// Defaults of Limits.MaxLoRAs and MaxPromptChunks: more than any
// AUTOMATIC1111 workflow uses (A1111 itself has no bound).
const (
	DefaultMaxLoRAs        = 16
	DefaultMaxPromptChunks = 32
)

// DefaultLimits are generous enough for SD1.5/2.1 at their native sizes.
var DefaultLimits = Limits{MaxSteps: 150, MaxWidth: 2048, MaxHeight: 2048, MaxBatchSize: 16, MaxBatchCount: 100, MaxPromptChars: 10000, LoRAPaths: true}

// Defaults fills unset fields. sampleSize is the model's native image size
// in pixels (e.g. 512 for SD1.5, 64 for the embedded model).
func (r *Request) Defaults(sampleSize int) {
	r.applyOutpaint()
	if r.Width == 0 {
		r.Width = sampleSize
	}
	if r.Height == 0 {
		r.Height = sampleSize
	}
	if r.Steps == 0 {
		r.Steps = 20
	}
	if r.GuidanceScale == 0 {
		r.GuidanceScale = 7.5
	}
	if r.Sampler == "" {
		r.Sampler = "DDIM"
	}
	if r.BatchSize == 0 {
		r.BatchSize = 1
	}
	if r.BatchCount == 0 {
		r.BatchCount = 1
	}
	if r.Noise == "" {
		r.Noise = "philox"
	}
	if r.InitImage != nil && r.Strength == 0 {
		r.Strength = 0.75
	}
	if r.Mask != nil && r.MaskBlur == nil {
		r.MaskBlur = Blur(DefaultMaskBlur)
	}
	if r.Hires != nil {
		h := *r.Hires
		h.defaults()
		r.Hires = &h
	}
}

// DefaultMaskBlur is the mask blur of a request that sets none
// (AUTOMATIC1111's).
const DefaultMaskBlur = 4

// Blur is a Request.MaskBlur of px pixels (0: an unblurred mask).
func Blur(px int) *int { return &px }

// maskBlur is the request's mask blur in pixels, 0 when unset.
func (r *Request) maskBlur() int {
	if r.MaskBlur == nil {
		return 0
	}
	return *r.MaskBlur
}

// FieldError names the request field that is wrong, so every front end can
// report it the same way (the server answers 400 with the field).
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Check validates everything that does not depend on a model: a request
// that fails it fails on every model, so front ends call it before loading
// one. A zero width or height stands for the model's size. It returns a
// *FieldError.
func (r *Request) Check(l Limits) error {
	_, err := r.check(l)
	return err
}

// checked is what checking a request parsed on the way: the sampler and
// the prompt's LoRA tags, kept so that nothing parses them again.
type checked struct {
	choice scheduler.Choice
	tags   []LoRASpec
}

// check is Check, also returning what it parsed.
func (r *Request) check(l Limits) (checked, error) {
	var none checked
	bad := func(field, format string, a ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"guidance_scale", r.GuidanceScale}, {"eta", r.Eta}, {"strength", r.Strength}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return none, bad(f.name, "%g is not a number: give a finite value", f.v)
		}
	}
	images := int64(r.BatchSize) * int64(r.BatchCount)
	switch {
	case strings.TrimSpace(r.Prompt) == "" && r.InitImage == nil:
		return none, bad("prompt", "is empty: say what to draw")
	case l.MaxPromptChars > 0 && len(r.Prompt) > l.MaxPromptChars:
		return none, bad("prompt", "is %d characters, the limit is %d", len(r.Prompt), l.MaxPromptChars)
	case l.MaxPromptChars > 0 && len(r.NegativePrompt) > l.MaxPromptChars:
		return none, bad("negative_prompt", "is %d characters, the limit is %d", len(r.NegativePrompt), l.MaxPromptChars)
	case r.Width < 0: // 0: the model's size, which Defaults fills
		return none, bad("width", "%d must be positive", r.Width)
	case r.Height < 0:
		return none, bad("height", "%d must be positive", r.Height)
	case l.MaxWidth > 0 && r.Width > l.MaxWidth:
		return none, bad("width", "%d exceeds the limit %d", r.Width, l.MaxWidth)
	case l.MaxHeight > 0 && r.Height > l.MaxHeight:
		return none, bad("height", "%d exceeds the limit %d", r.Height, l.MaxHeight)
	case r.Steps < 1:
		return none, bad("steps", "%d must be at least 1", r.Steps)
	case l.MaxSteps > 0 && r.Steps > l.MaxSteps:
		return none, bad("steps", "%d exceeds the limit %d", r.Steps, l.MaxSteps)
	case r.GuidanceScale < 0 || r.GuidanceScale > 100:
		return none, bad("guidance_scale", "%g must be between 0 and 100", r.GuidanceScale)
	case r.Seed < -1:
		return none, bad("seed", "%d must be -1 (random) or a non-negative number", r.Seed)
	case r.BatchSize < 1 || (l.MaxBatchSize > 0 && r.BatchSize > l.MaxBatchSize):
		return none, bad("batch_size", "%d must be between 1 and %d", r.BatchSize, l.MaxBatchSize)
	case r.BatchCount < 1 || (l.MaxBatchCount > 0 && r.BatchCount > l.MaxBatchCount):
		return none, bad("batch_count", "%d must be between 1 and %d", r.BatchCount, l.MaxBatchCount)
	case r.Seed > math.MaxInt64-(images-1):
		// Image i gets seed+i: the last one must still be a valid seed.
		return none, bad("seed", "%d is too large for %d images (image i gets seed+i): use at most %d", r.Seed, images, int64(math.MaxInt64)-(images-1))
	case r.ClipSkip < 0 || r.ClipSkip > 12:
		return none, bad("clip_skip", "%d must be between 0 and 12", r.ClipSkip)
	case r.Eta < 0 || r.Eta > 1:
		return none, bad("eta", "%g must be between 0 and 1", r.Eta)
	case r.Noise != "philox" && r.Noise != "torch":
		return none, bad("noise", "%q is not a generator: use \"philox\" or \"torch\"", r.Noise)
	case r.InitImage != nil && (r.Strength <= 0 || r.Strength > 1):
		return none, bad("strength", "%g must be in (0, 1]", r.Strength)
	case r.InitImage == nil && r.Strength != 0:
		return none, bad("strength", "is only meaningful with an init image")
	case r.Mask != nil && r.InitImage == nil:
		return none, bad("mask", "needs an init image to inpaint")
	case r.MaskBlur != nil && (*r.MaskBlur < 0 || *r.MaskBlur > 64):
		return none, bad("mask_blur", "%d must be between 0 and 64 (0: no blur)", *r.MaskBlur)
	}
	choice, err := scheduler.ParseSamplerSchedule(r.Sampler, r.Schedule)
	if err != nil {
		field := "schedule"
		if _, e := scheduler.ParseSampler(r.Sampler); e != nil {
			field, err = "sampler", e
		}
		return none, bad(field, "%s", strings.TrimPrefix(err.Error(), "scheduler: "))
	}
	if err := validateLoRAs(r.LoRAs, l); err != nil {
		return none, err
	}
	_, tags, tagErr := ParseLoRATags(r.Prompt) // the only parse of the tags (Plan keeps them)
	if err := checkCounts(r, tags, l); err != nil {
		return none, err
	}
	if err := validateControlNets(r.ControlNets, l); err != nil {
		return none, err
	}
	if err := r.checkInpaint(); err != nil {
		return none, err
	}
	if err := r.checkHires(l); err != nil {
		return none, err
	}
	if r.Outpaint != nil {
		if err := r.Outpaint.check(r); err != nil {
			return none, err
		}
	}
	if tagErr != nil {
		return none, tagErr
	}
	if r.Mask != nil && r.Mask.Bounds().Size() != r.InitImage.Bounds().Size() {
		return none, bad("mask", "is %v but the init image is %v: they must have the same size", r.Mask.Bounds().Size(), r.InitImage.Bounds().Size())
	}
	return checked{choice: choice, tags: tags}, nil
}

// checkCounts bounds the LoRAs (the field's and the prompt's tags) and the
// BREAK chunks of a request.
func checkCounts(r *Request, tags []LoRASpec, l Limits) error {
	maxLoRAs, maxChunks := l.MaxLoRAs, l.MaxPromptChunks
	if maxLoRAs <= 0 {
		maxLoRAs = DefaultMaxLoRAs
	}
	if maxChunks <= 0 {
		maxChunks = DefaultMaxPromptChunks
	}
	if n := len(r.LoRAs) + len(tags); n > maxLoRAs {
		return &FieldError{Field: "loras", Msg: fmt.Sprintf("%d LoRAs (loras and <lora:…> tags): the limit is %d", n, maxLoRAs)}
	}
	for _, f := range []struct{ name, text string }{{"prompt", r.Prompt}, {"negative_prompt", r.NegativePrompt}} {
		n := 1
		for _, fr := range ParseAttention(f.text) {
			if fr.Weight == -1 && fr.Text == breakText {
				n++
			}
		}
		if n > maxChunks {
			return &FieldError{Field: f.name, Msg: fmt.Sprintf("BREAK makes %d chunks: the limit is %d", n, maxChunks)}
		}
	}
	return nil
}

// Validate checks r against the limits (Check) and against a model whose
// VAE downsamples by factor: width and height must be multiples of it.
func (r *Request) Validate(l Limits, factor int) error {
	_, err := r.validate(l, factor)
	return err
}

// validate is Validate, also returning what it parsed.
func (r *Request) validate(l Limits, factor int) (checked, error) {
	choice, err := r.check(l)
	if err != nil {
		return choice, err
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"width", r.Width}, {"height", r.Height}} {
		if f.v%factor != 0 {
			near := fmt.Sprint(factor)
			if lo := f.v / factor * factor; lo > 0 {
				near = fmt.Sprintf("%d or %d", lo, lo+factor)
			}
			return choice, &FieldError{Field: f.name, Msg: fmt.Sprintf("%d is not a multiple of %d, the model's VAE factor: use %s", f.v, factor, near)}
		}
	}
	return choice, nil
}

// Check reports a limit that would not bound anything (Validate skips a
// limit ≤ 0): a server's limits are each at least 1. The *FieldError names
// the limit ("max_steps").
func (l Limits) Check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"max_steps", l.MaxSteps}, {"max_width", l.MaxWidth}, {"max_height", l.MaxHeight},
		{"max_batch_size", l.MaxBatchSize}, {"max_batch_count", l.MaxBatchCount}, {"max_prompt_chars", l.MaxPromptChars}} {
		if f.v < 1 {
			return &FieldError{Field: f.name, Msg: fmt.Sprintf("%d: a limit must be at least 1", f.v)}
		}
	}
	return nil
}

// IsFieldError reports whether err is a validation error, and which field.
func IsFieldError(err error) (string, bool) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, true
	}
	return "", false
}
