package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/ldm"
)

// hiresFlags are AUTOMATIC1111's hires fix fields as flags of the same
// names (--enable-hr, --hr-scale, …); --strength (alias
// --denoising-strength) is the second pass's denoising strength.
type hiresFlags struct {
	enable bool
	h      ldm.HiresFix
}

func (c *hiresFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&c.enable, "enable-hr", false, "hires fix (AUTOMATIC1111's): generate at --width/--height, upscale, then denoise again at the larger size with the same seed (--strength, default 0.7)")
	f.Float64Var(&c.h.Scale, "hr-scale", 0, "hires fix: upscale factor (default 2, unless --hr-resize-x/-y)")
	f.IntVar(&c.h.ResizeX, "hr-resize-x", 0, "hires fix: target width (alone: keeps the aspect ratio; with --hr-resize-y: crops to that size)")
	f.IntVar(&c.h.ResizeY, "hr-resize-y", 0, "hires fix: target height")
	f.StringVar(&c.h.Upscaler, "hr-upscaler", "", "hires fix upscaler: "+strings.Join(ldm.HiresUpscalers(), ", ")+" (default Latent)")
	f.IntVar(&c.h.Steps, "hr-second-pass-steps", 0, "hires fix: steps of the second pass (default: --steps)")
	f.StringVar(&c.h.Sampler, "hr-sampler-name", "", "hires fix: sampler of the second pass (default: --sampler)")
	f.StringVar(&c.h.Schedule, "hr-scheduler", "", "hires fix: schedule of the second pass (default: --schedule)")
	f.StringVar(&c.h.Prompt, "hr-prompt", "", "hires fix: prompt of the second pass (default: the prompt)")
	f.StringVar(&c.h.NegativePrompt, "hr-negative-prompt", "", "hires fix: negative prompt of the second pass (default: --negative)")
}

// apply sets req.Hires when --enable-hr is given; the request's strength
// becomes the second pass's (A1111's one denoising_strength field).
func (c *hiresFlags) apply(req *ldm.Request) {
	if !c.enable {
		return
	}
	h := c.h
	if req.InitImage == nil {
		h.Strength, req.Strength = req.Strength, 0
	}
	req.Hires = &h
}

func init() {
	for _, n := range []string{"hr_scale", "hr_resize_x", "hr_upscaler", "hr_second_pass_steps", "hr_sampler_name", "hr_prompt"} {
		flagOfField[n] = "--" + strings.ReplaceAll(n, "_", "-")
	}
	flagOfField["denoising_strength"] = "--strength"
	flagOfField["enable_hr"] = "--enable-hr"
	flagOfField["hires"] = "--enable-hr"
}
