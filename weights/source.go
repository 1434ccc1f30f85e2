package weights

import (
	"fmt"
	"slices"
	"sort"
)

// Source is one component's tensors under diffusers keys. The model packages
// copy tensors into their variables one at a time through it, so loading
// costs the float32 model plus one tensor.
type Source interface {
	// Keys lists the diffusers keys, sorted.
	Keys() []string
	// Info gives a tensor's stored dtype and its diffusers shape (after any
	// layout conversion, e.g. [C,C,1,1] → [C,C]).
	Info(key string) (dtype DType, shape []int, ok bool)
	// Float32 reads one tensor converted to float32, in its diffusers shape.
	Float32(key string) ([]float32, []int, error)
}

// tensorRef locates a diffusers tensor in a file: a whole tensor or a part of
// a fused one.
type tensorRef struct {
	file  *File
	name  string
	part  Part
	dtype DType
	shape []int // diffusers shape
}

// fileSource serves a component from one or more safetensors files.
type fileSource struct {
	keys []string
	refs map[string]tensorRef
	// keep16: serve float tensors in 16 bits (nn.HalfSource), see WeightsF16.
	keep16 bool
}

func newFileSource() *fileSource { return &fileSource{refs: map[string]tensorRef{}} }

// add registers a tensor; it reports false when the key is already taken.
func (s *fileSource) add(key string, r tensorRef) bool {
	if _, dup := s.refs[key]; dup {
		return false
	}
	s.refs[key] = r
	s.keys = append(s.keys, key)
	return true
}

func (s *fileSource) finish() { sort.Strings(s.keys) }

func (s *fileSource) Keys() []string { return slices.Clone(s.keys) }

func (s *fileSource) Info(key string) (DType, []int, bool) {
	r, ok := s.refs[key]
	if !ok {
		return "", nil, false
	}
	return r.dtype, slices.Clone(r.shape), true
}

func (s *fileSource) Float32(key string) ([]float32, []int, error) {
	r, ok := s.refs[key]
	if !ok {
		return nil, nil, fmt.Errorf("no tensor for key %q", key)
	}
	t, _ := r.file.Info(r.name)
	n := t.NumElements() / r.part.Of
	data, err := r.file.float32Range(t, r.part.Index*n, (r.part.Index+1)*n)
	if err != nil {
		return nil, nil, err
	}
	return data, slices.Clone(r.shape), nil
}

// Float32Shape is a tensor's diffusers shape (nn.IntoSource).
func (s *fileSource) Float32Shape(key string) ([]int, bool) {
	r, ok := s.refs[key]
	if !ok {
		return nil, false
	}
	return slices.Clone(r.shape), true
}

// Float32Into converts a tensor straight into dst, which must hold exactly
// its elements (nn.IntoSource): loading then needs no second copy.
func (s *fileSource) Float32Into(key string, dst []float32) error {
	r, ok := s.refs[key]
	if !ok {
		return fmt.Errorf("no tensor for key %q", key)
	}
	t, _ := r.file.Info(r.name)
	n := t.NumElements() / r.part.Of
	if len(dst) != n {
		return fmt.Errorf("tensor %q has %d elements, the buffer %d", key, n, len(dst))
	}
	return r.file.float32RangeInto(t, r.part.Index*n, dst)
}

// CountParameters returns the number of elements over all tensors of src.
func CountParameters(src Source) int64 {
	var n int64
	for _, k := range src.Keys() {
		_, shape, _ := src.Info(k)
		p := int64(1)
		for _, d := range shape {
			p *= int64(d)
		}
		n += p
	}
	return n
}
