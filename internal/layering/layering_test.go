// Package layering holds the test that keeps the import graph as
// docs/ARCHITECTURE.md draws it.
package layering

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ldm-project/ldm/"

// models are the packages that build networks or step samplers: front ends
// reach them only through ldm.
var models = []string{"unet", "vae", "textenc", "scheduler", "controlnet", "taesd"}

// rules: a package (a path, or a prefix ending in "/…") must not import
// any of these (prefixes likewise).
var rules = []struct {
	pkg    string
	forbid []string
	why    string
}{
	{"app", append([]string{"nn", "weights"}, models...), "the server reaches models only through ldm"},
	{"cmd/ldm", models, "the commands reach models only through ldm"},
	{"unet", []string{"weights", "ldm", "app", "train"}, "model packages know no file format and no pipeline"},
	{"vae", []string{"weights", "ldm", "app", "train"}, "model packages know no file format and no pipeline"},
	{"textenc", []string{"weights", "ldm", "app", "train"}, "model packages know no file format and no pipeline"},
	{"scheduler", []string{"weights", "nn", "ldm", "app", "github.com/gomlx/…"}, "schedulers are plain Go: no graphs, no files"},
	{"controlnet", []string{"ldm", "app", "train"}, "model packages know no pipeline"},
	{"taesd", []string{"ldm", "app", "train"}, "model packages know no pipeline"},
	{"weights", append([]string{"nn", "ldm", "app"}, models...), "weights reads files for every model and imports none"},
	{"nn", append([]string{"weights", "ldm", "app"}, models...), "nn is the bottom layer"},
	{"internal/…", append([]string{"ldm", "app"}, models...), "internal helpers are leaves"},
	{"ldm", []string{"app", "cmd/…", "train"}, "the pipeline knows no front end and no trainer"},
}

func matches(path, pattern string) bool {
	if p, ok := strings.CutSuffix(pattern, "/…"); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return path == pattern
}

// TestImportsFollowTheLayering reads `go list` (imports of non-test files)
// and fails on an import a rule forbids.
func TestImportsFollowTheLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		seen[pkg] = true
		for _, imp := range f[1:] {
			local := strings.TrimPrefix(imp, module)
			for _, r := range rules {
				if !matches(pkg, r.pkg) {
					continue
				}
				if slices.ContainsFunc(r.forbid, func(p string) bool { return matches(local, p) || matches(imp, p) }) {
					t.Errorf("%s imports %s: %s", pkg, local, r.why)
				}
			}
		}
	}
	for _, r := range rules { // a rule about a package that is gone protects nothing
		if !strings.HasSuffix(r.pkg, "/…") && !seen[r.pkg] {
			t.Errorf("rule for %s: no such package", r.pkg)
		}
	}
}
