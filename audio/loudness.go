package audio

import "math"

// RMSDBFS is the clip's RMS level in dB relative to a full-scale square
// wave (pydub's AudioSegment.dBFS for samples in [−1, 1]); −Inf for silence.
func RMSDBFS(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	if len(x) == 0 || s == 0 {
		return math.Inf(-1)
	}
	return 20 * math.Log10(math.Sqrt(s/float64(len(x))))
}

// PeakDBFS is the clip's peak level in dB relative to full scale.
func PeakDBFS(x []float64) float64 {
	var p float64
	for _, v := range x {
		p = math.Max(p, math.Abs(v))
	}
	return 20 * math.Log10(p)
}

// Master scales x in place to targetDBFS RMS, then lowers it if needed so
// the peak stays headroomDB below full scale, and returns the gain applied.
// Riffusion's apply_filters applies gain to −12 dBFS and then pydub's
// normalize(headroom=0.1), which always rescales the peak to −0.1 dBFS;
// here the peak rule only limits, so quiet material keeps the RMS target.
// Silence is left alone (gain 1).
func Master(x []float64, targetDBFS, headroomDB float64) float64 {
	rms := RMSDBFS(x)
	if math.IsInf(rms, -1) {
		return 1
	}
	gain := math.Pow(10, (targetDBFS-rms)/20)
	if peak := PeakDBFS(x); peak+20*math.Log10(gain) > -headroomDB {
		gain = math.Pow(10, (-headroomDB-peak)/20)
	}
	for i := range x {
		x[i] *= gain
	}
	return gain
}

// Crossfade joins segments, overlapping each pair by n samples with an
// equal-power (sine/cosine) fade, as Riffusion's stitch_segments joins
// clips with pydub's crossfade. n is cut to the shorter neighbour.
func Crossfade(n int, segments ...[]float64) []float64 {
	if len(segments) == 0 {
		return nil
	}
	out := append([]float64(nil), segments[0]...)
	for _, s := range segments[1:] {
		k := max(0, min(n, len(out), len(s)))
		base := len(out) - k
		for i := range k {
			a := math.Pi / 2 * (float64(i) + 0.5) / float64(k)
			out[base+i] = out[base+i]*math.Cos(a) + s[i]*math.Sin(a)
		}
		out = append(out, s[k:]...)
	}
	return out
}

// Fit returns x cut or zero-padded to n samples.
func Fit(x []float64, n int) []float64 {
	if len(x) >= n {
		return x[:n]
	}
	return append(x, make([]float64, n-len(x))...)
}
