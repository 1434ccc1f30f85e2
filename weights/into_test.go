package weights

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestFloat32IntoMatchesFloat32: the in-place conversion nn.Load uses gives
// the values Float32 gives, for whole tensors and for a part of a fused one,
// in F16 and F32, and refuses a buffer of the wrong size.
func TestFloat32IntoMatchesFloat32(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	vals := make([]float32, 2*3*4)
	for i := range vals {
		vals[i] = float32(i)*0.37 - 3
	}
	if err := WriteFile(path, []WriteTensor{
		{Name: "a", DType: "F16", Shape: []int{2, 3, 4}, Float32: vals},
		{Name: "b", DType: "F32", Shape: []int{6, 4}, Float32: vals},
	}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newFileSource()
	s.add("whole", tensorRef{file: f, name: "a", part: Part{0, 1}, dtype: "F16", shape: []int{2, 3, 4}})
	s.add("second_half", tensorRef{file: f, name: "b", part: Part{1, 2}, dtype: "F32", shape: []int{3, 4}})
	s.finish()
	for _, key := range s.Keys() {
		want, shape, err := s.Float32(key)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(want))
		if err := s.Float32Into(key, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Float32Into %v, Float32 %v", key, got, want)
		}
		if sh, ok := s.Float32Shape(key); !ok || !slices.Equal(sh, shape) {
			t.Errorf("%s: shape %v, want %v", key, sh, shape)
		}
		if err := s.Float32Into(key, make([]float32, len(want)+1)); err == nil {
			t.Errorf("%s: a buffer of the wrong size was accepted", key)
		}
	}
	if err := s.Float32Into("missing", nil); err == nil {
		t.Error("a missing key was accepted")
	}
}
