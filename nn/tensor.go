package nn

import (
	"math"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// MapSource is an in-memory Source, for tests and for models built in code.
type MapSource map[string]struct {
	Data  []float32
	Shape []int
}

// Keys lists the keys (unsorted order is fine for Load).
func (m MapSource) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// Float32 returns a tensor's values and shape.
func (m MapSource) Float32(key string) ([]float32, []int, error) {
	v := m[key]
	return v.Data, v.Shape, nil
}

// Values copies a float32 tensor's values out; a weight kept in its stored
// 16-bit dtype (a Uint16 tensor of float16 bits, or bfloat16; see Param)
// comes out decoded.
func Values(t *tensors.Tensor) []float32 {
	switch t.DType() {
	case dtypes.Uint16:
		bits := tensors.MustCopyFlatData[uint16](t)
		tab := simplegofast.HalfTable()
		out := make([]float32, len(bits))
		for i, b := range bits {
			out[i] = tab[b]
		}
		return out
	case dtypes.BFloat16:
		bits := tensors.MustCopyFlatData[bfloat16.BFloat16](t)
		out := make([]float32, len(bits))
		for i, b := range bits {
			out[i] = b.Float32()
		}
		return out
	}
	return tensors.MustCopyFlatData[float32](t)
}

// FromValues is a tensor of the given shape holding vals, in the shape's
// dtype: float32, or a weight kept in 16 bits (Uint16 float16 bits,
// BFloat16), rounded to nearest even. Setting a variable with it keeps its
// dtype, so compiled graphs stay valid (LoRA merges).
func FromValues(s shapes.Shape, vals []float32) *tensors.Tensor {
	switch s.DType {
	case dtypes.Uint16:
		bits := make([]uint16, len(vals))
		for i, v := range vals {
			bits[i] = float32ToHalf(v)
		}
		return tensors.FromFlatDataAndDimensions(bits, s.Dimensions...)
	case dtypes.BFloat16:
		bits := make([]bfloat16.BFloat16, len(vals))
		for i, v := range vals {
			bits[i] = bfloat16.FromFloat32(v)
		}
		return tensors.FromFlatDataAndDimensions(bits, s.Dimensions...)
	}
	return tensors.FromFlatDataAndDimensions(slices.Clone(vals), s.Dimensions...)
}

// float32ToHalf rounds to IEEE binary16, nearest even (±Inf beyond the
// range, subnormals below it, NaN kept NaN).
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem, halfway := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > halfway || (rem == halfway && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// NCHWToNHWC reorders a flat [B,C,H,W] array to [B,H,W,C].
func NCHWToNHWC(x []float32, b, c, h, w int) []float32 {
	out := make([]float32, len(x))
	for n := 0; n < b; n++ {
		for ch := 0; ch < c; ch++ {
			for i := 0; i < h*w; i++ {
				out[(n*h*w+i)*c+ch] = x[(n*c+ch)*h*w+i]
			}
		}
	}
	return out
}

// NHWCToNCHW reorders a flat [B,H,W,C] array to [B,C,H,W].
func NHWCToNCHW(x []float32, b, h, w, c int) []float32 {
	out := make([]float32, len(x))
	for n := 0; n < b; n++ {
		for ch := 0; ch < c; ch++ {
			for i := 0; i < h*w; i++ {
				out[(n*c+ch)*h*w+i] = x[(n*h*w+i)*c+ch]
			}
		}
	}
	return out
}
