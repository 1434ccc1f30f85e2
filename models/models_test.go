package models

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/ldm-project/ldm/weights"
)

func TestPathExtractsTheEmbeddedModelOnceAndItOpens(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	dir, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Path()
	if err != nil || again != dir {
		t.Fatalf("second Path() = %q, %v; want %q", again, err, dir)
	}
	n := 0
	err = fs.WalkDir(Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := fs.ReadFile(Default(), p)
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: extracted copy differs (%v)", p, err)
		}
		n++
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("%d files, %v", n, err)
	}
	m, err := weights.OpenModel(dir, weights.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, c := range []string{weights.UNet, weights.VAE, weights.TextEncoder} {
		if m.Components[c] == nil {
			t.Errorf("no %s component", c)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("cache holds %d entries, want only the model (no temporary folders left)", len(entries))
	}
}

func TestTreeHashNamesContentAndLayout(t *testing.T) {
	base := fstest.MapFS{"unet/a.bin": {Data: []byte("weights")}, "model_index.json": {Data: []byte("{}")}}
	h := func(fsys fstest.MapFS) string {
		s, err := TreeHash(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	h0 := h(base)
	if len(h0) != 16 || h0 != h(base) {
		t.Fatalf("hash %q: want 16 hex digits, stable", h0)
	}
	for name, other := range map[string]fstest.MapFS{
		"content": {"unet/a.bin": {Data: []byte("weightz")}, "model_index.json": {Data: []byte("{}")}},
		"name":    {"unet/b.bin": {Data: []byte("weights")}, "model_index.json": {Data: []byte("{}")}},
		"split":   {"unet/a.bin": {Data: []byte("weight")}, "model_index.json": {Data: []byte("s{}")}},
	} {
		if h(other) == h0 {
			t.Errorf("a different %s gives the same hash %s", name, h0)
		}
	}
}

// TestSumIsCurrent: default.sum must be the hash of what is embedded, or a
// changed model would be served from the cache folder of the old one.
func TestSumIsCurrent(t *testing.T) {
	want, err := TreeHash(Default())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Hash(); err != nil || got != want {
		t.Errorf("default.sum holds %q (%v), the embedded files hash to %s: run go generate ./models", got, err, want)
	}
}

// A cached copy that was changed, truncated or lost a file is found by its
// hash against default.sum and extracted again (in a later process; within
// one, Path checks once).
func TestPathReExtractsACorruptedCopy(t *testing.T) {
	t.Setenv("LDM_CACHE", t.TempDir())
	dir, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(string) error{
		"unet/diffusion_pytorch_model.safetensors": func(p string) error { return os.Truncate(p, 1000) },
		"tokenizer/merges.txt":                     os.Remove,
		"unet/config.json":                         func(p string) error { return os.WriteFile(p, []byte("{}"), 0o644) },
	} {
		if err := damage(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		verified.dir = "" // a new process
		again, err := Path()
		if err != nil || again != dir {
			t.Fatalf("after damaging %s: Path() = %q, %v", name, again, err)
		}
		want, _ := fs.ReadFile(Default(), name)
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not restored (%v)", name, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("cache holds %d entries, want only the model", len(entries))
	}
}
