package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/audio"
)

func TestAudioClipsAreDeterministicAndCaptionedByWhatWasSynthesised(t *testing.T) {
	o := AudioOptions{N: 20, Seed: 3, Holdout: 0.2}
	p := AudioParams()
	for i := range 12 {
		x, s, err := AudioClip(o, i)
		if err != nil {
			t.Fatal(err)
		}
		if len(x) != p.Samples(128) {
			t.Fatalf("clip %d has %d samples, want %d (128 columns)", i, len(x), p.Samples(128))
		}
		y, _, _ := AudioClip(o, i)
		for k := range x {
			if x[k] != y[k] {
				t.Fatalf("clip %d differs between two calls at sample %d", i, k)
			}
		}
		back := ParseAudioCaption(s.Caption)
		if back.Kind != s.Kind || back.Tempo != s.Tempo || back.BPM != s.BPM || back.Instrument != s.Instrument ||
			back.Tonic != s.Tonic || back.Mode != s.Mode || back.Drums != s.Drums {
			t.Errorf("caption %q parses to %+v, synthesised %+v", s.Caption, back, s)
		}
		if rms := audio.RMSDBFS(x); rms < -20 || rms > -12 {
			t.Errorf("clip %d (%s) at %.1f dBFS RMS, want about −16", i, s.Caption, rms)
		}
	}
	if got := ParseAudioCaption("a slow piano melody in C major"); got.Instrument != "piano" || got.Tonic != "C" || got.Mode != "major" || got.Tempo != "slow" {
		t.Errorf("the README prompt parses to %+v", got)
	}
}

func TestGenerateAudioWritesTaggedImagesAndMetadata(t *testing.T) {
	out := t.TempDir()
	if err := GenerateAudio(context.Background(), out, AudioOptions{N: 3, Seed: 1, Holdout: 0.5}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "metadata.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d metadata lines", len(lines))
	}
	for _, l := range lines {
		var r AudioRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		png, err := os.ReadFile(filepath.Join(out, r.FileName))
		if err != nil {
			t.Fatal(err)
		}
		img, info, err := audio.DecodePNG(png, audio.Riffusion())
		if err != nil || !info.Tagged || info.Params != AudioParams() || img.Bounds().Dx() != 128 || img.Bounds().Dy() != 128 {
			t.Errorf("%s: %v tagged %v params %+v size %v", r.FileName, err, info.Tagged, info.Params, img.Bounds())
		}
		_, err = os.Stat(filepath.Join(out, "wav", strings.TrimSuffix(filepath.Base(r.FileName), ".png")+".wav"))
		if (r.Split == "test") != (err == nil) {
			t.Errorf("%s (split %s): WAV present = %v", r.FileName, r.Split, err == nil)
		}
	}
	if _, err := os.Stat(filepath.Join(out, AudioParamsFile)); err != nil {
		t.Error(err)
	}
}
