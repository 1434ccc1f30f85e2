// Package golden drives the reference-parity tests from the manifest in
// ../shared/golden (or $LDM_GOLDEN_DIR). Every test of a component asks for
// the cases of its kind with ForKind, so a new manifest with new cases of a
// known kind runs without code changes.
package golden

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ldm-project/ldm/internal/pyjson"
	"github.com/ldm-project/ldm/weights"
)

// Case is one manifest entry. Kind-specific fields are read with the accessors.
type Case struct {
	Name   string
	Kind   string
	ATol   float64
	RTol   float64
	Dir    string // the manifest's folder
	Fields map[string]json.RawMessage
}

// Manifest is the parsed manifest.json.
type Manifest struct {
	Dir   string
	Cases []Case
}

// Dir returns the golden folder: $LDM_GOLDEN_DIR, or ../shared/golden next to
// the repository root (found by walking up to go.mod). A relative
// $LDM_GOLDEN_DIR is taken from the repository root, not from the package
// folder each test runs in, so that LDM_GOLDEN_DIR=../shared/golden
// go test ./... finds the same folder in every package.
func Dir() string {
	d := os.Getenv("LDM_GOLDEN_DIR")
	if d != "" && filepath.IsAbs(d) {
		return d
	}
	root := repoRoot()
	if root == "" {
		return d
	}
	if d == "" {
		d = filepath.Join("..", "shared", "golden")
	}
	return filepath.Join(root, d)
}

// repoRoot is the nearest folder above the working directory holding go.mod.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

var (
	loadOnce sync.Once
	loaded   *Manifest
	loadErr  error
)

// LoadManifest reads the manifest from dir.
func LoadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var raw struct {
		Cases []map[string]json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(pyjson.Sanitize(data), &raw); err != nil {
		return nil, fmt.Errorf("%s/manifest.json: %w", dir, err)
	}
	m := &Manifest{Dir: dir}
	for _, f := range raw.Cases {
		c := Case{Dir: dir, Fields: f}
		c.Name = c.String("name")
		c.Kind = c.String("kind")
		c.ATol = c.Float("atol")
		c.RTol = c.Float("rtol")
		m.Cases = append(m.Cases, c)
	}
	return m, nil
}

// Load returns the manifest, or skips the test with a clear message when the
// golden folder is absent.
func Load(t testing.TB) *Manifest {
	t.Helper()
	loadOnce.Do(func() {
		dir := Dir()
		if dir == "" {
			loadErr = fmt.Errorf("cannot locate the repository root")
			return
		}
		loaded, loadErr = LoadManifest(dir)
	})
	if loadErr != nil {
		if os.IsNotExist(loadErr) {
			t.Skipf("golden data not found (%v): set LDM_GOLDEN_DIR to the folder holding manifest.json", loadErr)
		}
		t.Fatalf("golden manifest: %v", loadErr)
	}
	return loaded
}

// ForKind runs fn as a subtest for every case of the given kind, and skips
// the test with a message when the manifest has none (so a test that checks
// several kinds runs each ForKind in its own subtest).
func ForKind(t *testing.T, kind string, fn func(t *testing.T, c Case)) {
	t.Helper()
	m := Load(t)
	n := 0
	for _, c := range m.Cases {
		if c.Kind != kind {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) { fn(t, c) })
	}
	if n == 0 {
		t.Skipf("golden manifest in %s has no case of kind %q", m.Dir, kind)
	}
}

// Has reports whether the case has a field.
func (c Case) Has(key string) bool {
	v, ok := c.Fields[key]
	return ok && string(v) != "null"
}

// Decode unmarshals a field into v.
func (c Case) Decode(key string, v any) error {
	raw, ok := c.Fields[key]
	if !ok {
		return fmt.Errorf("case %s: no field %q", c.Name, key)
	}
	return json.Unmarshal(raw, v)
}

// String returns a string field, or "".
func (c Case) String(key string) string {
	var s string
	_ = c.Decode(key, &s)
	return s
}

// Float returns a numeric field, or 0.
func (c Case) Float(key string) float64 {
	var f float64
	_ = c.Decode(key, &f)
	return f
}

// Int returns an integer field, or 0.
func (c Case) Int(key string) int { return int(c.Float(key)) }

// Path resolves a file field relative to the manifest folder.
func (c Case) Path(key string) string {
	return filepath.Join(c.Dir, c.String(key))
}

// Tol returns the absolute tolerance for values whose largest magnitude is
// maxAbs: atol when given, else rtol·maxAbs.
func (c Case) Tol(maxAbs float64) float64 {
	if c.ATol > 0 || c.RTol == 0 {
		return c.ATol
	}
	return c.RTol * maxAbs
}

// Tensors opens a case's safetensors file field.
func (c Case) Tensors(t testing.TB, key string) *weights.File {
	t.Helper()
	f, err := weights.Open(c.Path(key))
	if err != nil {
		t.Fatalf("case %s: %v", c.Name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Float32 reads a float tensor or fails the test.
func Float32(t testing.TB, f *weights.File, name string) ([]float32, []int) {
	t.Helper()
	v, s, err := f.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

// Int64 reads an integer tensor or fails the test.
func Int64(t testing.TB, f *weights.File, name string) ([]int64, []int) {
	t.Helper()
	v, s, err := f.Int64(name)
	if err != nil {
		t.Fatal(err)
	}
	return v, s
}

// Integers reads a tensor whose values are whole numbers: an integer tensor,
// or a float tensor holding integral values (diffusers stores some timesteps
// as floats). A fractional value fails the test.
func Integers(t testing.TB, f *weights.File, name string) []int64 {
	t.Helper()
	info, ok := f.Info(name)
	if !ok {
		t.Fatalf("%s: no tensor %q", f.Path, name)
	}
	if v, _, err := f.Int64(name); err == nil {
		return v
	} else if !info.DType.IsFloat() {
		t.Fatal(err)
	}
	v, _ := Float32(t, f, name)
	out := make([]int64, len(v))
	for i, x := range v {
		if float32(math.Trunc(float64(x))) != x {
			t.Fatalf("%s: tensor %q (%s) holds %v at index %d, want whole numbers", f.Path, name, info.DType, x, i)
		}
		out[i] = int64(x)
	}
	return out
}

// MaxAbs returns max|x|.
func MaxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

// MaxAbsDiff returns max|a-b| and its index; lengths must match.
func MaxAbsDiff(a, b []float32) (float64, int) {
	m, idx := 0.0, -1
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > m || math.IsNaN(d) {
			m, idx = d, i
			if math.IsNaN(d) {
				return math.Inf(1), i
			}
		}
	}
	return m, idx
}

// AssertClose fails the test when got and want differ by more than tol
// anywhere, reporting the worst element. It returns the max abs error.
func AssertClose(t testing.TB, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d values, want %d", what, len(got), len(want))
		return math.Inf(1)
	}
	d, i := MaxAbsDiff(got, want)
	if d > tol {
		t.Errorf("%s: max abs error %.3g at index %d (got %g, want %g) exceeds tolerance %.3g", what, d, i, got[i], want[i], tol)
	} else {
		t.Logf("%s: max abs error %.3g (tolerance %.3g, max|want| %.3g)", what, d, tol, MaxAbs(want))
	}
	return d
}
