// Package audio turns sound into spectrogram images and back, in
// Riffusion's conventions: STFT/ISTFT, mel filterbanks and their inverse,
// Griffin-Lim phase recovery, the spectrogram ⇄ image mapping with its
// parameters in EXIF tags, WAV files, loudness and crossfades. Params is the
// description every conversion takes; Converter holds the precomputed
// filterbank and FFT plans for one Params.
package audio

import (
	"errors"
	"fmt"
)

// Params describes the conversion from audio to a mel spectrogram image and
// back. Field names and meanings follow Riffusion's SpectrogramParams
// (riffusion/spectrogram_params.py); durations are whole milliseconds as
// there, so a Params survives a round trip through the EXIF tags.
type Params struct {
	SampleRate       int  `json:"sample_rate"`
	Stereo           bool `json:"stereo"`
	StepSizeMS       int  `json:"step_size_ms"`       // hop
	WindowDurationMS int  `json:"window_duration_ms"` // Hann window length
	PaddedDurationMS int  `json:"padded_duration_ms"` // n_fft
	NumFrequencies   int  `json:"num_frequencies"`    // mel bins = image height
	MinFrequency     int  `json:"min_frequency"`
	MaxFrequency     int  `json:"max_frequency"`
	// MelScale is "htk" (Riffusion) or "slaney"; MelNorm is "" (Riffusion)
	// or "slaney" (area normalisation).
	MelScale string `json:"mel_scale"`
	MelNorm  string `json:"mel_norm,omitempty"`
	// GriffinLimIters is the number of Griffin-Lim iterations (Riffusion: 32).
	GriffinLimIters int `json:"num_griffin_lim_iters"`
	// PowerForImage is the exponent applied to the normalised magnitudes
	// before they become pixels (Riffusion: 0.25).
	PowerForImage float64 `json:"power_for_image"`
}

// Riffusion returns the parameters riffusion-model-v1 was trained with
// (SpectrogramParams' defaults): 44.1 kHz mono, hop 10 ms (441 samples),
// Hann window 100 ms (4410), n_fft 400 ms (17640), 512 HTK mel bins from 0
// to 10 kHz with no norm, 32 Griffin-Lim iterations, power 0.25.
func Riffusion() Params {
	return Params{SampleRate: 44100, StepSizeMS: 10, WindowDurationMS: 100, PaddedDurationMS: 400,
		NumFrequencies: 512, MinFrequency: 0, MaxFrequency: 10000, MelScale: "htk",
		GriffinLimIters: 32, PowerForImage: 0.25}
}

// NFFT is the FFT length in samples: int(padded_duration_ms/1000·rate).
func (p Params) NFFT() int { return p.PaddedDurationMS * p.SampleRate / 1000 }

// WinLength is the Hann window length in samples.
func (p Params) WinLength() int { return p.WindowDurationMS * p.SampleRate / 1000 }

// HopLength is the step between frames in samples.
func (p Params) HopLength() int { return p.StepSizeMS * p.SampleRate / 1000 }

// Frames is the number of STFT frames (image columns) of n samples:
// centred frames, 1 + n/hop as torch.stft with center=True.
func (p Params) Frames(n int) int { return 1 + n/p.HopLength() }

// Samples is the length ISTFT gives to frames columns: hop·(frames−1).
func (p Params) Samples(frames int) int { return p.HopLength() * (frames - 1) }

// Validate says what is wrong with p, if anything.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.SampleRate < 1000 || p.SampleRate > 384000 {
		bad("sample rate %d Hz: give 1000–384000", p.SampleRate)
	}
	if p.Stereo {
		bad("stereo spectrograms are not supported: use mono")
	}
	if p.StepSizeMS <= 0 || p.WindowDurationMS <= 0 || p.PaddedDurationMS <= 0 {
		bad("step, window and padded durations must be positive (got %d, %d, %d ms)", p.StepSizeMS, p.WindowDurationMS, p.PaddedDurationMS)
	} else {
		if p.WindowDurationMS > p.PaddedDurationMS {
			bad("window %d ms is longer than the padded FFT length %d ms", p.WindowDurationMS, p.PaddedDurationMS)
		}
		if p.NFFT() < 16 || p.NFFT() > 1<<18 {
			bad("n_fft %d samples: give 16–262144", p.NFFT())
		}
		if p.HopLength() < 1 {
			bad("hop of %d ms is under one sample", p.StepSizeMS)
		}
	}
	if p.NumFrequencies < 2 || p.NumFrequencies > 4096 {
		bad("%d mel bins: give 2–4096", p.NumFrequencies)
	}
	if p.MinFrequency < 0 || p.MaxFrequency <= p.MinFrequency || 2*p.MaxFrequency > p.SampleRate {
		bad("mel range %d–%d Hz: need 0 ≤ min < max ≤ rate/2 (%d)", p.MinFrequency, p.MaxFrequency, p.SampleRate/2)
	}
	if p.MelScale != "htk" && p.MelScale != "slaney" {
		bad("mel scale %q: give htk or slaney", p.MelScale)
	}
	if p.MelNorm != "" && p.MelNorm != "slaney" {
		bad("mel norm %q: give none or slaney", p.MelNorm)
	}
	if p.GriffinLimIters < 0 || p.GriffinLimIters > 10000 {
		bad("%d Griffin-Lim iterations: give 0–10000", p.GriffinLimIters)
	}
	if !(p.PowerForImage > 0 && p.PowerForImage <= 10) {
		bad("power for image %g: give a value in (0, 10]", p.PowerForImage)
	}
	return errors.Join(errs...)
}
