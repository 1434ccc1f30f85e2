package simplegofast

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowKernels checks the vector row kernels against scalar Go, bit for
// bit, on all lengths up to 100 with NaNs, infinities and signed zeros.
func TestRowKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40}
	gen := func(n int, special bool) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
			if special && r.IntN(8) == 0 {
				x[i] = specials[r.IntN(len(specials))]
			}
		}
		return x
	}
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	for n := 0; n <= 100; n++ {
		for trial := range 20 {
			special := trial%2 == 1
			a, b := gen(n, special), gen(n, special)
			if trial == 2 { // all zeros of both signs
				for i := range a {
					a[i] = specials[i%2]
				}
			}
			got, want := make([]float32, n), make([]float32, n)
			divVV(got, a, b)
			for i := range want {
				want[i] = a[i] / b[i]
			}
			for i := range want {
				if !same(got[i], want[i]) {
					t.Fatalf("divVV n=%d i=%d: %g, want %g", n, i, got[i], want[i])
				}
			}
			v := []float32{3}
			if n > 0 {
				v = b[:1]
			}
			divVS(got, a, v[0])
			for i := range want {
				want[i] = a[i] / v[0]
				if !same(got[i], want[i]) {
					t.Fatalf("divVS n=%d i=%d: %g, want %g", n, i, got[i], want[i])
				}
			}
			for _, init := range []float32{float32(math.Inf(-1)), -math.MaxFloat32, 0} {
				if g, w := maxRow(a, init), maxRowGo(a, init); !same(g, w) {
					t.Fatalf("maxRow n=%d init=%g %v: %g, want %g", n, init, a, g, w)
				}
			}
		}
	}
}
