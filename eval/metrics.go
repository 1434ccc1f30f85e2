package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Gaussian is the mean and covariance (unbiased, n−1) of a feature set.
type Gaussian struct {
	Dim  int
	N    int
	Mean []float64
	Cov  []float64 // Dim×Dim, row-major
}

// Fit computes the mean and covariance of feats (N rows of equal length).
func Fit(feats [][]float64) (Gaussian, error) {
	if len(feats) < 2 {
		return Gaussian{}, fmt.Errorf("eval: need at least 2 feature vectors, got %d", len(feats))
	}
	d := len(feats[0])
	g := Gaussian{Dim: d, N: len(feats), Mean: make([]float64, d), Cov: make([]float64, d*d)}
	for _, f := range feats {
		if len(f) != d {
			return Gaussian{}, fmt.Errorf("eval: feature vectors of lengths %d and %d", d, len(f))
		}
		for i, x := range f {
			g.Mean[i] += x
		}
	}
	for i := range g.Mean {
		g.Mean[i] /= float64(len(feats))
	}
	c := make([]float64, d)
	for _, f := range feats {
		for i := range d {
			c[i] = f[i] - g.Mean[i]
		}
		for i := range d {
			for j := i; j < d; j++ {
				g.Cov[i*d+j] += c[i] * c[j]
			}
		}
	}
	for i := range d {
		for j := i; j < d; j++ {
			g.Cov[i*d+j] /= float64(len(feats) - 1)
			g.Cov[j*d+i] = g.Cov[i*d+j]
		}
	}
	return g, nil
}

// FrechetDistance is the Fréchet (2-Wasserstein) distance between two
// Gaussians, ‖μ₁−μ₂‖² + tr C₁ + tr C₂ − 2 tr (C₁^½ C₂ C₁^½)^½ — the FID
// formula (Heusel et al. 2017) in whatever feature space a and b come from.
// The symmetric form keeps every square root on a PSD matrix.
func FrechetDistance(a, b Gaussian) (float64, error) {
	if a.Dim != b.Dim {
		return 0, fmt.Errorf("eval: feature dimensions %d and %d differ", a.Dim, b.Dim)
	}
	n := a.Dim
	d := 0.0
	for i := range n {
		d += (a.Mean[i] - b.Mean[i]) * (a.Mean[i] - b.Mean[i])
		d += a.Cov[i*n+i] + b.Cov[i*n+i]
	}
	s, err := SqrtPSD(a.Cov, n)
	if err != nil {
		return 0, err
	}
	m := matMul(matMul(s, b.Cov, n), s, n)
	for i := range n { // symmetrise away rounding
		for j := i + 1; j < n; j++ {
			x := (m[i*n+j] + m[j*n+i]) / 2
			m[i*n+j], m[j*n+i] = x, x
		}
	}
	vals, _, err := SymEig(m, n)
	if err != nil {
		return 0, err
	}
	for _, v := range vals {
		d -= 2 * math.Sqrt(math.Max(v, 0))
	}
	return math.Max(d, 0), nil
}

// FD fits both feature sets and returns their Fréchet distance.
func FD(real, fake [][]float64) (float64, error) {
	a, err := Fit(real)
	if err != nil {
		return 0, err
	}
	b, err := Fit(fake)
	if err != nil {
		return 0, err
	}
	return FrechetDistance(a, b)
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// KID is the kernel inception distance (Bińkowski et al. 2018): the
// unbiased estimate of MMD² with the cubic polynomial kernel
// k(x,y) = (x·y/d + 1)³, over all of both sets.
func KID(real, fake [][]float64) (float64, error) {
	m, n := len(real), len(fake)
	if m < 2 || n < 2 {
		return 0, errors.New("eval: KID needs at least 2 vectors per set")
	}
	d := float64(len(real[0]))
	k := func(x, y []float64) float64 { v := dot(x, y)/d + 1; return v * v * v }
	var xx, yy, xy float64
	for i := range m {
		for j := range m {
			if i != j {
				xx += k(real[i], real[j])
			}
		}
	}
	for i := range n {
		for j := range n {
			if i != j {
				yy += k(fake[i], fake[j])
			}
		}
	}
	for i := range m {
		for j := range n {
			xy += k(real[i], fake[j])
		}
	}
	return xx/float64(m*(m-1)) + yy/float64(n*(n-1)) - 2*xy/float64(m*n), nil
}

func dist2(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// kthRadii is, for each vector, the squared distance to its k-th nearest
// neighbour in the same set (itself excluded).
func kthRadii(x [][]float64, k int) []float64 {
	r := make([]float64, len(x))
	ds := make([]float64, 0, len(x))
	for i := range x {
		ds = ds[:0]
		for j := range x {
			if i != j {
				ds = append(ds, dist2(x[i], x[j]))
			}
		}
		sort.Float64s(ds)
		r[i] = ds[min(k, len(ds))-1]
	}
	return r
}

// coverage is the fraction of q inside at least one ball of the manifold
// (centres x, squared radii r).
func coverage(x [][]float64, r []float64, q [][]float64) float64 {
	in := 0
	for _, p := range q {
		for i := range x {
			if dist2(p, x[i]) <= r[i] {
				in++
				break
			}
		}
	}
	return float64(in) / float64(len(q))
}

// PrecisionRecall is the improved precision and recall of Kynkäänniemi et
// al. (2019): each set's manifold is the union of balls reaching every
// vector's k-th nearest neighbour; precision is the fraction of fake vectors
// inside the real manifold, recall the fraction of real vectors inside the
// fake one. The paper uses k = 3.
func PrecisionRecall(real, fake [][]float64, k int) (precision, recall float64, err error) {
	if k < 1 || len(real) <= k || len(fake) <= k {
		return 0, 0, fmt.Errorf("eval: precision/recall with k=%d needs more than k vectors per set (have %d, %d)", k, len(real), len(fake))
	}
	precision = coverage(real, kthRadii(real, k), fake)
	recall = coverage(fake, kthRadii(fake, k), real)
	return precision, recall, nil
}

// ROCAUC is the area under the ROC curve of a score that should be higher
// for positives: the probability that a random positive outscores a random
// negative, ties counting ½ (the Mann–Whitney U statistic).
func ROCAUC(negatives, positives []float64) (float64, error) {
	if len(negatives) == 0 || len(positives) == 0 {
		return 0, errors.New("eval: ROC-AUC needs both negatives and positives")
	}
	type s struct {
		v   float64
		pos bool
	}
	all := make([]s, 0, len(negatives)+len(positives))
	for _, v := range negatives {
		all = append(all, s{v, false})
	}
	for _, v := range positives {
		all = append(all, s{v, true})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Mid-ranks (1-based) of tied groups.
	rankSum := 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += mid
			}
		}
		i = j
	}
	np, nn := float64(len(positives)), float64(len(negatives))
	return (rankSum - np*(np+1)/2) / (np * nn), nil
}

// Threshold returns the score above which a value is flagged: the q-quantile
// (0 < q < 1) of held-out in-distribution scores, so that a fraction 1−q of
// normal data is flagged.
func Threshold(scores []float64, q float64) float64 {
	s := append([]float64(nil), scores...)
	sort.Float64s(s)
	if len(s) == 0 {
		return math.Inf(1)
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Perplexity is exp(entropy) of the usage counts: K when K codes are used
// equally, 1 when one code takes everything.
func Perplexity(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(total)
			h -= p * math.Log(p)
		}
	}
	return math.Exp(h)
}

// MeanPairwiseDistance is the mean Euclidean distance between distinct
// vectors: a sample-diversity signal (it falls towards 0 under mode collapse).
func MeanPairwiseDistance(x [][]float64) float64 {
	if len(x) < 2 {
		return 0
	}
	s, n := 0.0, 0
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			s += math.Sqrt(dist2(x[i], x[j]))
			n++
		}
	}
	return s / float64(n)
}

// BitsPerDim converts a negative log-likelihood (bound) in nats per image of
// dims continuous values in [-1,1] to bits per dimension of 8-bit data: the
// density is turned into the probability of a bin of width 2/255, adding
// ln 127.5 nats per dimension (the convention of Ho et al. 2020 and
// Kingma et al. 2016 for data scaled to [-1,1]).
func BitsPerDim(natsPerImage float64, dims int) float64 {
	return (natsPerImage/float64(dims) + math.Log(127.5)) / math.Ln2
}
