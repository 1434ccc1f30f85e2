package simplegofast

import (
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkKernels times the float32 kernels on 1 Mi L2-sized... values
// (ns per element: divide ns/op by 1<<16).
func BenchmarkKernels(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]float32, len(x))
	b.Run("erf", func(b *testing.B) {
		for b.Loop() {
			erfFloat32(y, x)
		}
	})
	b.Run("erf_math", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				y[i] = float32(math.Erf(float64(v)))
			}
		}
	})
	b.Run("exp", func(b *testing.B) {
		for b.Loop() {
			expFloat32(y, x)
		}
	})
	b.Run("exp_math", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				y[i] = float32(math.Exp(float64(v)))
			}
		}
	})
	b.Run("logistic", func(b *testing.B) {
		for b.Loop() {
			logisticFloat32(y, x)
		}
	})
}
