package classify

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/nn"
)

// The classifiers this project trained (docs/EVAL.md has the commands and
// their held-out accuracy); each is a folder as Save writes it.
//
//go:embed models
var embedded embed.FS

// EmbeddedTasks lists the tasks with an embedded classifier.
func EmbeddedTasks() []string {
	entries, _ := fs.ReadDir(embedded, "models")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Embedded loads the classifier shipped for task ("emoji" or "shapes").
func Embedded(backend backends.Backend, task string) (*Model, error) {
	dir := path.Join("models", task)
	b, err := embedded.ReadFile(path.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("no embedded classifier for %q (have %v): pass a classifier folder", task, EmbeddedTasks())
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("embedded classifier %s: %w", task, err)
	}
	w, err := embedded.ReadFile(path.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("embedded classifier %s: %w", task, err)
	}
	src, err := weightsFromBytes(w)
	if err != nil {
		return nil, fmt.Errorf("embedded classifier %s: %w", task, err)
	}
	return New(backend, cfg, src)
}

// weightsFromBytes reads a safetensors file held in memory (through a
// temporary file: the weights reader works on files).
func weightsFromBytes(b []byte) (nn.MapSource, error) {
	f, err := os.CreateTemp("", "ldm-classifier-*.safetensors")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return readWeights(f.Name())
}

// LoadOrEmbedded loads the classifier folder dir, or the embedded
// classifier of task when dir is empty.
func LoadOrEmbedded(backend backends.Backend, dir, task string) (*Model, error) {
	if dir == "" {
		return Embedded(backend, task)
	}
	return Load(backend, dir)
}
