package ldm

import (
	"image"
	"math"
	"strings"
	"testing"
)

// TestValidateRefusesWhatCannotRun: every float is finite, the seeds of all
// images fit, and size messages name the model's real factor.
func TestValidateRefusesWhatCannotRun(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for _, tc := range []struct {
		name   string
		mod    func(r *Request)
		factor int
		field  string
		msg    string
	}{
		{"guidance NaN", func(r *Request) { r.GuidanceScale = math.NaN() }, 8, "guidance_scale", "NaN is not a number"},
		{"guidance +Inf", func(r *Request) { r.GuidanceScale = math.Inf(1) }, 8, "guidance_scale", "+Inf is not a number"},
		{"eta NaN", func(r *Request) { r.Eta = math.NaN() }, 8, "eta", "NaN is not a number"},
		{"eta -Inf", func(r *Request) { r.Eta = math.Inf(-1) }, 8, "eta", "-Inf is not a number"},
		{"strength NaN", func(r *Request) { r.InitImage, r.Strength = img, math.NaN() }, 8, "strength", "NaN is not a number"},
		{"seed wraps", func(r *Request) { r.Seed, r.BatchSize = math.MaxInt64, 2 }, 8, "seed", "too large for 2 images"},
		{"seed wraps over batches", func(r *Request) { r.Seed, r.BatchSize, r.BatchCount = math.MaxInt64-4, 2, 3 }, 8, "seed", "use at most 9223372036854775802"},
		{"negative width", func(r *Request) { r.Width = -8 }, 8, "width", "-8 must be positive"},
		{"width off factor 4", func(r *Request) { r.Width = 70 }, 4, "width", "70 is not a multiple of 4, the model's VAE factor: use 68 or 72"},
		{"height below factor", func(r *Request) { r.Height = 3 }, 8, "height", "3 is not a multiple of 8, the model's VAE factor: use 8"},
		{"last seed fits", func(r *Request) { r.Seed, r.BatchSize, r.BatchCount = math.MaxInt64-5, 2, 3 }, 8, "", ""},
		{"72 with factor 4", func(r *Request) { r.Width, r.Height = 72, 72 }, 4, "", ""},
	} {
		r := Request{Prompt: "x"}
		r.Defaults(64)
		tc.mod(&r)
		err := r.Validate(DefaultLimits, tc.factor)
		field, _ := IsFieldError(err)
		if field != tc.field || (err == nil) != (tc.field == "") || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s: got %v, want %s: …%s…", tc.name, err, tc.field, tc.msg)
		}
	}
}

// TestLimitsCheckRefusesALimitThatBoundsNothing: 0 or a negative limit would
// silently turn the bound off.
func TestLimitsCheckRefusesALimitThatBoundsNothing(t *testing.T) {
	if err := DefaultLimits.Check(); err != nil {
		t.Fatalf("DefaultLimits: %v", err)
	}
	for _, tc := range []struct {
		mod   func(l *Limits)
		field string
	}{
		{func(l *Limits) { l.MaxSteps = -1 }, "max_steps"},
		{func(l *Limits) { l.MaxWidth = 0 }, "max_width"},
		{func(l *Limits) { l.MaxHeight = -5 }, "max_height"},
		{func(l *Limits) { l.MaxBatchSize = 0 }, "max_batch_size"},
		{func(l *Limits) { l.MaxBatchCount = 0 }, "max_batch_count"},
		{func(l *Limits) { l.MaxPromptChars = -1 }, "max_prompt_chars"},
	} {
		l := DefaultLimits
		tc.mod(&l)
		if field, ok := IsFieldError(l.Check()); !ok || field != tc.field {
			t.Errorf("%+v: got field %q, want %q", l, field, tc.field)
		}
	}
}

func TestPreferredBatchJobsIsOffOnThePureGoBackend(t *testing.T) {
	if n := loadTiny(t).PreferredBatchJobs(); n != 1 {
		t.Errorf("pure-Go backend: %d, want 1", n)
	}
}
