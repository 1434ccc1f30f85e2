package nn

import (
	"github.com/gomlx/gomlx/pkg/core/tensors"
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

// Values copies a float32 tensor's values out.
func Values(t *tensors.Tensor) []float32 {
	return tensors.MustCopyFlatData[float32](t)
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
