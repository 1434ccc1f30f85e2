package models

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestAudioModelCarriesItsSpectrogramParameters(t *testing.T) {
	b, err := fs.ReadFile(Audio(), "spectrogram.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		SampleRate     int `json:"sample_rate"`
		NumFrequencies int `json:"num_frequencies"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.SampleRate != 44100 || p.NumFrequencies != 128 {
		t.Fatalf("spectrogram.json: %+v, %v", p, err)
	}
	for _, f := range []string{"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer/vocab.json", "MODEL_CARD.md"} {
		if _, err := fs.Stat(Audio(), f); err != nil {
			t.Errorf("the embedded audio model lacks %s", f)
		}
	}
	t.Setenv("LDM_CACHE", t.TempDir())
	dir, err := AudioPath()
	if err != nil {
		t.Fatal(err)
	}
	// A damaged copy is replaced.
	if err := os.WriteFile(filepath.Join(dir, "spectrogram.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := AudioPath()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(again, "spectrogram.json")); string(got) != string(b) {
		t.Errorf("the damaged cached copy was not replaced")
	}
}
