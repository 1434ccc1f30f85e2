package weights

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	vals := []float32{1, -2.5, 0.1, 65519, 1e-8, 3.14159}
	loads := 0
	err := WriteFile(path, []WriteTensor{
		{Name: "z.f32", DType: F32, Shape: []int{2, 3}, Float32: vals},
		{Name: "a.f16", DType: F16, Shape: []int{6}, Load: func() ([]float32, error) { loads++; return vals, nil }},
		{Name: "m.bf16", DType: BF16, Shape: []int{3, 2}, Float32: vals},
		{Name: "ids", DType: I64, Shape: []int{1, 3}, Int64: []int64{-1, 0, 1 << 40}},
		{Name: "scalar", DType: F32, Shape: nil, Float32: []float32{42}},
		{Name: "empty", DType: F16, Shape: []int{0, 4}},
	}, map[string]string{"format": "pt", "note": "ünïcode"})
	if err != nil {
		t.Fatal(err)
	}
	if loads != 1 {
		t.Errorf("Load called %d times", loads)
	}
	raw, _ := os.ReadFile(path)
	hlen := binary.LittleEndian.Uint64(raw)
	if hlen%8 != 0 || raw[8+hlen-1] != ' ' && raw[8+hlen-1] != '}' {
		t.Errorf("header length %d is not padded to 8 with spaces", hlen)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if want := []string{"a.f16", "empty", "ids", "m.bf16", "scalar", "z.f32"}; !slices.Equal(f.Names(), want) {
		t.Errorf("names %v, want %v", f.Names(), want)
	}
	var prevEnd int64 // data laid out in name order, back to back
	for _, n := range f.Names() {
		ti, _ := f.Info(n)
		if ti.Begin != prevEnd {
			t.Errorf("%s starts at %d, want %d", n, ti.Begin, prevEnd)
		}
		prevEnd = ti.End
	}
	if f.Metadata["note"] != "ünïcode" || f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	for _, tt := range []struct {
		name  string
		round func(float32) float32
	}{
		{"z.f32", func(x float32) float32 { return x }},
		{"a.f16", func(x float32) float32 { return HalfToFloat32(Float32ToHalf(x)) }},
		{"m.bf16", func(x float32) float32 { return BF16ToFloat32(Float32ToBF16(x)) }},
	} {
		got, _, err := f.Float32(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if got[i] != tt.round(v) {
				t.Errorf("%s[%d] = %g, want %g", tt.name, i, got[i], tt.round(v))
			}
		}
	}
	if h, _, _ := f.Float32("a.f16"); h[3] != 65504 || h[4] != 0 {
		t.Errorf("f16 rounding: 65519 → %g (want 65504), 1e-8 → %g (want 0)", h[3], h[4])
	}
	ids, shape, _ := f.Int64("ids")
	if !slices.Equal(ids, []int64{-1, 0, 1 << 40}) || !slices.Equal(shape, []int{1, 3}) {
		t.Errorf("ids %v %v", ids, shape)
	}
	if s, shape, _ := f.Float32("scalar"); len(s) != 1 || s[0] != 42 || len(shape) != 0 {
		t.Errorf("scalar %v %v", s, shape)
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keep.safetensors")
	if err := WriteFile(path, []WriteTensor{{Name: "x", DType: F32, Shape: []int{1}, Float32: []float32{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	boom := errors.New("disk on fire")
	err := WriteFile(path, []WriteTensor{
		{Name: "a", DType: F32, Shape: []int{2}, Float32: []float32{1, 2}},
		{Name: "b", DType: F32, Shape: []int{2}, Load: func() ([]float32, error) { return nil, boom }},
	}, nil)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Error("a failed write changed the existing file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftovers in the folder: %v", entries)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}

func TestWriteFileRefusesBadInput(t *testing.T) {
	tests := []struct {
		name    string
		tensors []WriteTensor
		want    string
	}{
		{"duplicate", []WriteTensor{{Name: "a", DType: F32, Shape: []int{1}, Float32: []float32{1}}, {Name: "a", DType: F32, Shape: []int{1}, Float32: []float32{1}}}, `tensor "a" given twice`},
		{"reserved name", []WriteTensor{{Name: "__metadata__", DType: F32, Shape: []int{1}, Float32: []float32{1}}}, "cannot be named __metadata__"},
		{"wrong count", []WriteTensor{{Name: "a", DType: F16, Shape: []int{2, 2}, Float32: []float32{1}}}, "shape [2 2] needs 4 values, got 1"},
		{"unsupported dtype", []WriteTensor{{Name: "a", DType: "F64", Shape: []int{1}, Float32: []float32{1}}}, `cannot write dtype "F64"`},
		{"I64 without ints", []WriteTensor{{Name: "a", DType: I64, Shape: []int{1}, Float32: []float32{1}}}, "I64 needs Int64 values"},
		{"Load gives the wrong count", []WriteTensor{{Name: "a", DType: F32, Shape: []int{3}, Load: func() ([]float32, error) { return []float32{1}, nil }}}, "needs 3 values, Load gave 1"},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		err := WriteFile(path, tt.tensors, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("%s: a file was left at %s", tt.name, path)
		}
	}
}
