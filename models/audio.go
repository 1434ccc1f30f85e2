package models

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/ldm-project/ldm/internal/fsutil"
)

// The project's small audio model (see audio/MODEL_CARD.md): a VAE, CLIP
// text encoder and U-Net trained on the synthesised music set of
// `ldm data audio`, drawing 128×128 mel spectrograms whose parameters are
// in audio/spectrogram.json.
//
//go:embed all:audio
var audioFiles embed.FS

// AudioName is the audio model's name, shown in metadata.
const AudioName = "ldm-music-small"

// Audio returns the embedded audio model's diffusers folder.
func Audio() fs.FS {
	sub, err := fs.Sub(audioFiles, "audio")
	if err != nil {
		panic(err) // unreachable: "audio" is embedded at build time
	}
	return sub
}

var audioHash = sync.OnceValues(func() (string, error) { return TreeHash(Audio()) })

// AudioPath returns a folder holding the audio model, extracted on first
// use to <cache>/ldm/audio-<hash> the way Path extracts the default model
// (the hash is computed at the first call: the files are ~10 MB).
func AudioPath() (string, error) {
	h, err := audioHash()
	if err != nil {
		return "", err
	}
	base := fsutil.CacheDir()
	dir := filepath.Join(base, "audio-"+h)
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err == nil {
		if got, err := TreeHash(os.DirFS(dir)); err == nil && got == h {
			return dir, nil
		}
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("audio model cache: %w", err)
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("audio model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(base, ".audio-"+h+"-*")
	if err != nil {
		return "", fmt.Errorf("audio model cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := extract(Audio(), tmp); err != nil {
		return "", fmt.Errorf("extracting the audio model: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "model_index.json")); statErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("audio model cache: %w", err)
	}
	return dir, nil
}
