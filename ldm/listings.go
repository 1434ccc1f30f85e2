package ldm

import (
	"github.com/ldm-project/ldm/controlnet"
	"github.com/ldm-project/ldm/scheduler"
)

// The names a request may use, for the front ends' listings: they see the
// model packages only through ldm.
type (
	SamplerInfo  = scheduler.SamplerInfo
	ScheduleInfo = scheduler.ScheduleInfo
	// Preprocessor turns an image into a ControlNet control map.
	Preprocessor = controlnet.Preprocessor
	// PreprocessorParam is one of a preprocessor's two tunable values.
	PreprocessorParam = controlnet.Param
)

// Samplers lists the samplers Request.Sampler accepts.
func Samplers() []SamplerInfo { return scheduler.Samplers() }

// Schedules lists the schedules Request.Schedule accepts.
func Schedules() []ScheduleInfo { return scheduler.Schedules() }

// Preprocessors lists the ControlNet preprocessors ControlNetUnit.Module accepts.
func Preprocessors() []Preprocessor { return controlnet.Preprocessors }

// FindPreprocessor finds a preprocessor by name.
func FindPreprocessor(name string) (Preprocessor, error) { return controlnet.FindPreprocessor(name) }

// AcceptsSampler reports whether Request.Sampler and Request.Schedule may
// name sampler and schedule together.
func AcceptsSampler(sampler, schedule string) bool {
	_, err := scheduler.ParseSamplerSchedule(sampler, schedule)
	return err == nil
}
