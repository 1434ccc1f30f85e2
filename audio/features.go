package audio

import (
	"math"
	"sort"
)

// Features are the DSP measurements the audio model's card uses to check a
// clip against its prompt: tempo by onset rate, key by pitch-class
// histogram, timbre by spectral centroid.
type Features struct {
	OnsetRate float64 // onsets per second (spectral-flux peaks)
	// BPM is the beat period that best repeats the onset-strength curve
	// (its autocorrelation's highest peak over 55–165 bpm).
	BPM      float64
	Chroma   [12]float64 // energy per pitch class (0 = C), summing to 1
	Centroid float64     // mean spectral centroid in Hz, weighted by frame energy
	// Brightness is the median over frames of the spectral centroid divided
	// by the frame's lowest strong partial (≥ ¼ of its peak, 50–2000 Hz):
	// the centroid in harmonics, which does not move with the register.
	Brightness float64
	RMSDBFS    float64
}

// featureParams: 10 ms hop, 50 ms window in a 100 ms FFT (10 Hz bins).
var featureParams = Params{SampleRate: 44100, StepSizeMS: 10, WindowDurationMS: 50, PaddedDurationMS: 100,
	NumFrequencies: 8, MaxFrequency: 10000, MelScale: "htk", PowerForImage: 1}

// Analyze measures x, sampled at rate (resampled to 44.1 kHz first).
func Analyze(x []float64, rate int) Features {
	x = Resample(x, rate, 44100)
	c, err := NewConverter(featureParams)
	if err != nil {
		panic(err) // unreachable: featureParams are valid
	}
	mag := Magnitude(c.STFT(x))
	f := Features{RMSDBFS: RMSDBFS(x)}
	if len(mag) < 3 {
		return f
	}
	bins := len(mag[0])
	binHz := 22050 / float64(bins-1)
	// Spectral flux of log magnitudes up to 10 kHz, half-wave rectified.
	top := min(bins, int(10000/binHz))
	flux := make([]float64, len(mag))
	for t := 1; t < len(mag); t++ {
		var s float64
		for k := 1; k < top; k++ {
			if d := math.Log1p(100*mag[t][k]) - math.Log1p(100*mag[t-1][k]); d > 0 {
				s += d
			}
		}
		flux[t] = s
	}
	f.OnsetRate = float64(countPeaks(flux, 5)) / (float64(len(x)) / 44100)
	f.BPM = beatPeriod(flux)
	// Chroma over 55 Hz–2 kHz; centroid over everything.
	var wsum float64
	var ratios []float64
	lowest := min(bins, int(2000/binHz))
	for _, fr := range mag {
		var e, num, den, peak float64
		for k := int(50 / binHz); k < lowest; k++ {
			peak = math.Max(peak, fr[k])
		}
		f0 := 0.0
		for k := int(50/binHz) + 1; k+1 < lowest && peak > 0; k++ {
			if fr[k] >= peak/4 && fr[k] >= fr[k-1] && fr[k] >= fr[k+1] {
				f0 = float64(k) * binHz
				break
			}
		}
		for k := 1; k < bins; k++ {
			hz := float64(k) * binHz
			p := fr[k] * fr[k]
			num += hz * fr[k]
			den += fr[k]
			e += p
			if hz >= 55 && hz <= 2000 {
				pc := int(math.Round(12*math.Log2(hz/440))) + 9 // 440 Hz is A = 9
				f.Chroma[((pc%12)+12)%12] += p
			}
		}
		if den > 0 {
			f.Centroid += e * num / den
			wsum += e
			if f0 > 0 && e > 0 {
				ratios = append(ratios, num/den/f0)
			}
		}
	}
	if wsum > 0 {
		f.Centroid /= wsum
	}
	if len(ratios) > 0 {
		sort.Float64s(ratios)
		f.Brightness = ratios[len(ratios)/2]
	}
	var cs float64
	for _, v := range f.Chroma {
		cs += v
	}
	if cs > 0 {
		for i := range f.Chroma {
			f.Chroma[i] /= cs
		}
	}
	return f
}

// countPeaks counts local maxima of x above an adaptive threshold (the
// median of a ±0.5 s window plus half the global standard deviation),
// at least gap frames apart.
func countPeaks(x []float64, gap int) int {
	var mean, sd float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		sd += (v - mean) * (v - mean)
	}
	sd = math.Sqrt(sd / float64(len(x)))
	if sd == 0 {
		return 0
	}
	n, last := 0, -gap
	win := make([]float64, 0, 101)
	for t := 1; t+1 < len(x); t++ {
		if x[t] < x[t-1] || x[t] < x[t+1] || t-last < gap {
			continue
		}
		win = win[:0]
		for j := max(0, t-50); j < min(len(x), t+51); j++ {
			win = append(win, x[j])
		}
		sort.Float64s(win)
		if x[t] > win[len(win)/2]+0.5*sd {
			n++
			last = t
		}
	}
	return n
}

// Krumhansl and Kessler's key profiles (1982), from C.
var (
	majorProfile = [12]float64{6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88}
	minorProfile = [12]float64{6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17}
)

// KeyScore is the correlation of a chroma histogram with the
// Krumhansl–Kessler profile of the key with the given tonic pitch class
// and mode ("major" or "minor").
func KeyScore(chroma [12]float64, tonic int, mode string) float64 {
	prof := majorProfile
	if mode == "minor" {
		prof = minorProfile
	}
	var mx, my float64
	for i := range 12 {
		mx += chroma[i]
		my += prof[i]
	}
	mx, my = mx/12, my/12
	var sxy, sxx, syy float64
	for i := range 12 {
		a, b := chroma[(i+tonic)%12]-mx, prof[i]-my
		sxy += a * b
		sxx += a * a
		syy += b * b
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// beatPeriod returns the tempo in bpm whose lag (10 ms frames) maximises
// the autocorrelation of the mean-removed onset-strength curve.
func beatPeriod(flux []float64) float64 {
	var mean float64
	for _, v := range flux {
		mean += v / float64(len(flux))
	}
	best, bestR := 0, math.Inf(-1)
	for lag := 36; lag <= 109 && lag < len(flux)/2; lag++ { // 165–55 bpm
		var r float64
		for t := lag; t < len(flux); t++ {
			r += (flux[t] - mean) * (flux[t-lag] - mean)
		}
		r /= float64(len(flux) - lag)
		if r > bestR {
			best, bestR = lag, r
		}
	}
	if best == 0 {
		return 0
	}
	return 6000 / float64(best)
}
