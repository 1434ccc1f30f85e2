package audio

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
)

// small is a cheap parameter set for tests that iterate: 22.05 kHz,
// hop 10 ms, window 40 ms, n_fft 40 ms (882: 2·3²·7², mixed radix), 64 mels.
func small() Params {
	return Params{SampleRate: 22050, StepSizeMS: 10, WindowDurationMS: 40, PaddedDurationMS: 40,
		NumFrequencies: 64, MinFrequency: 0, MaxFrequency: 8000, MelScale: "htk", GriffinLimIters: 32, PowerForImage: 0.25}
}

func sine(rate int, hz, amp float64, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))
	}
	return x
}

// notes is a known test signal: three decaying partial-rich notes in turn.
func notes(rate, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		t := float64(i) / float64(rate)
		k := int(t / 0.25)
		f := []float64{262, 330, 392, 523}[k%4]
		tt := t - float64(k)*0.25
		env := math.Exp(-6 * tt)
		for h := 1; h <= 4; h++ {
			x[i] += env / float64(h) * 0.2 * math.Sin(2*math.Pi*f*float64(h)*t)
		}
	}
	return x
}

func TestRiffusionParamsGiveItsSampleCounts(t *testing.T) {
	p := Riffusion()
	if p.NFFT() != 17640 || p.WinLength() != 4410 || p.HopLength() != 441 {
		t.Fatalf("n_fft %d win %d hop %d, want 17640 4410 441", p.NFFT(), p.WinLength(), p.HopLength())
	}
	// 512 columns: 1 + n/441 = 512 for 5.11 s of audio.
	if got := p.Frames(p.Samples(512)); got != 512 {
		t.Fatalf("frames of hop·511 samples = %d, want 512", got)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := p
	bad.MaxFrequency = 30000
	bad.MelScale = "bark"
	if err := bad.Validate(); err == nil {
		t.Fatal("a mel range above Nyquist and an unknown scale validated")
	}
}

func TestMelScalesMatchTheirClosedForms(t *testing.T) {
	// HTK: 2595·log10(1 + f/700); Slaney: 15 mels at 1 kHz, 3 mels per 200 Hz below it, ln(6.4)/27 per mel above.
	cases := []struct {
		scale  string
		hz, m  float64
		within float64
	}{
		{"htk", 700, 2595 * math.Log10(2), 1e-9},
		{"htk", 1000, 999.9855, 1e-3},
		{"slaney", 1000, 15, 1e-12},
		{"slaney", 200, 3, 1e-12},
		{"slaney", 6400, 42, 1e-9},
	}
	for _, c := range cases {
		if got := HzToMel(c.hz, c.scale); math.Abs(got-c.m) > c.within {
			t.Errorf("%s: %g Hz = %g mel, want %g", c.scale, c.hz, got, c.m)
		}
		if back := MelToHz(HzToMel(c.hz, c.scale), c.scale); math.Abs(back-c.hz) > 1e-9*c.hz {
			t.Errorf("%s: %g Hz → mel → %g Hz", c.scale, c.hz, back)
		}
	}
}

func TestFilterbankTrianglesSumToOneAndSlaneyHasUnitArea(t *testing.T) {
	p := Riffusion()
	for _, scale := range []string{"htk", "slaney"} {
		fb, err := NewFilterbank(p.NFFT()/2+1, p.NumFrequencies, p.SampleRate, 0, 10000, scale, "")
		if err != nil {
			t.Fatal(err)
		}
		sum := make([]float64, fb.Bins)
		for m, w := range fb.W {
			for i, v := range w {
				sum[fb.Lo[m]+i] += v
			}
		}
		binHz := 22050.0 / float64(fb.Bins-1)
		var worst float64
		for k := range sum {
			f := float64(k) * binHz
			if f > fb.Centers[0] && f < fb.Centers[fb.Mels-1] {
				worst = math.Max(worst, math.Abs(sum[k]-1))
			}
		}
		if worst > 1e-9 {
			t.Errorf("%s: adjacent triangles sum to 1 ± %g between the first and last centre", scale, worst)
		}
		norm, err := NewFilterbank(p.NFFT()/2+1, p.NumFrequencies, p.SampleRate, 0, 10000, scale, "slaney")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []int{300, 500} { // low filters span few bins, so their sampled area is further from 1
			var area float64
			for _, v := range norm.W[m] {
				area += v * binHz
			}
			if math.Abs(area-1) > 0.01 {
				t.Errorf("%s slaney-normalised filter %d has area %g, want 1", scale, m, area)
			}
		}
	}
}

func TestSineLandsInItsMelBin(t *testing.T) {
	for _, p := range []Params{Riffusion(), small()} {
		c, err := NewConverter(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, hz := range []float64{440, 1000, 3000} {
			mel := c.Mel(sine(p.SampleRate, hz, 0.5, p.SampleRate/2))
			f := mel[len(mel)/2]
			best := 0
			for m := range f {
				if f[m] > f[best] {
					best = m
				}
			}
			// Closed form: the filter whose centre, equally spaced in mels, is nearest.
			lo, hi := HzToMel(float64(p.MinFrequency), p.MelScale), HzToMel(float64(p.MaxFrequency), p.MelScale)
			want := int(math.Round((HzToMel(hz, p.MelScale)-lo)/((hi-lo)/float64(p.NumFrequencies+1)))) - 1
			if best != want {
				t.Errorf("n_fft %d: %g Hz peaks in mel bin %d (centre %.1f Hz), want %d (centre %.1f Hz)",
					p.NFFT(), hz, best, c.mel.Centers[best], want, c.mel.Centers[want])
			}
		}
	}
}

func TestSTFTFrameMatchesADirectDFT(t *testing.T) {
	p := small()
	c, _ := NewConverter(p)
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, 3000)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	spec := c.STFT(x)
	if len(spec) != 1+len(x)/p.HopLength() {
		t.Fatalf("%d frames, want %d", len(spec), 1+len(x)/p.HopLength())
	}
	n := p.NFFT()
	w := Hann(p.WinLength())
	for _, frame := range []int{0, 7, len(spec) - 1} {
		var worst float64
		for _, k := range []int{0, 1, 40, n / 2} {
			var s complex128
			for i := range n {
				j := frame*p.HopLength() - n/2 + i
				if j < 0 {
					j = -j // reflect without repeating the edge
				}
				if j >= len(x) {
					j = 2*(len(x)-1) - j
				}
				s += complex(x[j]*w[i-(n-p.WinLength())/2], 0) * cmplx.Rect(1, -2*math.Pi*float64(k*i)/float64(n))
			}
			worst = math.Max(worst, cmplx.Abs(s-spec[frame][k]))
		}
		if worst > 1e-9 {
			t.Errorf("frame %d differs from the direct DFT by %g", frame, worst)
		}
	}
}

func TestSTFTThenISTFTReproducesTheSignal(t *testing.T) {
	for _, p := range []Params{Riffusion(), small()} {
		c, _ := NewConverter(p)
		r := rand.New(rand.NewPCG(3, 4))
		x := make([]float64, p.SampleRate/2+123)
		for i := range x {
			x[i] = r.Float64()*2 - 1
		}
		y := c.ISTFT(c.STFT(x), len(x))
		var worst float64
		for i := range x {
			worst = math.Max(worst, math.Abs(x[i]-y[i]))
		}
		if worst > 1e-9 {
			t.Errorf("n_fft %d: ISTFT(STFT(x)) differs from x by %g", p.NFFT(), worst)
		}
	}
}

func TestInverseMelRecoversWhatTheFilterbankSees(t *testing.T) {
	p := small()
	c, _ := NewConverter(p)
	mel := c.Mel(notes(p.SampleRate, p.SampleRate/2))
	// Measured: 0.052 after the clipped least-squares solution, 0.018 after 50 NNLS steps.
	bound := map[int]float64{0: 0.08, 50: 0.03}
	for _, iters := range []int{0, 50} {
		lin := c.InverseMel(mel, iters)
		back := c.mel.Apply(lin)
		sc := SpectralConvergence(mel, back)
		t.Logf("NNLS iterations %d: mel-domain relative error %.4f", iters, sc)
		if sc > bound[iters] {
			t.Errorf("NNLS iterations %d: F·x misses the mel frames by %.3f (relative), want ≤ %g", iters, sc, bound[iters])
		}
		for _, f := range lin {
			for _, v := range f {
				if v < 0 {
					t.Fatal("negative magnitude")
				}
			}
		}
	}
}

func TestGriffinLimConvergesOnAKnownSignal(t *testing.T) {
	p := small()
	c, _ := NewConverter(p)
	x := notes(p.SampleRate, p.SampleRate)
	mag := Magnitude(c.STFT(x))
	sc := map[float64]float64{}
	for _, momentum := range []float64{0, 0.99} {
		var last float64
		y, err := c.GriffinLim(context.Background(), mag, GriffinLimOptions{Iters: 32, Momentum: momentum, Seed: 7, Length: len(x),
			Progress: func(_ int, v float64) { last = v }})
		if err != nil {
			t.Fatal(err)
		}
		got := SpectralConvergence(mag, Magnitude(c.STFT(y)))
		t.Logf("momentum %.2f: spectral convergence after 32 iterations %.4f (last iterate %.4f)", momentum, got, last)
		sc[momentum] = got
	}
	// Measured: 0.99 momentum ≈ 0.06, none ≈ 0.17 (n_fft 882, 1 s of notes).
	if sc[0.99] > 0.12 || sc[0.99] >= sc[0] {
		t.Errorf("spectral convergence with momentum %.3f, without %.3f: want < 0.12 and better than without", sc[0.99], sc[0])
	}
	// The same seed gives the same audio.
	a, _ := c.GriffinLim(context.Background(), mag, GriffinLimOptions{Iters: 2, Seed: 9})
	b, _ := c.GriffinLim(context.Background(), mag, GriffinLimOptions{Iters: 2, Seed: 9})
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("Griffin-Lim with one seed gave two results")
		}
	}
}

func TestAudioThroughASpectrogramImageAndBack(t *testing.T) {
	p := small()
	c, _ := NewConverter(p)
	x := notes(p.SampleRate, p.SampleRate)
	img, peak := c.ImageFromAudio(x)
	var buf bytes.Buffer
	if err := EncodePNG(&buf, img, p, peak); err != nil {
		t.Fatal(err)
	}
	dec, info, err := DecodePNG(buf.Bytes(), Riffusion())
	if err != nil {
		t.Fatal(err)
	}
	if !info.Tagged || info.Params != p || info.MaxValue != peak {
		t.Fatalf("EXIF gave %+v max %g tagged %v, want %+v max %g", info.Params, info.MaxValue, info.Tagged, p, peak)
	}
	y, err := c.AudioFromImage(context.Background(), dec, info.MaxValue, Recovery{Seed: 1, Length: len(x)})
	if err != nil {
		t.Fatal(err)
	}
	if len(y) != len(x) {
		t.Fatalf("%d samples back, want %d", len(y), len(x))
	}
	// Compare magnitudes at the same loudness.
	ref := Magnitude(c.STFT(x))
	scale := math.Pow(10, (RMSDBFS(x)-RMSDBFS(y))/20)
	for i := range y {
		y[i] *= scale
	}
	sc := SpectralConvergence(ref, Magnitude(c.STFT(y)))
	t.Logf("audio → image (uint8, power 0.25) → audio: spectral convergence %.3f", sc)
	// Measured ≈ 0.30 here: the mel inverse loses the fine structure
	// between 64 filters, the 8-bit image and Griffin-Lim add the rest.
	if sc > 0.45 {
		t.Errorf("round trip spectral convergence %.3f, want ≤ 0.45", sc)
	}
}

func TestImageFollowsRiffusionsPixelConvention(t *testing.T) {
	mel := [][]float64{{16, 1, 0}, {0, 0, 0}}
	img, peak := Image(mel, 0.25)
	if peak != 16 || img.Bounds().Dx() != 2 || img.Bounds().Dy() != 3 {
		t.Fatalf("peak %g size %v", peak, img.Bounds())
	}
	// Frame 0, mel 0 (lowest) is the bottom-left pixel: the max → 0; (1/16)^0.25 = 0.5 → 255 − 127.5 → 127; zero → 255.
	cases := []struct{ x, y, want int }{{0, 2, 0}, {0, 1, 127}, {0, 0, 255}, {1, 2, 255}}
	for _, c := range cases {
		if got := int(img.RGBAAt(c.x, c.y).R); got != c.want || img.RGBAAt(c.x, c.y).G != uint8(got) {
			t.Errorf("pixel (%d,%d) = %d, want %d in R and G", c.x, c.y, got, c.want)
		}
	}
	back := FromImage(img, 0.25, 16)
	if back[0][0] != 16 || back[1][0] != 0 || math.Abs(back[0][1]-16*math.Pow(128.0/255, 4)) > 1e-12 {
		t.Errorf("decoded %v", back)
	}
}

func TestDecodePNGWithoutTagsUsesDefaults(t *testing.T) {
	img, _ := Image([][]float64{{1, 2}}, 0.25)
	var plain bytes.Buffer
	if err := png.Encode(&plain, img); err != nil {
		t.Fatal(err)
	}
	_, info, err := DecodePNG(plain.Bytes(), Riffusion())
	if err != nil {
		t.Fatal(err)
	}
	if info.Tagged || info.Params != Riffusion() || info.MaxValue != DefaultMaxValue {
		t.Errorf("untagged image gave %+v", info)
	}
	if _, _, err := DecodePNG([]byte("not a png"), Riffusion()); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestWAVRoundTrips(t *testing.T) {
	x := sine(44100, 440, 0.5, 1000)
	for _, f := range []SampleFormat{PCM16, Float32} {
		var buf bytes.Buffer
		if err := WriteWAV(&buf, 44100, f, x, x); err != nil {
			t.Fatal(err)
		}
		c, err := ReadWAV(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rate != 44100 || len(c.Channels) != 2 || len(c.Channels[1]) != len(x) {
			t.Fatalf("format %d: rate %d channels %d", f, c.Rate, len(c.Channels))
		}
		tol := 1e-7
		if f == PCM16 {
			tol = 1.0 / 32767
		}
		for i, v := range c.Mono() {
			if math.Abs(v-x[i]) > tol {
				t.Fatalf("format %d: sample %d = %g, want %g", f, i, v, x[i])
			}
		}
	}
	for _, bad := range []string{"", "RIFF\x00\x00\x00\x00WAVE", "RIFX"} {
		if _, err := ReadWAV(bytes.NewReader([]byte(bad))); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestMasterReachesItsTargetWithinTheHeadroom(t *testing.T) {
	x := sine(44100, 440, 0.01, 44100)
	Master(x, -12, 0.1)
	if got := RMSDBFS(x); math.Abs(got+12) > 1e-9 {
		t.Errorf("sine mastered to %g dBFS RMS, want −12", got)
	}
	spike := make([]float64, 1000)
	spike[10] = 0.001
	Master(spike, -12, 0.1)
	if got := PeakDBFS(spike); math.Abs(got+0.1) > 1e-9 {
		t.Errorf("a spike's peak is at %g dBFS, want −0.1", got)
	}
}

func TestCrossfadeOverlapsNeighbours(t *testing.T) {
	a, b := []float64{1, 1, 1, 1}, []float64{2, 2, 2, 2}
	out := Crossfade(2, a, b, a)
	if len(out) != 12-2*2 {
		t.Fatalf("length %d, want 8", len(out))
	}
	if out[0] != 1 || out[3] <= 1 || out[len(out)-1] != 1 {
		t.Errorf("crossfade %v", out)
	}
}

func TestResampleKeepsFrequencyAndLevel(t *testing.T) {
	x := sine(22050, 1000, 0.5, 22050)
	y := Resample(x, 22050, 44100)
	if len(y) != 44100 {
		t.Fatalf("%d samples", len(y))
	}
	want := sine(44100, 1000, 0.5, 44100)
	var worst float64
	for i := 1000; i < 43000; i++ {
		worst = math.Max(worst, math.Abs(y[i]-want[i]))
	}
	if worst > 0.01 {
		t.Errorf("resampled sine off by %g", worst)
	}
}

func TestAnalyzeMeasuresOnsetsPitchAndBrightness(t *testing.T) {
	// Four 0.25 s notes a second (A4, C5, E5, A5: A minor's triad), 2 s.
	rate := 44100
	x := make([]float64, 2*rate)
	for i := range x {
		k := i / (rate / 4)
		f := []float64{440, 523.25, 659.26, 880}[k%4]
		tt := float64(i%(rate/4)) / float64(rate)
		x[i] = 0.5 * math.Exp(-8*tt) * math.Sin(2*math.Pi*f*float64(i)/float64(rate))
	}
	f := Analyze(x, rate)
	if f.OnsetRate < 3 || f.OnsetRate > 4.5 {
		t.Errorf("onset rate %.2f/s, want ≈ 4 (3.5 after the first note, which has no rise before it)", f.OnsetRate)
	}
	best, bestScore := -1, -2.0
	for pc := range 12 {
		if s := KeyScore(f.Chroma, pc, "minor"); s > bestScore {
			best, bestScore = pc, s
		}
	}
	if best != 9 {
		t.Errorf("best minor key tonic %d, want 9 (A); chroma %v", best, f.Chroma)
	}
	if f.Centroid < 440 || f.Centroid > 900 {
		t.Errorf("centroid %.0f Hz of pure tones between 440 and 880", f.Centroid)
	}
	bright := Analyze(Resample(x, rate, rate), rate)
	for i := range x {
		x[i] += 0.3 * math.Sin(2*math.Pi*5000*float64(i)/float64(rate)) * math.Exp(-8*float64(i%(rate/4))/float64(rate))
	}
	if b := Analyze(x, rate); b.Centroid <= bright.Centroid+500 {
		t.Errorf("adding a 5 kHz partial moved the centroid from %.0f to %.0f Hz only", bright.Centroid, b.Centroid)
	}
}
