package weights

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
)

// Weight dtypes for OpenOptions.WeightsDType (ldm's --weights-dtype).
const (
	WeightsF32 = "f32"
	WeightsF16 = "f16"
)

// EnvWeightsDType gives the default OpenOptions.WeightsDType.
const EnvWeightsDType = "LDM_WEIGHTS_DTYPE"

// keepHalf resolves a WeightsDType (or its default) to "keep 16 bits".
func keepHalf(dt string) (bool, error) {
	from := "--weights-dtype"
	if dt == "" {
		dt, from = os.Getenv(EnvWeightsDType), EnvWeightsDType
	}
	switch dt {
	case "", WeightsF32:
		return false, nil
	case WeightsF16:
		return true, nil
	}
	return false, fmt.Errorf("%s %q: want %s or %s", from, dt, WeightsF32, WeightsF16)
}

// keepHalf makes every component's tensors load in 16 bits.
func (m *Model) keepHalf() {
	for _, c := range m.Components {
		if c == nil {
			continue
		}
		if fs, ok := c.Source.(*fileSource); ok {
			fs.keep16 = true
		}
	}
}

// StoredHalf is nn.HalfSource: with 16-bit weights asked for, a float16 or
// bfloat16 tensor is served as stored, any other float tensor as float16.
func (s *fileSource) StoredHalf(key string) (string, []int, bool) {
	r, ok := s.refs[key]
	if !ok || !s.keep16 || !r.dtype.IsFloat() {
		return "", nil, false
	}
	dt := F16
	if r.dtype == BF16 {
		dt = BF16
	}
	return string(dt), slices.Clone(r.shape), true
}

// HalfInto copies (F16, BF16) or converts to float16 (other float dtypes)
// the tensor into dst, two little-endian bytes per element (nn.HalfSource).
func (s *fileSource) HalfInto(key string, dst []byte) error {
	r, ok := s.refs[key]
	if !ok {
		return fmt.Errorf("no tensor for key %q", key)
	}
	t, _ := r.file.Info(r.name)
	n := t.NumElements() / r.part.Of
	if len(dst) != 2*n {
		return fmt.Errorf("tensor %q has %d elements, the buffer %d bytes", key, n, len(dst))
	}
	lo := r.part.Index * n
	if _, err := r.file.lookup(r.name); err != nil {
		return err
	}
	if t.DType == F16 || t.DType == BF16 {
		return r.file.readAt(dst, t.Begin+int64(lo)*2, t.Name)
	}
	tmp := make([]float32, min(n, readChunk/4))
	for done := 0; done < n; done += len(tmp) {
		c := tmp[:min(len(tmp), n-done)]
		if err := r.file.float32RangeInto(t, lo+done, c); err != nil {
			return err
		}
		for i, v := range c {
			binary.LittleEndian.PutUint16(dst[2*(done+i):], Float32ToHalf(v))
		}
	}
	return nil
}
