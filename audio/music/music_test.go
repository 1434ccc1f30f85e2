package music

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/ldm"
)

// tiny loads the golden tiny SD1.5 diffusers folder: SD1.5's layout and key
// names (riffusion-model-v1's) with small random weights, or skips.
func tiny(t *testing.T) (*ldm.Pipeline, string) {
	t.Helper()
	for _, c := range golden.Load(t).Cases {
		if c.Kind == "single_file" {
			p, err := ldm.Load(c.Path("reference"), ldm.LoadOptions{Backend: "go"})
			if err != nil {
				t.Fatal(err)
			}
			return p, c.Path("reference")
		}
	}
	t.Skip("golden manifest has no single_file case (the tiny model)")
	return nil, ""
}

func TestRiffusionLayoutModelWritesAudioOfTheAskedLength(t *testing.T) {
	p, dir := tiny(t)
	params, err := ModelParams(dir) // no spectrogram.json: Riffusion's
	if err != nil || params != audio.Riffusion() {
		t.Fatalf("params %+v, %v: want Riffusion's", params, err)
	}
	params.GriffinLimIters = 2 // cheap; the count does not change lengths
	ctx := context.Background()
	one, err := Generate(ctx, p, params, Request{Prompt: "jazz", Steps: 1, Seed: 1, Width: 32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Spectrograms) != 1 || one.Spectrograms[0].Bounds().Dy() != 512 || one.Spectrograms[0].Bounds().Dx() != 32 {
		t.Fatalf("spectrograms %d of %v, want one 32×512", len(one.Spectrograms), one.Spectrograms[0].Bounds())
	}
	if len(one.Audio) != params.Samples(32) || one.Rate != 44100 {
		t.Fatalf("%d samples at %d Hz, want %d at 44100", len(one.Audio), one.Rate, params.Samples(32))
	}
	if pk := audio.PeakDBFS(one.Audio); pk > -0.1+1e-9 {
		t.Errorf("peak %.2f dBFS above the −0.1 dB headroom", pk)
	}
	// 0.8 s from 0.31 s clips overlapping by 0.05 s: ⌈(0.8−0.05)/0.26⌉ = 3 clips.
	long, err := Generate(ctx, p, params, Request{Prompt: "jazz", Steps: 1, Seed: 1, Width: 32, Duration: 0.8, Crossfade: 0.05}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(long.Audio) != 35280 || len(long.Spectrograms) != 3 {
		t.Errorf("0.8 s gave %d samples from %d clips, want 35280 from 3", len(long.Audio), len(long.Spectrograms))
	}
	var clips []int
	loop, err := Generate(ctx, p, params, Request{Prompt: "jazz", To: "rock", Loop: true, Clips: 4, Steps: 1, Seed: 1, Width: 32, Crossfade: 0.05},
		func(pr Progress) {
			if pr.Spectrogram != nil {
				clips = append(clips, pr.Clip)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	clip, fade := params.Samples(32), 2205
	if want := 4*clip - 4*fade; len(loop.Audio) != want || len(clips) != 4 {
		t.Errorf("loop of 4 clips: %d samples, %d clips reported, want %d and 4", len(loop.Audio), len(clips), want)
	}
	// Audio-to-audio keeps the input's length.
	in := make([]float64, 20000)
	for i := range in {
		in[i] = float64(i%100)/100 - 0.5
	}
	a2a, err := Generate(ctx, p, params, Request{Prompt: "jazz", Steps: 2, Seed: 1, Width: 32, InitAudio: in, Strength: 0.5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a2a.Audio) != len(in) {
		t.Errorf("audio-to-audio gave %d samples for %d", len(a2a.Audio), len(in))
	}
}

func TestBadRequestsNameTheirField(t *testing.T) {
	params := audio.Riffusion()
	cases := []struct {
		req   Request
		field string
	}{
		{Request{Prompt: "x", Loop: true}, "loop"},
		{Request{Prompt: "x", Duration: -1}, "duration"},
		{Request{Prompt: "x", To: "y", Clips: 1}, "clips"},
		{Request{Prompt: "x", To: "y", InitAudio: []float64{0}}, "to"},
	}
	for _, c := range cases {
		_, err := makePlan(c.req, params, params.Samples(512))
		if f, ok := ldm.IsFieldError(err); !ok || f != c.field {
			t.Errorf("%+v: error %v, want a %q field error", c.req, err, c.field)
		}
	}
}

func TestModelParamsReadsTheModelsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ParamsFile), []byte(`{"num_frequencies": 128, "max_frequency": 6000, "step_size_ms": 40}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := ModelParams(dir)
	if err != nil || p.NumFrequencies != 128 || p.MaxFrequency != 6000 || p.StepSizeMS != 40 || p.SampleRate != 44100 {
		t.Fatalf("got %+v, %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, ParamsFile), []byte(`{"num_frequencies": 1}`), 0o644)
	if _, err := ModelParams(dir); err == nil {
		t.Fatal("1 mel bin accepted")
	}
}
