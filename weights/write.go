package weights

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// WriteTensor is one tensor for WriteFile. Its values come from Float32 or
// Int64, or lazily from Load, which WriteFile calls once, in name order, so a
// large file is written holding one tensor at a time.
type WriteTensor struct {
	Name  string
	DType DType // F32, F16 or BF16 for float values (rounded to nearest even); I64 for Int64 values
	Shape []int

	Float32 []float32
	Int64   []int64
	Load    func() ([]float32, error)
}

func (t *WriteTensor) numElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// WriteFile writes a safetensors file atomically: a temporary file in the same
// folder, fsync, rename over path, fsync of the folder. Tensors are sorted by
// name and the header is space-padded to a multiple of 8 bytes. A failed or
// killed write leaves no partial file at path.
func WriteFile(path string, tensors []WriteTensor, metadata map[string]string) error {
	ts := make([]*WriteTensor, len(tensors))
	for i := range tensors {
		ts[i] = &tensors[i]
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	hdr, err := buildHeader(ts, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
		if _, err := w.Write(lenBuf[:]); err != nil {
			return err
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		for _, t := range ts {
			if err := writeTensorData(w, t); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		return nil
	})
}

func buildHeader(ts []*WriteTensor, metadata map[string]string) ([]byte, error) {
	type entry struct {
		DType   DType   `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	hdr := make(map[string]any, len(ts)+1)
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for i, t := range ts {
		if t.Name == "__metadata__" {
			return nil, fmt.Errorf("a tensor cannot be named __metadata__")
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return nil, fmt.Errorf("tensor %q given twice", t.Name)
		}
		switch t.DType {
		case F32, F16, BF16:
			if t.Int64 != nil {
				return nil, fmt.Errorf("tensor %q: int64 values cannot be written as %s", t.Name, t.DType)
			}
		case I64:
			if t.Int64 == nil {
				return nil, fmt.Errorf("tensor %q: I64 needs Int64 values", t.Name)
			}
		default:
			return nil, fmt.Errorf("tensor %q: cannot write dtype %q (F32, F16, BF16 or I64)", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		n := int64(t.numElements())
		if t.Load == nil {
			if got := int64(len(t.Float32) + len(t.Int64)); got != n {
				return nil, fmt.Errorf("tensor %q: shape %v needs %d values, got %d", t.Name, t.Shape, n, got)
			}
		}
		size := n * int64(t.DType.Size())
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[t.Name] = entry{DType: t.DType, Shape: shape, Offsets: []int64{off, off + size}}
		off += size
	}
	b, err := json.Marshal(hdr) // map keys are sorted, so the header is deterministic
	if err != nil {
		return nil, err
	}
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	return b, nil
}

func writeTensorData(w io.Writer, t *WriteTensor) error {
	if t.DType == I64 {
		buf := make([]byte, 8*len(t.Int64))
		for i, v := range t.Int64 {
			binary.LittleEndian.PutUint64(buf[8*i:], uint64(v))
		}
		_, err := w.Write(buf)
		return err
	}
	vals := t.Float32
	if t.Load != nil {
		v, err := t.Load()
		if err != nil {
			return err
		}
		if len(v) != t.numElements() {
			return fmt.Errorf("shape %v needs %d values, Load gave %d", t.Shape, t.numElements(), len(v))
		}
		vals = v
	}
	sz := t.DType.Size()
	buf := make([]byte, min(len(vals), readChunk/sz)*sz)
	for len(vals) > 0 {
		n := min(len(vals), len(buf)/sz)
		encodeFloat32(buf[:n*sz], vals[:n], t.DType)
		if _, err := w.Write(buf[:n*sz]); err != nil {
			return err
		}
		vals = vals[n:]
	}
	return nil
}

func encodeFloat32(dst []byte, src []float32, dt DType) {
	switch dt {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToHalf(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	}
}

// writeAtomic writes path through a temporary file in the same folder (so the
// rename cannot cross file systems), fsyncs it, renames it into place and
// fsyncs the folder so the rename itself survives a crash.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 4<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // best effort: not every file system supports syncing a folder
		d.Close()
	}
	return nil
}
