package golden

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldm-project/ldm/weights"
)

// A kind with no case in the manifest skips the test with a message instead
// of passing silently or failing.
func TestForKindSkipsAKindWithNoCase(t *testing.T) {
	Load(t)
	var inner *testing.T
	ran := false
	t.Run("absent", func(t *testing.T) {
		inner = t
		ForKind(t, "no_such_kind_in_any_manifest", func(t *testing.T, c Case) { ran = true })
	})
	if ran || !inner.Skipped() {
		t.Errorf("ForKind of an absent kind: ran %v, skipped %v; want a skip", ran, inner.Skipped())
	}
}

// fatalRecorder turns Fatalf into a recoverable panic so a test can check
// that a helper fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func (r *fatalRecorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// Integers takes timesteps stored as integers or as integral floats (as
// diffusers' Euler stores them), and refuses fractional ones.
func TestIntegersAcceptsIntegralFloats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ts.safetensors")
	err := weights.WriteFile(path, []weights.WriteTensor{
		{Name: "ints", DType: weights.I64, Shape: []int{3}, Int64: []int64{999, 499, 0}},
		{Name: "floats", DType: weights.F32, Shape: []int{3}, Float32: []float32{999, 499, 0}},
		{Name: "fractional", DType: weights.F32, Shape: []int{2}, Float32: []float32{999, 498.5}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"ints", "floats"} {
		if got := Integers(t, f, name); !slices.Equal(got, []int64{999, 499, 0}) {
			t.Errorf("%s: got %v", name, got)
		}
	}
	r := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Integers(r, f, "fractional")
	}()
	if !strings.Contains(r.msg, "498.5") {
		t.Errorf("fractional timesteps: failure message %q, want one naming 498.5", r.msg)
	}
}
