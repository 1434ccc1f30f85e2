package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// A relative LDM_GOLDEN_DIR means the same folder from every package: it is
// taken from the repository root, not from the test's working directory.
func TestRelativeGoldenDirIsFromTheRepositoryRoot(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("test layout: %v", err)
	}
	t.Setenv("LDM_GOLDEN_DIR", filepath.Join("..", "shared", "golden"))
	if got, want := Dir(), filepath.Join(root, "..", "shared", "golden"); got != want {
		t.Errorf("relative: Dir() = %q, want %q", got, want)
	}
	t.Setenv("LDM_GOLDEN_DIR", "/abs/golden")
	if got := Dir(); got != "/abs/golden" {
		t.Errorf("absolute: Dir() = %q", got)
	}
	t.Setenv("LDM_GOLDEN_DIR", "")
	if got, want := Dir(), filepath.Join(root, "..", "shared", "golden"); got != want {
		t.Errorf("unset: Dir() = %q, want %q", got, want)
	}
}
