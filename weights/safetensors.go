package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
)

// DType is a safetensors dtype name ("F32", "F16", "BF16", "I64", ...).
type DType string

// The dtypes the writer produces and the float readers accept most often.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
)

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

// IsFloat reports whether ToFloat32 can convert the dtype.
func (d DType) IsFloat() bool {
	switch d {
	case "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2":
		return true
	}
	return false
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
// reads (pread), so a multi-GB checkpoint is never held in memory twice and
// the page cache, not the process, holds the file's bytes.
type File struct {
	Path     string
	Metadata map[string]string
	Size     int64 // file size in bytes

	r         io.ReaderAt
	closer    io.Closer
	dataStart int64
	tensors   map[string]TensorInfo
	names     []string
}

// Limits on what a header may claim; anything beyond is refused before any
// allocation of that size is made.
const (
	// maxHeaderLen is the limit of the reference implementation (safetensors'
	// MAX_HEADER_SIZE); real checkpoints have headers of a few hundred KB.
	maxHeaderLen = 100_000_000
	maxTensors   = 1 << 20
	maxRank      = 16
)

// Open opens and validates a safetensors file. A truncated, corrupt or hostile
// file gives an error naming the file and the problem.
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
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a folder, not a safetensors file", path)
	}
	sf, err := parse(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf.Path = path
	sf.closer = f
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
	if hlen < 2 {
		return nil, fmt.Errorf("not a safetensors file: header length %d is too short for a JSON object", hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	dataStart := 8 + int64(hlen)
	sf, err := parseHeader(hdr, size-dataStart)
	if err != nil {
		return nil, err
	}
	sf.r, sf.dataStart, sf.Size = r, dataStart, size
	return sf, nil
}

type headerEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// parseHeader validates a JSON header against a data section of dataLen bytes:
// known dtypes, shapes whose byte size equals the offsets' span, offsets inside
// the data section, no two tensors sharing bytes, no duplicate names. The data
// section need not be fully covered.
func parseHeader(hdr []byte, dataLen int64) (*File, error) {
	if hdr[0] != '{' {
		return nil, fmt.Errorf("not a safetensors file: the header does not start with a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid safetensors header JSON: %w", err)
	}
	sf := &File{tensors: map[string]TensorInfo{}}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid safetensors header JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid safetensors header JSON: object key %v is not a string", tok)
		}
		if name == "__metadata__" {
			if seenMeta {
				return nil, fmt.Errorf("invalid safetensors header: __metadata__ appears twice")
			}
			seenMeta = true
			if err := dec.Decode(&sf.Metadata); err != nil {
				return nil, fmt.Errorf("invalid __metadata__ (must map strings to strings): %w", err)
			}
			continue
		}
		if _, dup := sf.tensors[name]; dup {
			return nil, fmt.Errorf("invalid safetensors header: tensor %q appears twice", name)
		}
		if len(sf.tensors) >= maxTensors {
			return nil, fmt.Errorf("invalid safetensors header: more than %d tensors", maxTensors)
		}
		var e headerEntry
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("invalid safetensors header JSON: it ends inside tensor %q", name)
			}
			return nil, fmt.Errorf("tensor %q: invalid header entry: %w", name, err)
		}
		t, err := checkEntry(name, e, dataLen)
		if err != nil {
			return nil, err
		}
		sf.tensors[name] = t
		sf.names = append(sf.names, name)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid safetensors header JSON: %w", err)
	}
	// The header may be padded (spaces per the format, NULs by some writers).
	if rest := bytes.Trim(hdr[dec.InputOffset():], " \t\r\n\x00"); len(rest) != 0 {
		return nil, fmt.Errorf("invalid safetensors header: %d unexpected bytes after the JSON object", len(rest))
	}
	sort.Strings(sf.names)
	if err := checkOverlaps(sf.tensors); err != nil {
		return nil, err
	}
	return sf, nil
}

func checkEntry(name string, e headerEntry, dataLen int64) (TensorInfo, error) {
	dt := DType(e.DType)
	if dt.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
	}
	if len(e.Offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets must have 2 entries, has %d", name, len(e.Offsets))
	}
	begin, end := e.Offsets[0], e.Offsets[1]
	if begin < 0 || end < begin || end > dataLen {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d,%d] outside the %d-byte data section (truncated or corrupt file)", name, begin, end, dataLen)
	}
	if e.Shape == nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: no shape", name)
	}
	if len(e.Shape) > maxRank {
		return TensorInfo{}, fmt.Errorf("tensor %q: rank %d is not plausible", name, len(e.Shape))
	}
	n := int64(1)
	shape := make([]int, len(e.Shape))
	for i, d := range e.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt64/8/d) {
			return TensorInfo{}, fmt.Errorf("tensor %q: invalid shape %v", name, e.Shape)
		}
		n *= d
		shape[i] = int(d)
	}
	if need := n * int64(dt.Size()); need != end-begin {
		return TensorInfo{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets span %d (corrupt header)", name, e.Shape, dt, need, end-begin)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, Begin: begin, End: end}, nil
}

// checkOverlaps refuses two tensors sharing bytes. Empty tensors own no bytes.
func checkOverlaps(tensors map[string]TensorInfo) error {
	byOff := make([]TensorInfo, 0, len(tensors))
	for _, t := range tensors {
		if t.End > t.Begin {
			byOff = append(byOff, t)
		}
	}
	sort.Slice(byOff, func(i, j int) bool { return byOff[i].Begin < byOff[j].Begin })
	for i := 1; i < len(byOff); i++ {
		if byOff[i].Begin < byOff[i-1].End {
			a, b := byOff[i-1].Name, byOff[i].Name
			if a > b {
				a, b = b, a
			}
			return fmt.Errorf("tensors %q and %q overlap in the data section (corrupt file)", a, b)
		}
	}
	return nil
}

// Close releases the file.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer, f.r = nil, nil
	return err
}

// Names lists tensor names in sorted order.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info returns a tensor's description.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

func (f *File) lookup(name string) (TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return t, fmt.Errorf("%s: no tensor named %q", f.Path, name)
	}
	if f.r == nil {
		return t, fmt.Errorf("%s: file is closed", f.Path)
	}
	return t, nil
}

// Raw reads a tensor's bytes.
func (f *File) Raw(name string) ([]byte, TensorInfo, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, t, err
	}
	buf := make([]byte, t.End-t.Begin)
	if err := f.readAt(buf, t.Begin, name); err != nil {
		return nil, t, err
	}
	return buf, t, nil
}

func (f *File) readAt(buf []byte, off int64, name string) error {
	if _, err := f.r.ReadAt(buf, f.dataStart+off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file ends early (truncated since it was opened?): %w", err)
		}
		return fmt.Errorf("%s: reading tensor %q: %w", f.Path, name, err)
	}
	return nil
}

// Float32 reads a floating-point tensor converted to float32, with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := f.float32Range(t, 0, t.NumElements())
	if err != nil {
		return nil, nil, err
	}
	return out, t.Shape, nil
}

// readChunk bounds the staging buffer of float reads, so converting a tensor
// costs its float32 result plus at most this many bytes.
const readChunk = 1 << 20

// float32Range reads elements [lo, hi) of a tensor (in row-major order)
// converted to float32.
func (f *File) float32Range(t TensorInfo, lo, hi int) ([]float32, error) {
	if !t.DType.IsFloat() {
		return nil, fmt.Errorf("%s: tensor %q has dtype %s, want a floating-point type", f.Path, t.Name, t.DType)
	}
	if lo < 0 || hi < lo || hi > t.NumElements() {
		return nil, fmt.Errorf("%s: tensor %q: element range [%d,%d) outside its %d elements", f.Path, t.Name, lo, hi, t.NumElements())
	}
	out := make([]float32, hi-lo)
	return out, f.float32RangeInto(t, lo, out)
}

// float32RangeInto converts len(out) elements of t from element lo on into
// out.
func (f *File) float32RangeInto(t TensorInfo, lo int, out []float32) error {
	sz := t.DType.Size()
	per := readChunk / sz
	buf := make([]byte, min(len(out), per)*sz)
	for done := 0; done < len(out); {
		n := min(len(out)-done, per)
		b := buf[:n*sz]
		if err := f.readAt(b, t.Begin+int64(lo+done)*int64(sz), t.Name); err != nil {
			return err
		}
		if err := convertFloat32(out[done:done+n], b, t.DType); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", f.Path, t.Name, err)
		}
		done += n
	}
	return nil
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
	case "I16":
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(buf[2*i:])))
		}
	case "I8":
		for i := range out {
			out[i] = int64(int8(buf[i]))
		}
	case "U8", "BOOL":
		for i := range out {
			out[i] = int64(buf[i])
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
	out := make([]float32, len(buf)/sz)
	if err := convertFloat32(out, buf, dt); err != nil {
		return nil, err
	}
	return out, nil
}

// convertFloat32 fills dst from len(dst) elements of raw data.
func convertFloat32(dst []float32, buf []byte, dt DType) error {
	switch dt {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case "F16":
		for i := range dst {
			dst[i] = HalfToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	case "BF16":
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	case "F64":
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
		}
	case "F8_E4M3":
		for i := range dst {
			dst[i] = f8e4m3ToFloat32(buf[i])
		}
	case "F8_E5M2":
		for i := range dst {
			dst[i] = f8e5m2ToFloat32(buf[i])
		}
	default:
		return fmt.Errorf("dtype %s is not a floating-point type", dt)
	}
	return nil
}

// String summarises the file for logs.
func (f *File) String() string {
	return fmt.Sprintf("%s: %d tensors", f.Path, len(f.names))
}
