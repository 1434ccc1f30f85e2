package simplegofast

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestErfAccuracy compares erfFloat32 with float32(math.Erf(float64(x))).
func TestErfAccuracy(t *testing.T) {
	var xs []float32
	for x := float32(-6); x <= 6; x += 0.0001237 {
		xs = append(xs, x)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		xs = append(xs, float32(r.NormFloat64()*math.Pow(10, r.Float64()*8-6)))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1, -1, 4, -4, 3.9999, 1e-30, -1e-30, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32)
	got := make([]float32, len(xs))
	erfFloat32(got, xs)
	var maxUlp int64
	var worst float32
	for i, x := range xs {
		want := float32(math.Erf(float64(x)))
		if math.Signbit(float64(got[i])) != math.Signbit(float64(want)) {
			t.Fatalf("erf(%g) = %g, want %g", x, got[i], want)
		}
		if u := ulpDiff(got[i], want); u > maxUlp {
			maxUlp, worst = u, x
		}
	}
	nan := []float32{float32(math.NaN())}
	erfFloat32(nan, nan)
	if nan[0] == nan[0] {
		t.Fatal("erf(NaN) is not NaN")
	}
	t.Logf("erf over %d values: max %d ulp (at x=%g)", len(xs), maxUlp, worst)
	if maxUlp > 2 {
		t.Fatalf("max error %d ulp at %g", maxUlp, worst)
	}
}
