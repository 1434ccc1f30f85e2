// Package music draws music with a latent diffusion model the way Riffusion
// does: the model draws mel spectrogram images (any SD1.x pipeline;
// riffusion-model-v1 as it is, or the project's own small audio model), and
// package audio turns them into sound. Generate owns the clip plan:
// stitching for a duration, interpolation between two prompts (also as a
// seamless loop) and audio-to-audio through img2img on the spectrogram.
package music

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/rng"
)

// ParamsFile is the file in a model folder (or next to a single-file
// checkpoint, as <name>.spectrogram.json) that holds its spectrogram
// Params; a model without one uses Riffusion's.
const ParamsFile = "spectrogram.json"

// ModelParams returns the spectrogram parameters stored with a model, or
// audio.Riffusion() when there are none.
func ModelParams(model string) (audio.Params, error) {
	cand := []string{filepath.Join(model, ParamsFile)}
	if st, err := os.Stat(model); err == nil && !st.IsDir() {
		ext := filepath.Ext(model)
		cand = []string{model[:len(model)-len(ext)] + "." + ParamsFile, filepath.Join(filepath.Dir(model), ParamsFile)}
	}
	for _, c := range cand {
		b, err := os.ReadFile(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return audio.Params{}, err
		}
		p := audio.Riffusion()
		if err := json.Unmarshal(b, &p); err != nil {
			return audio.Params{}, fmt.Errorf("%s: %w", c, err)
		}
		if err := p.Validate(); err != nil {
			return audio.Params{}, fmt.Errorf("%s: %w", c, err)
		}
		return p, nil
	}
	return audio.Riffusion(), nil
}

// Request is one piece of music. The image fields (Steps, GuidanceScale,
// Sampler, Seed, NegativePrompt, Strength) mean what they mean in
// ldm.Request, whose defaults apply.
type Request struct {
	Prompt         string  `json:"prompt"`
	NegativePrompt string  `json:"negative_prompt,omitempty"`
	Seed           int64   `json:"seed"`
	Steps          int     `json:"steps,omitempty"`
	GuidanceScale  float64 `json:"guidance_scale,omitempty"`
	Sampler        string  `json:"sampler,omitempty"`
	// Duration in seconds: clips are drawn with seeds Seed, Seed+1, … and
	// joined with Crossfade seconds of overlap (0: one clip).
	Duration  float64 `json:"duration,omitempty"`
	Crossfade float64 `json:"crossfade,omitempty"` // default 0.25 s
	// Width is the spectrogram width of one clip in columns (0: the
	// model's sample size; a multiple of the VAE factor).
	Width int `json:"width,omitempty"`

	// To, when set, interpolates from Prompt (seed Seed) to To (seed
	// ToSeed, default Seed+1) over Steps clips: clip k has α = k/(Clips−1).
	// Loop walks there and back (α = (1−cos 2πk/Clips)/2) and wraps the
	// last clip's tail into the first's head, so the result repeats
	// seamlessly.
	To     string `json:"to,omitempty"`
	ToSeed *int64 `json:"to_seed,omitempty"`
	Clips  int    `json:"clips,omitempty"` // default 5 when interpolating
	Loop   bool   `json:"loop,omitempty"`

	// InitAudio (mono, at the model's sample rate) is redrawn clip by clip
	// through img2img on its spectrogram with Strength (default 0.5).
	InitAudio []float64 `json:"-"`
	Strength  float64   `json:"strength,omitempty"`

	// GriffinLimIters overrides the Params' count (0: keep).
	GriffinLimIters int `json:"griffin_lim_iters,omitempty"`
}

// Progress is reported after every denoising step of every clip and once
// per clip when its spectrogram is done (Step == Total, Spectrogram set).
type Progress struct {
	Clip, Clips int
	ldm.Progress
	Spectrogram image.Image
}

// Result is the music and the spectrogram images it came from.
type Result struct {
	Audio        []float64
	Rate         int
	Spectrograms []*image.RGBA
	Params       audio.Params
	Seed         int64 // the seed actually used (a random one when −1 was asked)
}

type plan struct {
	alphas []float64 // nil: no interpolation
	clips  int
	fade   int // crossfade in samples
	total  int // output samples (0: whatever the clips give)
}

// Generate draws the music of req with pipeline p, whose images are mel
// spectrograms of params.
func Generate(ctx context.Context, p *ldm.Pipeline, params audio.Params, req Request, progress func(Progress)) (*Result, error) {
	if req.GriffinLimIters > 0 {
		params.GriffinLimIters = req.GriffinLimIters
	}
	conv, err := audio.NewConverter(params)
	if err != nil {
		return nil, err
	}
	if req.Seed == -1 {
		req.Seed = int64(rng.RandomSeed())
	}
	frames := req.Width
	if frames == 0 {
		frames = p.SampleSize()
	}
	if f := p.Factor(); frames%f != 0 || frames < f {
		return nil, &ldm.FieldError{Field: "width", Msg: fmt.Sprintf("%d spectrogram columns: give a multiple of %d", frames, f)}
	}
	if params.NumFrequencies%p.Factor() != 0 {
		return nil, fmt.Errorf("the spectrogram has %d mel bins, not a multiple of the model's factor %d", params.NumFrequencies, p.Factor())
	}
	clipLen := params.Samples(frames)
	pl, err := makePlan(req, params, clipLen)
	if err != nil {
		return nil, err
	}
	var initImgs []*image.RGBA
	if len(req.InitAudio) > 0 {
		hop := clipLen - pl.fade
		pl.clips = max(1, int(math.Ceil(float64(len(req.InitAudio)-pl.fade)/float64(hop))))
		pl.total = len(req.InitAudio)
		for k := range pl.clips {
			seg := audio.Fit(append([]float64(nil), req.InitAudio[min(len(req.InitAudio), k*hop):]...), clipLen)
			img, _ := conv.ImageFromAudio(seg)
			initImgs = append(initImgs, img)
		}
		if req.Strength == 0 {
			req.Strength = 0.5
		}
	}
	res := &Result{Rate: params.SampleRate, Params: params, Seed: req.Seed}
	var segs [][]float64
	toSeed := req.Seed + 1
	if req.ToSeed != nil {
		toSeed = *req.ToSeed
	}
	for k := range pl.clips {
		ir := ldm.Request{Prompt: req.Prompt, NegativePrompt: req.NegativePrompt, Seed: req.Seed + int64(k),
			Steps: req.Steps, GuidanceScale: req.GuidanceScale, Sampler: req.Sampler,
			Width: frames, Height: params.NumFrequencies}
		o := ldm.Options{}
		if pl.alphas != nil {
			ir.Seed = req.Seed
			o.Interpolate = &ldm.Interpolation{Prompt: req.To, Seed: toSeed, Alpha: pl.alphas[k]}
		}
		if initImgs != nil {
			ir.InitImage, ir.Strength = initImgs[k], req.Strength
		}
		if progress != nil {
			k := k
			o.Progress = func(pr ldm.Progress) { progress(Progress{Clip: k + 1, Clips: pl.clips, Progress: pr}) }
		}
		out, err := p.Generate(ctx, ir, o)
		if err != nil {
			return nil, err
		}
		img := out[0].Image
		res.Spectrograms = append(res.Spectrograms, img)
		if progress != nil {
			progress(Progress{Clip: k + 1, Clips: pl.clips, Spectrogram: img})
		}
		x, err := conv.AudioFromMel(ctx, audio.FromImage(img, params.PowerForImage, audio.DefaultMaxValue),
			audio.Recovery{Seed: uint64(req.Seed) + uint64(k), Length: clipLen})
		if err != nil {
			return nil, err
		}
		audio.Master(x, -12, 0.1)
		segs = append(segs, x)
	}
	y := audio.Crossfade(pl.fade, segs...)
	if req.Loop && len(y) > 2*pl.fade {
		// Wrap: the tail fades into the head, and the tail is dropped.
		head := audio.Crossfade(pl.fade, y[len(y)-pl.fade:], y)
		y = head[:len(y)-pl.fade]
	}
	if pl.total > 0 {
		y = audio.Fit(y, pl.total)
	}
	audio.Master(y, -12, 0.1)
	res.Audio = y
	return res, nil
}

func makePlan(req Request, params audio.Params, clipLen int) (plan, error) {
	cf := req.Crossfade
	if cf == 0 {
		cf = 0.25
	}
	if cf < 0 || math.IsNaN(cf) {
		return plan{}, &ldm.FieldError{Field: "crossfade", Msg: fmt.Sprintf("%g s: give a positive overlap", cf)}
	}
	pl := plan{fade: min(int(cf*float64(params.SampleRate)), clipLen/2), clips: 1}
	if req.Duration < 0 || req.Duration > 600 || math.IsNaN(req.Duration) {
		return pl, &ldm.FieldError{Field: "duration", Msg: fmt.Sprintf("%g s: give 0–600 seconds", req.Duration)}
	}
	if req.Loop && req.To == "" {
		return pl, &ldm.FieldError{Field: "loop", Msg: "a loop walks between two prompts: give the second prompt (to)"}
	}
	if req.To != "" {
		if len(req.InitAudio) > 0 {
			return pl, &ldm.FieldError{Field: "to", Msg: "interpolation and init audio do not combine: give one"}
		}
		pl.clips = req.Clips
		if pl.clips == 0 {
			pl.clips = 5
		}
		if pl.clips < 2 || pl.clips > 100 {
			return pl, &ldm.FieldError{Field: "clips", Msg: fmt.Sprintf("%d: an interpolation takes 2–100 clips", pl.clips)}
		}
		pl.alphas = make([]float64, pl.clips)
		for k := range pl.alphas {
			if req.Loop {
				pl.alphas[k] = (1 - math.Cos(2*math.Pi*float64(k)/float64(pl.clips))) / 2
			} else {
				pl.alphas[k] = float64(k) / float64(pl.clips-1)
			}
		}
		return pl, nil
	}
	if req.Duration > 0 {
		pl.total = int(math.Round(req.Duration * float64(params.SampleRate)))
		hop := clipLen - pl.fade
		pl.clips = max(1, int(math.Ceil(float64(pl.total-pl.fade)/float64(hop))))
	}
	return pl, nil
}
