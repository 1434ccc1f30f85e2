package audio

import (
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Converter holds what one Params needs precomputed: the window, the mel
// filterbank and its pseudo-inverse factorisation. It is safe for
// concurrent use.
type Converter struct {
	P              Params
	nfft, win, hop int
	window         []float64 // length nfft: the Hann window centred, zeros around it
	mel            *Filterbank

	plans sync.Pool // *fourier.FFT of length nfft (a plan has scratch space, so one per goroutine)
	inv   struct {
		once sync.Once
		chol []float64 // Cholesky factor of F·Fᵀ + λI, row-major n_mels²
		step float64   // 1/L for projected gradient, L ≥ the largest eigenvalue of F·Fᵀ
	}
}

// NewConverter validates p and precomputes its window and filterbank.
func NewConverter(p Params) (*Converter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Converter{P: p, nfft: p.NFFT(), win: p.WinLength(), hop: p.HopLength()}
	c.window = make([]float64, c.nfft)
	// torch.stft pads a shorter window on both sides to n_fft, left (n_fft−win)/2.
	copy(c.window[(c.nfft-c.win)/2:], Hann(c.win))
	fb, err := NewFilterbank(c.nfft/2+1, p.NumFrequencies, p.SampleRate, float64(p.MinFrequency), float64(p.MaxFrequency), p.MelScale, p.MelNorm)
	if err != nil {
		return nil, err
	}
	c.mel = fb
	n := c.nfft
	c.plans.New = func() any { return fourier.NewFFT(n) }
	return c, nil
}

// Filterbank returns the mel filterbank of c's Params.
func (c *Converter) Filterbank() *Filterbank { return c.mel }

// Hann is the periodic Hann window of n samples, torch.hann_window's
// default: w[i] = 0.5 − 0.5·cos(2πi/n).
func Hann(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n))
	}
	return w
}

// reflect maps index i of a signal of length n padded by reflection
// (numpy/torch "reflect": the edge sample is not repeated) to an index
// into the signal, folding as often as the padding needs.
func reflect(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// parallel runs f(lo, hi) over [0, n) split into GOMAXPROCS contiguous
// parts, each on its own goroutine; worker is the part's index.
func parallel(n int, f func(worker, lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range w {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Add(1)
		go func() { defer wg.Done(); f(i, lo, hi) }()
	}
	wg.Wait()
}

// STFT returns the one-sided short-time Fourier transform of x, frame by
// frame ([frame][bin], nfft/2+1 bins): centred frames with reflect padding
// of nfft/2, the Hann window of WinLength centred in nfft, no
// normalisation — torch.stft(center=True, pad_mode="reflect",
// onesided=True, normalized=False), as torchaudio's Spectrogram calls it.
func (c *Converter) STFT(x []float64) [][]complex128 {
	if len(x) == 0 {
		return nil
	}
	frames := 1 + len(x)/c.hop
	out := make([][]complex128, frames)
	pad := c.nfft / 2
	parallel(frames, func(_, lo, hi int) {
		plan := c.plans.Get().(*fourier.FFT)
		defer c.plans.Put(plan)
		seg := make([]float64, c.nfft)
		for t := lo; t < hi; t++ {
			start := t*c.hop - pad
			for i := range seg {
				j := start + i
				if j < 0 || j >= len(x) {
					j = reflect(j, len(x))
				}
				seg[i] = x[j] * c.window[i]
			}
			out[t] = plan.Coefficients(nil, seg)
		}
	})
	return out
}

// ISTFT inverts STFT by windowed overlap-add divided by the summed squared
// window (torch.istft), returning length samples (length ≤ 0: hop·(frames−1),
// the length torch.istft gives with no length argument).
func (c *Converter) ISTFT(spec [][]complex128, length int) []float64 {
	frames := len(spec)
	if frames == 0 {
		return nil
	}
	if length <= 0 {
		length = c.hop * (frames - 1)
	}
	total := c.nfft + c.hop*(frames-1)
	workers := min(runtime.GOMAXPROCS(0), frames)
	parts := make([][]float64, workers)
	parallel(frames, func(w, lo, hi int) {
		plan := c.plans.Get().(*fourier.FFT)
		defer c.plans.Put(plan)
		y := make([]float64, total)
		seg := make([]float64, c.nfft)
		scale := 1 / float64(c.nfft)
		for t := lo; t < hi; t++ {
			plan.Sequence(seg, spec[t])
			off := t * c.hop
			for i, v := range seg {
				if wi := c.window[i]; wi != 0 {
					y[off+i] += v * scale * wi
				}
			}
		}
		parts[w] = y
	})
	y := parts[0]
	for _, p := range parts[1:] {
		if p == nil {
			continue
		}
		for i, v := range p {
			y[i] += v
		}
	}
	env := make([]float64, total)
	for t := range frames {
		off := t * c.hop
		for i, wi := range c.window {
			env[off+i] += wi * wi
		}
	}
	pad := c.nfft / 2
	out := make([]float64, length)
	for i := range out {
		j := i + pad
		if j < total && env[j] > 1e-11 {
			out[i] = y[j] / env[j]
		}
	}
	return out
}

// Magnitude returns |spec| frame by frame.
func Magnitude(spec [][]complex128) [][]float64 {
	out := make([][]float64, len(spec))
	for t, f := range spec {
		m := make([]float64, len(f))
		for k, v := range f {
			m[k] = math.Hypot(real(v), imag(v))
		}
		out[t] = m
	}
	return out
}

// SpectralConvergence is ‖ref − est‖_F / ‖ref‖_F over two magnitude
// spectrograms of the same shape (frames beyond the shorter one count as
// zeros in the other): 0 is a perfect match, 1 is as far as silence.
func SpectralConvergence(ref, est [][]float64) float64 {
	var num, den float64
	for t := range max(len(ref), len(est)) {
		var r, e []float64
		if t < len(ref) {
			r = ref[t]
		}
		if t < len(est) {
			e = est[t]
		}
		for k := range max(len(r), len(e)) {
			var a, b float64
			if k < len(r) {
				a = r[k]
			}
			if k < len(e) {
				b = e[k]
			}
			num += (a - b) * (a - b)
			den += a * a
		}
	}
	if den == 0 {
		return math.Inf(1)
	}
	return math.Sqrt(num / den)
}
