package eval

import (
	"math"
	"sort"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", name, got, want, tol)
	}
}

func TestSymEigAndSqrtPSD(t *testing.T) {
	vals, _, err := SymEig([]float64{2, 1, 1, 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	sort.Float64s(vals)
	near(t, "λ0", vals[0], 1, 1e-12)
	near(t, "λ1", vals[1], 3, 1e-12)
	// [[2,1],[1,2]]² = [[5,4],[4,5]].
	s, err := SqrtPSD([]float64{5, 4, 4, 5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{2, 1, 1, 2} {
		near(t, "sqrt", s[i], want, 1e-12)
	}
	// A random 6×6 PSD matrix: sqrt(A)² == A.
	n := 6
	b := make([]float64, n*n)
	for i := range b {
		b[i] = math.Sin(float64(i*7 + 1))
	}
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			for k := range n {
				a[i*n+j] += b[i*n+k] * b[j*n+k]
			}
		}
	}
	s, err = SqrtPSD(a, n)
	if err != nil {
		t.Fatal(err)
	}
	s2 := matMul(s, s, n)
	for i := range a {
		near(t, "sqrt²", s2[i], a[i], 1e-9)
	}
}

func TestFrechetDistanceClosedForms(t *testing.T) {
	diag := func(m []float64, d ...float64) Gaussian {
		n := len(d)
		c := make([]float64, n*n)
		for i, v := range d {
			c[i*n+i] = v
		}
		return Gaussian{Dim: n, Mean: m, Cov: c}
	}
	for _, tc := range []struct {
		name string
		a, b Gaussian
		want float64
	}{
		{"same", diag([]float64{1, 2}, 4, 9), diag([]float64{1, 2}, 4, 9), 0},
		// Commuting covariances: ‖Δμ‖² + Σ(σ₁−σ₂)² = 1+4 + 1+4.
		{"diagonal", diag([]float64{0, 0}, 4, 9), diag([]float64{1, 2}, 1, 1), 10},
		// C₁ = [[2,1],[1,2]] (eigenvalues 1, 3), C₂ = I: 4 + 2 − 2(1+√3).
		{"rotated", Gaussian{Dim: 2, Mean: []float64{0, 0}, Cov: []float64{2, 1, 1, 2}}, diag([]float64{0, 0}, 1, 1), 6 - 2*(1+math.Sqrt(3))},
	} {
		got, err := FrechetDistance(tc.a, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		near(t, tc.name, got, tc.want, 1e-9)
	}
}

func TestFitMeanAndUnbiasedCovariance(t *testing.T) {
	g, err := Fit([][]float64{{0, 0}, {2, 0}, {0, 2}, {2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{1, 1} {
		near(t, "mean", g.Mean[i], want, 1e-12)
	}
	for i, want := range []float64{4.0 / 3, 0, 0, 4.0 / 3} {
		near(t, "cov", g.Cov[i], want, 1e-12)
	}
}

func TestKIDHandComputed(t *testing.T) {
	// d = 1, k(x,y) = (xy+1)³: XX = k(0,1) = 1, YY = k(0,2) = 1,
	// XY = (1+1+1+27)/4 = 7.5, so MMD² = 1 + 1 − 15.
	got, err := KID([][]float64{{0}, {1}}, [][]float64{{0}, {2}})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "KID", got, -13, 1e-12)
}

func TestPrecisionRecallHandComputed(t *testing.T) {
	real := [][]float64{{0}, {1}, {2}, {3}}
	fake := [][]float64{{0.5}, {10}}
	p, r, err := PrecisionRecall(real, fake, 1)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "precision", p, 0.5, 0) // 0.5 is inside a real ball, 10 is not
	near(t, "recall", r, 1, 0)      // the fake balls have radius 9.5
}

func TestROCAUC(t *testing.T) {
	for _, tc := range []struct {
		neg, pos []float64
		want     float64
	}{
		{[]float64{1, 2}, []float64{3, 4}, 1},
		{[]float64{3, 4}, []float64{1, 2}, 0},
		{[]float64{1, 3}, []float64{2, 4}, 0.75},
		{[]float64{1}, []float64{1}, 0.5},
		// pos 2 beats 1 and ties 2 twice (1 + ½ + ½), pos 3 beats all three.
		{[]float64{1, 2, 2}, []float64{2, 3}, 5.0 / 6},
	} {
		got, err := ROCAUC(tc.neg, tc.pos)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "AUC", got, tc.want, 1e-12)
	}
}

func TestPerplexityDiversityThreshold(t *testing.T) {
	near(t, "uniform", Perplexity([]int{5, 5, 5, 5}), 4, 1e-12)
	near(t, "one code", Perplexity([]int{10, 0, 0}), 1, 1e-12)
	near(t, "pairwise", MeanPairwiseDistance([][]float64{{0, 0}, {3, 4}, {0, 0}}), 10.0/3, 1e-12)
	near(t, "threshold", Threshold([]float64{5, 1, 4, 2, 3}, 0.8), 4, 0)
}

func TestBitsPerDim(t *testing.T) {
	const d = 3 * 8 * 8
	near(t, "bin-width offset", BitsPerDim(-d*math.Log(127.5), d), 0, 1e-12)
	near(t, "one bit", BitsPerDim(d*(math.Ln2-math.Log(127.5)), d), 1, 1e-12)
}

func TestPSNRAndSSIM(t *testing.T) {
	const c, h, w = 3, 16, 16
	zero := make([]float32, c*h*w)
	off := make([]float32, c*h*w)
	black := make([]float32, c*h*w)
	for i := range off {
		off[i] = 0.2
		black[i] = -1
	}
	near(t, "PSNR", PSNR(zero, off), 20, 1e-5) // MSE 0.04, peak² 4
	s, err := SSIM(zero, zero, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "SSIM identical", s, 1, 1e-12)
	// Constant images 0.5 and 0 (in [0,1]): C1/(0.25+C1), the contrast
	// term is C2/C2.
	s, err = SSIM(zero, black, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "SSIM constant", s, ssimC1/(0.25+ssimC1), 1e-12)
}
