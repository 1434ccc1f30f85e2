package nn

import (
	"math"
	"math/rand/v2"
	"slices"
)

// RandomSource returns a Source of fresh random weights for the given keys and
// shapes: matrices and kernels uniform in ±1/√fan_in (PyTorch's default
// bound), norm scales ("weight" vectors) 1, other vectors 0. Each tensor is
// drawn when it is read, from a stream keyed by (seed, key), so initialising a
// full-size model holds one tensor at a time besides the variables, and the
// same seed gives the same weights.
func RandomSource(shapes map[string][]int, seed uint64) Source {
	return randomSource{shapes: shapes, seed: seed}
}

type randomSource struct {
	shapes map[string][]int
	seed   uint64
}

func (r randomSource) Keys() []string {
	keys := make([]string, 0, len(r.shapes))
	for k := range r.shapes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (r randomSource) Float32(key string) ([]float32, []int, error) {
	dims := r.shapes[key]
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	_, name := KeyToScope(key)
	switch {
	case len(dims) >= 2:
		bound := 1 / math.Sqrt(float64(n/dims[0]))
		var h uint64
		for _, ch := range key {
			h = h*1099511628211 + uint64(ch)
		}
		rng := rand.New(rand.NewPCG(r.seed, h))
		for i := range data {
			data[i] = float32((2*rng.Float64() - 1) * bound)
		}
	case name == "weight": // GroupNorm / LayerNorm scale
		for i := range data {
			data[i] = 1
		}
	}
	return data, dims, nil
}
