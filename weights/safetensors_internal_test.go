package weights

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stBytes assembles a safetensors file from a header and a data section.
func stBytes(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// validFile is a small file as WriteFile produces it.
func validFile(t testing.TB) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.safetensors")
	err := WriteFile(path, []WriteTensor{
		{Name: "w", DType: F16, Shape: []int{2, 3}, Float32: []float32{1, -2, 3, 0.5, 0, -0.25}},
		{Name: "b", DType: F32, Shape: []int{2}, Float32: []float32{7, 8}},
		{Name: "ids", DType: I64, Shape: []int{1, 2}, Int64: []int64{0, 76}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRejectsBadFiles(t *testing.T) {
	f32 := func(s string) string { return `{"a":{"dtype":"F32",` + s + `}}` }
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"too short", []byte{1, 2, 3}, "too short for the 8-byte header length"},
		{"hostile header length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'}, "exceeds the 100000000-byte limit"},
		{"header longer than the file", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...), "truncated safetensors file: header claims 1000 bytes but the file has only 2"},
		{"not an object", stBytes(`[1, 2]`, nil), "does not start with a JSON object"},
		{"broken JSON", stBytes(`{"a":`, nil), "invalid safetensors header JSON"},
		{"trailing garbage", stBytes(`{}  xyz`, nil), "3 unexpected bytes after the JSON object"},
		{"unknown dtype", stBytes(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), `tensor "a": unknown dtype "Q4"`},
		{"offsets beyond the file", stBytes(f32(`"shape":[2],"data_offsets":[0,8]`), make([]byte, 4)), `tensor "a": data_offsets [0,8] outside the 4-byte data section`},
		{"negative offset", stBytes(f32(`"shape":[1],"data_offsets":[-4,0]`), make([]byte, 4)), "outside the 4-byte data section"},
		{"reversed offsets", stBytes(f32(`"shape":[0],"data_offsets":[4,0]`), make([]byte, 4)), "outside the 4-byte data section"},
		{"three offsets", stBytes(f32(`"shape":[1],"data_offsets":[0,4,8]`), make([]byte, 8)), "data_offsets must have 2 entries, has 3"},
		{"shape lies about size", stBytes(f32(`"shape":[3],"data_offsets":[0,8]`), make([]byte, 8)), "shape [3] of F32 needs 12 bytes but data_offsets span 8"},
		{"no shape", stBytes(f32(`"data_offsets":[0,4]`), make([]byte, 4)), `tensor "a": no shape`},
		{"negative dimension", stBytes(f32(`"shape":[-1],"data_offsets":[0,4]`), make([]byte, 4)), "invalid shape [-1]"},
		{"overflowing shape", stBytes(f32(`"shape":[4294967296,4294967296],"data_offsets":[0,4]`), make([]byte, 4)), "invalid shape"},
		{"absurd rank", stBytes(f32(`"shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]`), make([]byte, 4)), "rank 17 is not plausible"},
		{"shape of strings", stBytes(f32(`"shape":["1"],"data_offsets":[0,4]`), make([]byte, 4)), `tensor "a": invalid header entry`},
		{"overlap", stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), `tensors "a" and "b" overlap`},
		{"duplicate name", stBytes(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2)), `tensor "a" appears twice`},
		{"metadata not strings", stBytes(`{"__metadata__":{"n":1}}`, nil), "invalid __metadata__"},
		{"metadata twice", stBytes(`{"__metadata__":{},"__metadata__":{}}`, nil), "__metadata__ appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseAcceptsValidVariants(t *testing.T) {
	tests := []struct {
		name  string
		file  []byte
		names []string
	}{
		{"empty header", stBytes(`{}`, nil), nil},
		{"NUL padding", stBytes(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`+"\x00\x00\x00", []byte{9}), []string{"a"}},
		{"uncovered data", stBytes(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, make([]byte, 8)), []string{"a"}},
		{"empty tensor inside another", stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}}`, make([]byte, 8)), []string{"a", "e"}},
		{"scalar", stBytes(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)), []string{"s"}},
	}
	for _, tt := range tests {
		sf, err := parse(bytes.NewReader(tt.file), int64(len(tt.file)))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if strings.Join(sf.Names(), ",") != strings.Join(tt.names, ",") {
			t.Errorf("%s: names %v, want %v", tt.name, sf.Names(), tt.names)
		}
	}
}

// A file cut anywhere is refused, with a message saying so.
func TestParseRefusesEveryTruncation(t *testing.T) {
	b := validFile(t)
	hlen := int(binary.LittleEndian.Uint64(b))
	for n := range len(b) {
		_, err := parse(bytes.NewReader(b[:n]), int64(n))
		switch {
		case err == nil:
			t.Fatalf("cut at %d of %d bytes: no error", n, len(b))
		case n >= 8+hlen && !strings.Contains(err.Error(), "truncated or corrupt"):
			t.Fatalf("cut at %d in the data: %v", n, err)
		case n >= 8 && n < 8+hlen && !strings.Contains(err.Error(), "truncated safetensors file"):
			t.Fatalf("cut at %d in the header: %v", n, err)
		}
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.safetensors")
	b := validFile(t)
	os.WriteFile(path, b[:len(b)-3], 0o644)
	_, err := Open(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line starting with the path", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("opening a folder: %v", err)
	}
}

func TestReadAfterTheFileShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.safetensors")
	b := validFile(t)
	os.WriteFile(path, b, 0o644)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Truncate(path, int64(len(b)-4))
	names := f.Names() // b, ids, w: "w" is last in the data section
	if _, _, err := f.Float32(names[2]); err == nil || !strings.Contains(err.Error(), "file ends early") {
		t.Errorf("err = %v", err)
	}
}

func TestReadConvertsDTypes(t *testing.T) {
	sf, err := parse(bytes.NewReader(validFile(t)), int64(len(validFile(t))))
	if err != nil {
		t.Fatal(err)
	}
	w, shape, err := sf.Float32("w")
	if err != nil || len(shape) != 2 || shape[1] != 3 || w[1] != -2 || w[5] != -0.25 {
		t.Errorf("w = %v %v %v", w, shape, err)
	}
	ids, _, err := sf.Int64("ids")
	if err != nil || ids[1] != 76 {
		t.Errorf("ids = %v %v", ids, err)
	}
	if _, _, err := sf.Float32("ids"); err == nil || !strings.Contains(err.Error(), "want a floating-point type") {
		t.Errorf("Float32 of I64: %v", err)
	}
	if _, _, err := sf.Int64("w"); err == nil {
		t.Error("Int64 of F16 should fail")
	}
	if _, _, err := sf.Float32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor named "nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	if sf.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", sf.Metadata)
	}
}

// Partial reads of a tensor larger than the staging buffer see the right
// elements: the fused-q/k/v split depends on it.
func TestFloat32RangeAcrossChunks(t *testing.T) {
	n := readChunk/2 + 1000 // F16: more than one staging chunk
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i % 2048)
	}
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := WriteFile(path, []WriteTensor{{Name: "x", DType: F16, Shape: []int{n}, Float32: vals}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, _ := f.Info("x")
	for _, r := range [][2]int{{0, n}, {n / 3, 2 * n / 3}, {n - 5, n}, {7, 7}} {
		got, err := f.float32Range(ti, r[0], r[1])
		if err != nil || len(got) != r[1]-r[0] {
			t.Fatalf("range %v: %d values, %v", r, len(got), err)
		}
		for i, v := range got {
			if v != vals[r[0]+i] {
				t.Fatalf("range %v: [%d] = %g, want %g", r, i, v, vals[r[0]+i])
			}
		}
	}
	if _, err := f.float32Range(ti, 5, n+1); err == nil {
		t.Error("a range past the end should fail")
	}
}

// FuzzParseHeader feeds arbitrary bytes to the parser: it must never panic,
// and whatever it accepts must be safe to read.
func FuzzParseHeader(f *testing.F) {
	valid := validFile(f)
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:20])
	f.Add(stBytes(`{}`, nil))
	f.Add(stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)))
	f.Add(stBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[6,10]}}`, make([]byte, 12)))
	f.Add(stBytes(`{"a":{"dtype":"BF16","shape":[4294967296,4294967296],"data_offsets":[0,2]}}`, make([]byte, 2)))
	f.Add(stBytes(`{"__metadata__":{"format":"pt"},"x":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		dataLen := int64(len(data)) - sf.dataStart
		var spans [][2]int64
		for _, name := range sf.Names() {
			ti, ok := sf.Info(name)
			if !ok || ti.Begin < 0 || ti.End < ti.Begin || ti.End > dataLen {
				t.Fatalf("accepted %q with offsets [%d,%d] in %d bytes", name, ti.Begin, ti.End, dataLen)
			}
			if int64(ti.NumElements())*int64(ti.DType.Size()) != ti.End-ti.Begin {
				t.Fatalf("accepted %q whose shape %v does not fill [%d,%d)", name, ti.Shape, ti.Begin, ti.End)
			}
			for _, s := range spans {
				if ti.Begin < s[1] && s[0] < ti.End {
					t.Fatalf("accepted overlapping %q", name)
				}
			}
			if ti.End > ti.Begin {
				spans = append(spans, [2]int64{ti.Begin, ti.End})
			}
			if ti.DType.IsFloat() {
				if v, _, err := sf.Float32(name); err != nil || len(v) != ti.NumElements() {
					t.Fatalf("reading accepted %q: %d values, %v", name, len(v), err)
				}
			}
		}
	})
}
