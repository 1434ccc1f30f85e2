package simplegofast

import (
	"math"
	"math/rand/v2"
	"testing"
)

func ulpDiff(a, b float32) int64 {
	if a == b {
		return 0
	}
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

// TestExpAccuracy compares expf32 and the vector kernel with
// float32(math.Exp(float64(x))) over [-110, 95] (every float32 in a dense
// sweep plus random values) and on special values.
func TestExpAccuracy(t *testing.T) {
	var xs []float32
	for x := float32(-110); x <= 95; x += 0.000731 {
		xs = append(xs, x)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		xs = append(xs, float32(r.Float64()*2-1)*float32(math.Pow(10, r.Float64()*3-2)))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 88.72283, 88.72284, -87.33654, -103.27893, -103.97208, -104, 89, 1e30, -1e30,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32)
	got := make([]float32, len(xs))
	expFloat32(got, xs)
	var maxUlp int64
	var maxRel float64
	var worst float32
	for i, x := range xs {
		want := float32(math.Exp(float64(x)))
		for _, g := range []float32{got[i], expf32(x)} {
			if math.IsInf(float64(want), 0) || want == 0 {
				if g != want {
					t.Fatalf("exp(%g) = %g, want %g", x, g, want)
				}
				continue
			}
			u := ulpDiff(g, want)
			if want >= math.SmallestNonzeroFloat32*(1<<23) && u > maxUlp { // normal results
				maxUlp, worst = u, x
			}
			if rel := math.Abs(float64(g)-float64(want)) / float64(want); want >= 0x1p-126 && rel > maxRel {
				maxRel = rel
			}
			if want < 0x1p-126 && math.Abs(float64(g)-float64(want)) > 2*math.SmallestNonzeroFloat32 {
				t.Fatalf("denormal exp(%g) = %g, want %g", x, g, want)
			}
		}
	}
	nan := []float32{float32(math.NaN())}
	expFloat32(nan, nan)
	if nan[0] == nan[0] || expf32(float32(math.NaN())) == expf32(float32(math.NaN())) {
		t.Fatal("exp(NaN) is not NaN")
	}
	t.Logf("exp over %d values: max %d ulp (at x=%g), max relative error %.3g", len(xs), maxUlp, worst, maxRel)
	if maxUlp > 2 {
		t.Fatalf("max error %d ulp at %g", maxUlp, worst)
	}
}
