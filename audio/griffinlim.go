package audio

import (
	"context"
	"math"
	"math/cmplx"
	"math/rand/v2"
)

// GriffinLim options. The zero value of Momentum means none; Riffusion
// (torchaudio's GriffinLim) uses 0.99.
type GriffinLimOptions struct {
	Iters    int
	Momentum float64
	// Seed draws the initial phases uniformly (torchaudio's rand_init); a
	// zero phase start is ZeroPhase.
	Seed      uint64
	ZeroPhase bool
	// Length of the output in samples (≤ 0: hop·(frames−1)).
	Length int
	// Progress, if set, gets the spectral convergence of the consistent
	// spectrogram after each iteration (costs nothing extra).
	Progress func(iter int, convergence float64)
}

// GriffinLim recovers a waveform whose STFT magnitude approximates mag
// ([frame][bin]) by alternating projections with the fast Griffin-Lim
// momentum of Perraudin et al. as torchaudio implements it:
//
//	rebuilt = STFT(ISTFT(mag·angles)); angles = rebuilt − m/(1+m)·previous; angles /= |angles|
func (c *Converter) GriffinLim(ctx context.Context, mag [][]float64, o GriffinLimOptions) ([]float64, error) {
	frames := len(mag)
	if frames == 0 {
		return nil, nil
	}
	length := o.Length
	if length <= 0 {
		length = c.hop * (frames - 1)
	}
	// The STFT of the intermediate signal must have the same frame count,
	// so iterate at the natural length and cut at the end.
	work := c.hop * (frames - 1)
	angles := make([][]complex128, frames)
	r := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	for t := range angles {
		a := make([]complex128, len(mag[t]))
		for k := range a {
			if o.ZeroPhase {
				a[k] = 1
			} else {
				a[k] = cmplx.Rect(1, 2*math.Pi*r.Float64())
			}
		}
		angles[t] = a
	}
	spec := make([][]complex128, frames)
	for t := range spec {
		spec[t] = make([]complex128, len(mag[t]))
	}
	fill := func() {
		for t, m := range mag {
			for k, v := range m {
				spec[t][k] = complex(v, 0) * angles[t][k]
			}
		}
	}
	var prev [][]complex128
	alpha := o.Momentum / (1 + o.Momentum)
	for it := range o.Iters {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fill()
		rebuilt := c.STFT(c.ISTFT(spec, work))
		var num, den float64
		for t := range rebuilt {
			for k, v := range rebuilt[t] {
				a := v
				if prev != nil {
					a -= complex(alpha, 0) * prev[t][k]
				}
				angles[t][k] = a / complex(cmplx.Abs(a)+1e-16, 0)
				d := cmplx.Abs(v) - mag[t][k]
				num += d * d
				den += mag[t][k] * mag[t][k]
			}
		}
		prev = rebuilt
		if o.Progress != nil && den > 0 {
			o.Progress(it+1, math.Sqrt(num/den))
		}
	}
	fill()
	return c.ISTFT(spec, length), nil
}
