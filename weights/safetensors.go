package weights

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// DType is a safetensors dtype name ("F32", "F16", "BF16", "I64", ...).
type DType string

// Size returns the byte size of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case "F64", "I64", "U64":
		return 8
	case "F32", "I32", "U32":
		return 4
	case "F16", "BF16", "I16", "U16":
		return 2
	case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2":
		return 1
	}
	return 0
}

// TensorInfo describes one tensor of a safetensors file. Begin and End are
// byte offsets relative to the start of the data section.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	Begin int64
	End   int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file. Tensors are read on demand with section
// reads, so a multi-GB checkpoint is never held in memory twice.
type File struct {
	Path     string
	Metadata map[string]string

	f         *os.File
	size      int64
	dataStart int64
	tensors   map[string]TensorInfo
	names     []string
}

// maxHeaderLen bounds the JSON header; real checkpoints have headers of a few
// hundred KB, so 100 MB is generous and still refuses hostile lengths.
const maxHeaderLen = 100 << 20

// Open opens and validates a safetensors file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sf, err := parse(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf.Path = path
	sf.f = f
	return sf, nil
}

// parse reads and validates the header of a safetensors stream of the given size.
func parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("not a safetensors file: %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %w", err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > maxHeaderLen {
		return nil, fmt.Errorf("not a safetensors file: header length %d exceeds the %d-byte limit", hlen, maxHeaderLen)
	}
	if int64(hlen) > size-8 {
		return nil, fmt.Errorf("truncated safetensors file: header claims %d bytes but the file has only %d after the length field", hlen, size-8)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	return parseHeader(hdr, size-8-int64(hlen), 8+int64(hlen), size)
}

func parseHeader(hdr []byte, dataLen, dataStart, size int64) (*File, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("invalid safetensors header JSON: %w", err)
	}
	sf := &File{tensors: make(map[string]TensorInfo, len(raw)), dataStart: dataStart, size: size}
	type entry struct {
		DType   string  `json:"dtype"`
		Shape   []int64 `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("invalid __metadata__ (must map strings to strings): %w", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: invalid header entry: %w", name, err)
		}
		dt := DType(e.DType)
		if dt.Size() == 0 {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
		}
		if len(e.Offsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets must have 2 entries, has %d", name, len(e.Offsets))
		}
		begin, end := e.Offsets[0], e.Offsets[1]
		if begin < 0 || end < begin || end > dataLen {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d,%d] outside the %d-byte data section (truncated or corrupt file)", name, begin, end, dataLen)
		}
		if len(e.Shape) > 16 {
			return nil, fmt.Errorf("tensor %q: rank %d is not plausible", name, len(e.Shape))
		}
		n := int64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/8/d) {
				return nil, fmt.Errorf("tensor %q: invalid shape %v", name, e.Shape)
			}
			n *= d
			shape[i] = int(d)
		}
		if n*int64(dt.Size()) != end-begin {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets span %d", name, e.Shape, dt, n*int64(dt.Size()), end-begin)
		}
		sf.tensors[name] = TensorInfo{Name: name, DType: dt, Shape: shape, Begin: begin, End: end}
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	// Overlap check: sort by offset.
	byOff := make([]TensorInfo, 0, len(sf.tensors))
	for _, t := range sf.tensors {
		byOff = append(byOff, t)
	}
	sort.Slice(byOff, func(i, j int) bool { return byOff[i].Begin < byOff[j].Begin })
	for i := 1; i < len(byOff); i++ {
		if byOff[i].Begin < byOff[i-1].End {
			return nil, fmt.Errorf("tensors %q and %q overlap in the data section (corrupt file)", byOff[i-1].Name, byOff[i].Name)
		}
	}
	return sf, nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

// Names lists tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Info returns a tensor's description.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Raw reads a tensor's bytes.
func (f *File) Raw(name string) ([]byte, TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, t, fmt.Errorf("%s: no tensor named %q", f.Path, name)
	}
	buf := make([]byte, t.End-t.Begin)
	if _, err := f.f.ReadAt(buf, f.dataStart+t.Begin); err != nil {
		return nil, t, fmt.Errorf("%s: reading tensor %q: %w", f.Path, name, err)
	}
	return buf, t, nil
}

// Float32 reads a floating-point tensor converted to float32, with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	buf, t, err := f.Raw(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := ToFloat32(buf, t.DType)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: tensor %q: %w", f.Path, name, err)
	}
	return out, t.Shape, nil
}

// Int64 reads an integer tensor converted to int64, with its shape.
func (f *File) Int64(name string) ([]int64, []int, error) {
	buf, t, err := f.Raw(name)
	if err != nil {
		return nil, nil, err
	}
	n := t.NumElements()
	out := make([]int64, n)
	switch t.DType {
	case "I64":
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
		}
	case "I32":
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	default:
		return nil, nil, fmt.Errorf("%s: tensor %q has dtype %s, want an integer type", f.Path, name, t.DType)
	}
	return out, t.Shape, nil
}

// ToFloat32 converts little-endian raw data of the given dtype to float32.
func ToFloat32(buf []byte, dt DType) ([]float32, error) {
	sz := dt.Size()
	if sz == 0 || len(buf)%sz != 0 {
		return nil, fmt.Errorf("cannot convert %d bytes of %s", len(buf), dt)
	}
	n := len(buf) / sz
	out := make([]float32, n)
	switch dt {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[2*i:])) << 16)
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not a floating-point type", dt)
	}
	return out, nil
}

// HalfToFloat32 converts an IEEE 754 binary16 value.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// String summarises the file for logs.
func (f *File) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d tensors", f.Path, len(f.names))
	return b.String()
}
