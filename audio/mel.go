package audio

import (
	"fmt"
	"math"
)

// Filterbank is a bank of triangular mel filters over the nfft/2+1 bins of
// a one-sided spectrum, stored sparsely: filter m has weights W[m] over the
// bins Lo[m], Lo[m]+1, … It is torchaudio's melscale_fbanks (the matrix
// MelScale and Riffusion use), transposed.
type Filterbank struct {
	Bins int // spectrum bins, nfft/2+1
	Mels int
	Lo   []int
	W    [][]float64
	// Centers are the filters' centre frequencies in Hz.
	Centers []float64
}

// HzToMel converts Hz to mels on the "htk" scale (2595·log10(1+f/700)) or
// the "slaney" scale (linear below 1 kHz at 3/200 mel per Hz, logarithmic
// above with step ln(6.4)/27), as torchaudio's _hz_to_mel.
func HzToMel(f float64, scale string) float64 {
	if scale == "htk" {
		return 2595 * math.Log10(1+f/700)
	}
	const fSp, minLogHz, minLogMel = 200.0 / 3, 1000.0, 1000.0 / (200.0 / 3)
	if f < minLogHz {
		return f / fSp
	}
	return minLogMel + math.Log(f/minLogHz)/(math.Log(6.4)/27)
}

// MelToHz is HzToMel's inverse.
func MelToHz(m float64, scale string) float64 {
	if scale == "htk" {
		return 700 * (math.Pow(10, m/2595) - 1)
	}
	const fSp, minLogHz, minLogMel = 200.0 / 3, 1000.0, 1000.0 / (200.0 / 3)
	if m < minLogMel {
		return m * fSp
	}
	return minLogHz * math.Exp(math.Log(6.4)/27*(m-minLogMel))
}

// NewFilterbank builds mels triangular filters over bins spectrum bins of
// a signal sampled at rate, with edges equally spaced in mels from fmin to
// fmax; bin k is at k·(rate/2)/(bins−1) Hz (rate/2 an integer division, as
// torchaudio). norm "slaney" scales each filter by 2/(its width in Hz).
func NewFilterbank(bins, mels, rate int, fmin, fmax float64, scale, norm string) (*Filterbank, error) {
	if scale != "htk" && scale != "slaney" {
		return nil, fmt.Errorf("mel scale %q: give htk or slaney", scale)
	}
	if norm != "" && norm != "slaney" {
		return nil, fmt.Errorf("mel norm %q: give none or slaney", norm)
	}
	if bins < 2 || mels < 1 || !(fmax > fmin) || fmin < 0 {
		return nil, fmt.Errorf("mel filterbank of %d filters over %d bins from %g to %g Hz: nothing to build", mels, bins, fmin, fmax)
	}
	mlo, mhi := HzToMel(fmin, scale), HzToMel(fmax, scale)
	f := make([]float64, mels+2)
	for i := range f {
		f[i] = MelToHz(mlo+(mhi-mlo)*float64(i)/float64(mels+1), scale)
	}
	nyq := float64(rate / 2)
	binHz := nyq / float64(bins-1)
	fb := &Filterbank{Bins: bins, Mels: mels, Lo: make([]int, mels), W: make([][]float64, mels), Centers: f[1 : mels+1]}
	for m := range mels {
		lo := max(0, int(math.Floor(f[m]/binHz)))
		hi := min(bins-1, int(math.Ceil(f[m+2]/binHz)))
		var w []float64
		first := -1
		for k := lo; k <= hi; k++ {
			fk := nyq * float64(k) / float64(bins-1) // torch.linspace(0, rate//2, bins)
			v := math.Max(0, math.Min((fk-f[m])/(f[m+1]-f[m]), (f[m+2]-fk)/(f[m+2]-f[m+1])))
			if norm == "slaney" {
				v *= 2 / (f[m+2] - f[m])
			}
			if v == 0 && first < 0 {
				continue
			}
			if first < 0 {
				first = k
			}
			w = append(w, v)
		}
		for len(w) > 0 && w[len(w)-1] == 0 {
			w = w[:len(w)-1]
		}
		if first < 0 {
			first = lo
		}
		fb.Lo[m], fb.W[m] = first, w
	}
	return fb, nil
}

// Apply maps magnitude frames ([frame][bin]) to mel frames ([frame][mel]).
func (fb *Filterbank) Apply(mag [][]float64) [][]float64 {
	out := make([][]float64, len(mag))
	for t, x := range mag {
		y := make([]float64, fb.Mels)
		for m, w := range fb.W {
			var s float64
			for i, v := range w {
				s += v * x[fb.Lo[m]+i]
			}
			y[m] = s
		}
		out[t] = y
	}
	return out
}

// applyT is Fᵀ·z for one frame: mel-space z to bins.
func (fb *Filterbank) applyT(z []float64, dst []float64) {
	clear(dst)
	for m, w := range fb.W {
		for i, v := range w {
			dst[fb.Lo[m]+i] += v * z[m]
		}
	}
}

// gram returns F·Fᵀ (mels×mels, row-major).
func (fb *Filterbank) gram() []float64 {
	n := fb.Mels
	g := make([]float64, n*n)
	for a := range n {
		for b := a; b < n; b++ {
			lo := max(fb.Lo[a], fb.Lo[b])
			hi := min(fb.Lo[a]+len(fb.W[a]), fb.Lo[b]+len(fb.W[b]))
			var s float64
			for k := lo; k < hi; k++ {
				s += fb.W[a][k-fb.Lo[a]] * fb.W[b][k-fb.Lo[b]]
			}
			g[a*n+b], g[b*n+a] = s, s
		}
	}
	return g
}

// cholesky factors the symmetric positive definite n×n matrix a in place
// into its lower triangle (a = L·Lᵀ).
func cholesky(a []float64, n int) error {
	for j := range n {
		d := a[j*n+j]
		for k := range j {
			d -= a[j*n+k] * a[j*n+k]
		}
		if d <= 0 {
			return fmt.Errorf("mel Gram matrix is not positive definite at row %d", j)
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / d
		}
	}
	return nil
}

// cholSolve solves L·Lᵀ·x = b in place of b.
func cholSolve(l []float64, n int, b []float64) {
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i*n+k] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := b[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * b[k]
		}
		b[i] = s / l[i*n+i]
	}
}

func (c *Converter) prepareInverse() {
	c.inv.once.Do(func() {
		n := c.mel.Mels
		g := c.mel.gram()
		var tr, maxRow float64
		for i := range n {
			tr += g[i*n+i]
			var row float64
			for j := range n {
				row += math.Abs(g[i*n+j])
			}
			maxRow = max(maxRow, row)
		}
		// A small ridge keeps filters that cover no bin (possible with a
		// short FFT and many low mels) from making the system singular.
		ridge := 1e-8*tr/float64(n) + 1e-30
		for i := range n {
			g[i*n+i] += ridge
		}
		if err := cholesky(g, n); err != nil {
			panic(err) // unreachable: a ridged Gram matrix is positive definite
		}
		c.inv.chol = g
		c.inv.step = 1 / maxRow // Gershgorin: maxRow ≥ λ_max(F·Fᵀ)
	})
}

// InverseMel recovers linear magnitudes ([frame][bin]) from mel frames:
// the minimum-norm least-squares solution Fᵀ(F·Fᵀ)⁻¹y clipped at zero
// (torchaudio's InverseMelScale: lstsq then ReLU), followed by nnlsIters
// projected-gradient steps on ‖F·x − y‖² with x ≥ 0 (a non-negative
// least-squares refinement; 0 skips it).
func (c *Converter) InverseMel(mel [][]float64, nnlsIters int) [][]float64 {
	c.prepareInverse()
	fb := c.mel
	n := fb.Mels
	out := make([][]float64, len(mel))
	parallel(len(mel), func(_, lo, hi int) {
		z := make([]float64, n)
		r := make([]float64, n)
		g := make([]float64, fb.Bins)
		for t := lo; t < hi; t++ {
			copy(z, mel[t])
			cholSolve(c.inv.chol, n, z)
			x := make([]float64, fb.Bins)
			fb.applyT(z, x)
			for k, v := range x {
				x[k] = math.Max(0, v)
			}
			for range nnlsIters {
				for m, w := range fb.W {
					var s float64
					for i, v := range w {
						s += v * x[fb.Lo[m]+i]
					}
					r[m] = s - mel[t][m]
				}
				fb.applyT(r, g)
				for k := range x {
					x[k] = math.Max(0, x[k]-c.inv.step*g[k])
				}
			}
			out[t] = x
		}
	})
	return out
}
