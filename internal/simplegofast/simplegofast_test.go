package simplegofast

import (
	"testing"
)

func TestEnable(t *testing.T) {
	if err := Enable(); err != nil {
		t.Fatal(err)
	}
	if !Enabled() {
		t.Fatal("Enabled() is false after Enable()")
	}
	if err := Enable(); err != nil {
		t.Fatal("second Enable:", err)
	}
	Disable()
	if Enabled() {
		t.Fatal("Enabled() after Disable()")
	}
	if err := Enable(); err != nil {
		t.Fatal("Enable after Disable:", err)
	}
}

// TestVersionFailsClosed: without module information the version must be
// read from simplego's source path, and anything but v0.26.0's module
// folder is refused.
func TestVersionFailsClosed(t *testing.T) {
	if err := checkVersion(); err != nil {
		t.Fatal("this test binary's GoMLX:", err)
	}
	if err := checkSymbols(true); err != nil {
		t.Fatal("source-path evidence in this test binary:", err)
	}
	for _, ok := range []string{
		"/root/go/pkg/mod/github.com/gomlx/gomlx@v0.26.0/backends/simplego/exec.go",
		"github.com/gomlx/gomlx@v0.26.0/backends/simplego/exec.go", // -trimpath
	} {
		if err := checkSourcePath(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"/home/me/gomlx/backends/simplego/exec.go",                                  // replace => ../gomlx
		"/src/app/vendor/github.com/gomlx/gomlx/backends/simplego/exec.go",          // vendored, version unknown
		"/root/go/pkg/mod/github.com/gomlx/gomlx@v0.27.0/backends/simplego/exec.go", // another version
		"/root/go/pkg/mod/github.com/gomlx/gomlx@v0.26.0/backends/xla/exec.go",
		"",
	} {
		if err := checkSourcePath(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
