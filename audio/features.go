package audio

import (
	"math"
	"sort"
)

// Features are the DSP measurements the audio model's card uses to check a
// clip against its prompt: tempo by onset rate, key by pitch-class
// histogram, timbre by spectral centroid.
type Features struct {
	OnsetRate float64     // onsets per second (spectral-flux peaks)
	Chroma    [12]float64 // energy per pitch class (0 = C), summing to 1
	Centroid  float64     // mean spectral centroid in Hz, weighted by frame energy
	RMSDBFS   float64
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
	// Chroma over 55 Hz–2 kHz; centroid over everything.
	var wsum float64
	for _, fr := range mag {
		var e, num, den float64
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
		}
	}
	if wsum > 0 {
		f.Centroid /= wsum
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
