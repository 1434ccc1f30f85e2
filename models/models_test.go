package models

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

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
