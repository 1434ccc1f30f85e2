package ldm

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/weights"
)

// hfTokenizers are the Hugging Face cache repositories (and the folder inside
// a snapshot) that hold the tokenizer a text encoder family was trained
// with: CLIP ViT-L/14 for SD 1.x, OpenCLIP ViT-H/14 (as SD 2.x ships it) for
// SD 2.x.
var hfTokenizers = map[string][][2]string{
	"sd1": {
		{"models--openai--clip-vit-large-patch14", ""},
		{"models--stable-diffusion-v1-5--stable-diffusion-v1-5", "tokenizer"},
		{"models--runwayml--stable-diffusion-v1-5", "tokenizer"},
	},
	"sd2": {
		{"models--stabilityai--stable-diffusion-2-1", "tokenizer"},
		{"models--stabilityai--stable-diffusion-2-1-base", "tokenizer"},
	},
}

// hfHubCache is the Hugging Face hub cache folder, resolved the way
// huggingface_hub does: $HF_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub.
func hfHubCache() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// isTokenizerDir reports whether dir holds a CLIP tokenizer's vocabulary.
func isTokenizerDir(dir string) bool {
	has := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && !st.IsDir()
	}
	return (has("vocab.json") && has("merges.txt")) || has("tokenizer.json")
}

// findTokenizer picks the tokenizer folder of a model: the one asked for,
// the model's own (a diffusers folder, or OpenOptions.ConfigFrom), or the
// matching one in the Hugging Face cache. The error says what to pass.
// hidden is the text encoder's width (1024 means SD 2.x's OpenCLIP).
func findTokenizer(m *weights.Model, explicit string, hidden int) (string, error) {
	if explicit != "" {
		if !isTokenizerDir(explicit) {
			return "", fmt.Errorf("tokenizer %s: not a tokenizer folder (want vocab.json and merges.txt, or tokenizer.json)", explicit)
		}
		return explicit, nil
	}
	if c := m.Components[weights.Tokenizer]; c != nil && c.Dir != "" {
		return c.Dir, nil
	}
	family := "sd1"
	if hidden == 1024 {
		family = "sd2"
	}
	cache := hfHubCache()
	var tried []string
	if cache != "" {
		for _, r := range hfTokenizers[family] {
			pattern := filepath.Join(cache, r[0], "snapshots", "*", r[1])
			tried = append(tried, pattern)
			matches, _ := filepath.Glob(pattern)
			sort.Sort(sort.Reverse(sort.StringSlice(matches))) // deterministic pick
			for _, d := range matches {
				if isTokenizerDir(d) {
					return d, nil
				}
			}
		}
	}
	what := "a single-file model carries no tokenizer"
	if m.Format != weights.FormatSingleFile {
		what = "the model has no tokenizer folder"
	}
	return "", fmt.Errorf("%s: %s: pass a tokenizer folder (vocab.json + merges.txt) with --tokenizer (LoadOptions.Tokenizer), "+
		"or a diffusers folder of the same family with --config-from, or download the %s tokenizer into the Hugging Face cache (looked in %s)",
		m.Path, what, map[string]string{"sd1": "openai/clip-vit-large-patch14", "sd2": "stabilityai/stable-diffusion-2-1"}[family], strings.Join(tried, ", "))
}
