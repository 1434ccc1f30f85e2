package app

import "github.com/ldm-project/ldm/ldm"

// a1111HiresFields are AUTOMATIC1111's hires fix fields of txt2img; they
// become ldm.Request.Hires (ldm.HiresFix has the same names and meanings).
type a1111HiresFields struct {
	EnableHR          flexBool  `json:"enable_hr"`
	HRScale           flexFloat `json:"hr_scale"`
	HRResizeX         flexInt   `json:"hr_resize_x"`
	HRResizeY         flexInt   `json:"hr_resize_y"`
	HRUpscaler        string    `json:"hr_upscaler"`
	HRSecondPassSteps flexInt   `json:"hr_second_pass_steps"`
	HRSamplerName     string    `json:"hr_sampler_name"`
	HRScheduler       string    `json:"hr_scheduler"`
	HRPrompt          string    `json:"hr_prompt"`
	HRNegativePrompt  string    `json:"hr_negative_prompt"`
}

// hires is the request's hires fix (nil unless enable_hr); strength is the
// request's denoising_strength, the second pass's in txt2img.
func (h *a1111HiresFields) hires(strength flexFloat) *ldm.HiresFix {
	if !h.EnableHR.V {
		return nil
	}
	return &ldm.HiresFix{Scale: h.HRScale.V, ResizeX: h.HRResizeX.Int(0), ResizeY: h.HRResizeY.Int(0),
		Upscaler: h.HRUpscaler, Steps: h.HRSecondPassSteps.Int(0), Strength: strength.V,
		Sampler: h.HRSamplerName, Schedule: h.HRScheduler, Prompt: h.HRPrompt, NegativePrompt: h.HRNegativePrompt}
}
