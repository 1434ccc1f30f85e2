package eval

import (
	"fmt"
	"math"
)

// PSNR is the peak signal-to-noise ratio in dB of b against a, both in
// [-1,1] (peak-to-peak 2): 10·log10(4/MSE). Identical inputs give +Inf.
func PSNR(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	mse := s / float64(len(a))
	return 10 * math.Log10(4/mse)
}

// SSIM constants of Wang et al. (2004) for data of range 1: K1 = 0.01,
// K2 = 0.03, an 11×11 Gaussian window of σ 1.5.
const (
	ssimC1     = 0.01 * 0.01
	ssimC2     = 0.03 * 0.03
	ssimWindow = 11
	ssimSigma  = 1.5
)

// SSIM is the mean structural similarity of two images (one [C,H,W] image,
// values in [-1,1], mapped to [0,1]) over every channel and every valid 11×11
// Gaussian window (Wang et al. 2004). Images smaller than the window use one
// window the size of the image.
func SSIM(a, b []float32, c, h, w int) (float64, error) {
	if len(a) != c*h*w || len(b) != c*h*w {
		return 0, fmt.Errorf("eval: SSIM of %d and %d values, want %d×%d×%d", len(a), len(b), c, h, w)
	}
	kh, kw := min(ssimWindow, h), min(ssimWindow, w)
	win := gaussWindow(kh, kw)
	total, n := 0.0, 0
	for ch := range c {
		at := func(x []float32, y, xx int) float64 { return (float64(x[(ch*h+y)*w+xx]) + 1) / 2 }
		for y0 := 0; y0+kh <= h; y0++ {
			for x0 := 0; x0+kw <= w; x0++ {
				var ma, mb, vaa, vbb, vab float64
				for dy := range kh {
					for dx := range kw {
						g := win[dy*kw+dx]
						p, q := at(a, y0+dy, x0+dx), at(b, y0+dy, x0+dx)
						ma += g * p
						mb += g * q
						vaa += g * p * p
						vbb += g * q * q
						vab += g * p * q
					}
				}
				vaa -= ma * ma
				vbb -= mb * mb
				vab -= ma * mb
				total += (2*ma*mb + ssimC1) * (2*vab + ssimC2) / ((ma*ma + mb*mb + ssimC1) * (vaa + vbb + ssimC2))
				n++
			}
		}
	}
	return total / float64(n), nil
}

func gaussWindow(kh, kw int) []float64 {
	g := make([]float64, kh*kw)
	s := 0.0
	for y := range kh {
		for x := range kw {
			dy, dx := float64(y)-float64(kh-1)/2, float64(x)-float64(kw-1)/2
			g[y*kw+x] = math.Exp(-(dx*dx + dy*dy) / (2 * ssimSigma * ssimSigma))
			s += g[y*kw+x]
		}
	}
	for i := range g {
		g[i] /= s
	}
	return g
}

// ReconstructionQuality is the mean PSNR and SSIM over a batch of NCHW
// images [n,c,h,w] and their reconstructions.
func ReconstructionQuality(x, rec []float32, n, c, h, w int) (psnr, ssim float64, err error) {
	per := c * h * w
	for i := range n {
		a, b := x[i*per:(i+1)*per], rec[i*per:(i+1)*per]
		p := PSNR(a, b)
		if math.IsInf(p, 1) {
			p = 100
		}
		psnr += p
		s, err := SSIM(a, b, c, h, w)
		if err != nil {
			return 0, 0, err
		}
		ssim += s
	}
	return psnr / float64(n), ssim / float64(n), nil
}
