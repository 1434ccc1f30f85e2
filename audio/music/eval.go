package music

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/ldm"
)

// EvalOptions configures Evaluate. The data set is re-synthesised from
// Data (the options ldm data audio was run with), so no files are read.
type EvalOptions struct {
	Data  data.AudioOptions
	Fit   int // training clips that fit the tempo and timbre class means (default 200)
	Limit int // held-out clips to generate for (0: all)
	Steps int // denoising steps (default 20)
	Seed  int64
	// Progress, if set, is called after each held-out clip.
	Progress func(done, total int)
}

// Score is an accuracy: Hits of N.
type Score struct{ Hits, N int }

func (s Score) Rate() float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return float64(s.Hits) / float64(s.N)
}

func (s Score) String() string { return fmt.Sprintf("%.1f %% (%d/%d)", 100*s.Rate(), s.Hits, s.N) }

// Attributes are the prompt attributes checked.
var Attributes = []string{"tempo", "key", "scale", "instrument"}

// EvalReport holds, per attribute, the accuracy of the DSP classifiers on
// generated clips, on the real held-out clips (as synthesised, and after
// their round trip through a spectrogram image and Griffin-Lim: the best a
// model drawing perfect images could do), against the prompt's labels
// shuffled over the held-out set (empirical chance) and uniform chance.
type EvalReport struct {
	Generated, Real, RealThroughImage, Shuffled map[string]Score
	Chance                                      map[string]float64
	Clips                                       int
}

// labels a clip's caption fields for the classifiers ("" where the
// attribute does not apply: drum beats have no key or instrument).
func labels(s data.AudioSample) map[string]string {
	l := map[string]string{"tempo": s.Tempo}
	if s.Kind != "drum beat" {
		l["key"] = s.Tonic + " " + s.Mode
		l["scale"] = scaleName(s.Tonic, s.Mode)
		l["instrument"] = s.Instrument
	}
	return l
}

// scaleName names a key's pitch set (C major and A minor share one).
func scaleName(tonic, mode string) string {
	pcs := data.KeyPitchClasses(tonic, mode)
	set := make([]bool, 12)
	for _, p := range pcs {
		set[p] = true
	}
	var b strings.Builder
	for _, v := range set {
		if v {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

type classifier struct {
	tempo  map[string]float64    // class mean of log onset rate, per kind and tempo
	timbre map[string][2]float64 // class mean of (log centroid, log brightness), in units of their spread
	spread [2]float64
}

// tempoOf is the tempo feature: the log of the onset curve's beat rate.
func tempoOf(f audio.Features) float64 { return math.Log(f.BPM + 1) }

func timbreOf(f audio.Features) [2]float64 {
	return [2]float64{math.Log(f.Centroid + 1), math.Log(f.Brightness + 0.1)}
}

func nearest2(means map[string][2]float64, spread, v [2]float64) string {
	best, bd := "", math.Inf(1)
	for k, m := range means {
		d := math.Pow((m[0]-v[0])/spread[0], 2) + math.Pow((m[1]-v[1])/spread[1], 2)
		if d < bd || d == bd && k < best {
			best, bd = k, d
		}
	}
	return best
}

func nearest(means map[string]float64, v float64) string {
	best, bd := "", math.Inf(1)
	for k, m := range means {
		if d := math.Abs(m - v); d < bd || d == bd && k < best {
			best, bd = k, d
		}
	}
	return best
}

// predict labels a clip's features. The means are per kind of clip
// (chords sit lower, sound denser and change less often than melodies), so
// tempo and instrument are chosen among those of the prompt's kind.
func (c classifier) predict(f audio.Features, kind string) map[string]string {
	means := map[string][2]float64{}
	for k, m := range c.timbre {
		if kd, in, _ := strings.Cut(k, "\x00"); kd == kind {
			means[in] = m
		}
	}
	tempos := map[string]float64{}
	for k, m := range c.tempo {
		if kd, tp, _ := strings.Cut(k, "\x00"); kd == kind {
			tempos[tp] = m
		}
	}
	p := map[string]string{
		"tempo":      nearest(tempos, tempoOf(f)),
		"instrument": nearest2(means, c.spread, timbreOf(f)),
	}
	best, bs := "", math.Inf(-1)
	for _, tonic := range data.AudioTonics {
		for _, mode := range data.AudioModes {
			pc := data.KeyPitchClasses(tonic, mode)[0]
			if s := audio.KeyScore(f.Chroma, pc, mode); s > bs {
				best, bs = tonic+" "+mode, s
			}
		}
	}
	p["key"] = best
	tm := strings.Fields(best)
	p["scale"] = scaleName(tm[0], tm[1])
	return p
}

func fit(o data.AudioOptions, n int) (classifier, error) {
	c := classifier{tempo: map[string]float64{}, timbre: map[string][2]float64{}}
	tempo := map[string][]float64{}
	timbre := map[string][][2]float64{}
	var all [][2]float64
	for i, used := 0, 0; used < n && i < o.N; i++ {
		x, s, err := data.AudioClip(o, i)
		if err != nil {
			return c, err
		}
		if s.Split != "train" {
			continue
		}
		used++
		f := audio.Analyze(x, o.Params.SampleRate)
		tempo[s.Kind+"\x00"+s.Tempo] = append(tempo[s.Kind+"\x00"+s.Tempo], tempoOf(f))
		if s.Kind != "drum beat" {
			v := timbreOf(f)
			timbre[s.Kind+"\x00"+s.Instrument] = append(timbre[s.Kind+"\x00"+s.Instrument], v)
			all = append(all, v)
		}
	}
	for k, vs := range tempo {
		var m float64
		for _, v := range vs {
			m += v
		}
		c.tempo[k] = m / float64(len(vs))
	}
	for k, vs := range timbre {
		var m [2]float64
		for _, v := range vs {
			m[0] += v[0] / float64(len(vs))
			m[1] += v[1] / float64(len(vs))
		}
		c.timbre[k] = m
	}
	for d := range 2 {
		var mean, sd float64
		for _, v := range all {
			mean += v[d] / float64(len(all))
		}
		for _, v := range all {
			sd += (v[d] - mean) * (v[d] - mean) / float64(len(all))
		}
		c.spread[d] = math.Max(math.Sqrt(sd), 1e-6)
	}
	return c, nil
}

func tally(dst map[string]Score, want, got map[string]string) {
	for _, a := range Attributes {
		w, ok := want[a]
		if !ok || w == "" {
			continue
		}
		s := dst[a]
		s.N++
		if got[a] == w {
			s.Hits++
		}
		dst[a] = s
	}
}

// Evaluate generates one clip per held-out caption of the synthesised set
// with p and scores how well it matches its prompt.
func Evaluate(ctx context.Context, p *ldm.Pipeline, params audio.Params, o EvalOptions) (*EvalReport, error) {
	if o.Fit == 0 {
		o.Fit = 200
	}
	if o.Data.Params == (audio.Params{}) {
		o.Data.Params = params
	}
	if o.Data.N == 0 {
		o.Data.N = 1200
	}
	cls, err := fit(o.Data, o.Fit)
	if err != nil {
		return nil, err
	}
	conv, err := audio.NewConverter(o.Data.Params)
	if err != nil {
		return nil, err
	}
	var held []int
	for i := range o.Data.N {
		_, s, err := data.AudioClip(data.AudioOptions{N: 1, Seed: o.Data.Seed, Holdout: o.Data.Holdout, Params: o.Data.Params, Frames: 8}, i)
		if err != nil {
			return nil, err
		}
		if s.Split == "test" {
			held = append(held, i)
		}
	}
	if o.Limit > 0 && len(held) > o.Limit {
		held = held[:o.Limit]
	}
	r := &EvalReport{Generated: map[string]Score{}, Real: map[string]Score{}, RealThroughImage: map[string]Score{}, Shuffled: map[string]Score{},
		Chance: map[string]float64{"tempo": 1.0 / 3, "key": 1.0 / 14, "scale": 1.0 / 7, "instrument": 1.0 / 5}, Clips: len(held)}
	var wants, gots []map[string]string
	for n, i := range held {
		x, s, err := data.AudioClip(o.Data, i)
		if err != nil {
			return nil, err
		}
		want := labels(s)
		tally(r.Real, want, cls.predict(audio.Analyze(x, o.Data.Params.SampleRate), s.Kind))
		img, peak := conv.ImageFromAudio(x)
		y, err := conv.AudioFromImage(ctx, img, peak, audio.Recovery{Seed: uint64(i)})
		if err != nil {
			return nil, err
		}
		tally(r.RealThroughImage, want, cls.predict(audio.Analyze(y, o.Data.Params.SampleRate), s.Kind))
		res, err := Generate(ctx, p, params, Request{Prompt: s.Caption, Seed: o.Seed + int64(i), Steps: o.Steps}, nil)
		if err != nil {
			return nil, err
		}
		got := cls.predict(audio.Analyze(res.Audio, res.Rate), s.Kind)
		tally(r.Generated, want, got)
		wants, gots = append(wants, want), append(gots, got)
		if o.Progress != nil {
			o.Progress(n+1, len(held))
		}
	}
	perm := rand.New(rand.NewPCG(uint64(o.Seed), 1)).Perm(len(wants))
	for k, j := range perm {
		tally(r.Shuffled, wants[j], gots[k])
	}
	return r, nil
}

// Markdown renders the report as a table.
func (r *EvalReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| attribute (DSP measure) | generated | real held-out | real through image + Griffin-Lim | shuffled prompts | chance |\n|---|---|---|---|---|---|\n")
	names := map[string]string{"tempo": "tempo (beat period of the onset curve, 3)", "key": "key (pitch-class histogram, 14 keys)",
		"scale": "scale (key signature, 7)", "instrument": "instrument (spectral centroid, 5)"}
	for _, a := range Attributes {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.1f %% |\n", names[a], r.Generated[a], r.Real[a], r.RealThroughImage[a], r.Shuffled[a], 100*r.Chance[a])
	}
	return b.String()
}
