//go:build unix

package fsutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A written file gets the mode os.Create would give it (0666 less the
// umask), not a fixed 0644, and a replaced file keeps its own mode.
func TestWriteAtomicHonoursTheUmask(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	p := filepath.Join(dir, "private.bin")
	if err := WriteFileAtomic(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil {
		t.Fatal(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("written under umask 077: mode %o, want 600", st.Mode().Perm())
	}
	syscall.Umask(0o002)
	q := filepath.Join(dir, "shared.bin")
	if err := WriteFileAtomic(q, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("y")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{q: 0o664, p: 0o640} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", filepath.Base(name), st.Mode().Perm(), want)
		}
	}
}
