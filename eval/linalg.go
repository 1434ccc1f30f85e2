package eval

import (
	"fmt"
	"math"
)

// SymEig returns the eigenvalues and eigenvectors (columns of vecs, row-major
// n×n) of the symmetric n×n matrix a, by cyclic Jacobi rotations. a is not
// changed. Jacobi is slow (O(n³) per sweep) but unconditionally stable, which
// is what a metric over a few hundred feature dimensions needs.
func SymEig(a []float64, n int) (vals, vecs []float64, err error) {
	if len(a) != n*n {
		return nil, nil, fmt.Errorf("eval: matrix has %d values, want %d×%d", len(a), n, n)
	}
	m := append([]float64(nil), a...)
	v := make([]float64, n*n)
	for i := range n {
		v[i*n+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off, norm := 0.0, 0.0
		for i := range n {
			for j := range n {
				x := m[i*n+j] * m[i*n+j]
				norm += x
				if i != j {
					off += x
				}
			}
		}
		if off <= 1e-30*norm || off == 0 {
			break
		}
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				apq := m[p*n+q]
				if apq == 0 {
					continue
				}
				theta := (m[q*n+q] - m[p*n+p]) / (2 * apq)
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range n { // columns p, q
					mkp, mkq := m[k*n+p], m[k*n+q]
					m[k*n+p] = c*mkp - s*mkq
					m[k*n+q] = s*mkp + c*mkq
				}
				for k := range n { // rows p, q
					mpk, mqk := m[p*n+k], m[q*n+k]
					m[p*n+k] = c*mpk - s*mqk
					m[q*n+k] = s*mpk + c*mqk
				}
				for k := range n {
					vkp, vkq := v[k*n+p], v[k*n+q]
					v[k*n+p] = c*vkp - s*vkq
					v[k*n+q] = s*vkp + c*vkq
				}
			}
		}
	}
	vals = make([]float64, n)
	for i := range n {
		vals[i] = m[i*n+i]
	}
	return vals, v, nil
}

// SqrtPSD is the principal square root of a symmetric positive
// semi-definite matrix: V·diag(√max(λ,0))·Vᵀ. Eigenvalues below zero are
// rounding noise of a PSD matrix and are clamped.
func SqrtPSD(a []float64, n int) ([]float64, error) {
	vals, vecs, err := SymEig(a, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n*n)
	for k := range n {
		s := math.Sqrt(math.Max(vals[k], 0))
		if s == 0 {
			continue
		}
		for i := range n {
			vik := vecs[i*n+k] * s
			for j := range n {
				out[i*n+j] += vik * vecs[j*n+k]
			}
		}
	}
	return out, nil
}

func matMul(a, b []float64, n int) []float64 {
	out := make([]float64, n*n)
	for i := range n {
		for k := range n {
			aik := a[i*n+k]
			if aik == 0 {
				continue
			}
			for j := range n {
				out[i*n+j] += aik * b[k*n+j]
			}
		}
	}
	return out
}
