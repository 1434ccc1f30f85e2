package app

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/ldm-project/ldm/audio"
)

func TestAudioRouteAnswersWAVAndSpectrograms(t *testing.T) {
	_, ts := testServer(t, tinyModel(t), Config{})
	body := map[string]any{"prompt": "ambient pad", "steps": 1, "seed": 4, "width": 32, "griffin_lim_iters": 2}
	r := call(t, "POST", ts.URL+"/api/v1/audio", body)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	v := r.json(t)
	wav, err := base64.StdEncoding.DecodeString(v["audio"].(string))
	if err != nil {
		t.Fatal(err)
	}
	clip, err := audio.ReadWAV(bytes.NewReader(wav))
	if err != nil {
		t.Fatal(err)
	}
	if clip.Rate != 44100 || len(clip.Channels[0]) != audio.Riffusion().Samples(32) || v["seed"].(float64) != 4 {
		t.Errorf("WAV %d Hz, %d samples, seed %v", clip.Rate, len(clip.Channels[0]), v["seed"])
	}
	if specs := v["spectrograms"].([]any); len(specs) != 1 {
		t.Errorf("%d spectrograms, want 1", len(specs))
	}
	raw := call(t, "POST", ts.URL+"/api/v1/audio", body, "Accept", "audio/wav")
	if raw.Status != http.StatusOK || raw.Header.Get("Content-Type") != "audio/wav" || !bytes.Equal(raw.Body, wav) {
		t.Errorf("Accept: audio/wav gave %d %q, %d bytes (want the same WAV)", raw.Status, raw.Header.Get("Content-Type"), len(raw.Body))
	}
}

func TestAudioRouteNamesBadFields(t *testing.T) {
	_, ts := testServer(t, fake(), Config{})
	cases := []struct {
		body  map[string]any
		field string
		code  int
	}{
		{map[string]any{"prompt": ""}, "prompt", 400},
		{map[string]any{"prompt": "x", "format": "mp3"}, "format", 400},
		{map[string]any{"prompt": "x", "duration": 1000}, "duration", 400},
		{map[string]any{"prompt": "x"}, "", 501}, // the fake model is no pipeline
	}
	for _, c := range cases {
		r := call(t, "POST", ts.URL+"/api/v1/audio", c.body)
		v := r.json(t)
		if r.Status != c.code || (c.field != "" && v["field"] != c.field) {
			t.Errorf("%v: %d %v, want %d field %q", c.body, r.Status, v, c.code, c.field)
		}
	}
}
