package data

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/internal/fsutil"
)

// AudioParams are the spectrogram parameters of the project's small audio
// model: 44.1 kHz mono, hop 40 ms (1764 samples), Hann window 80 ms with
// n_fft 80 ms (3528 = 2³·3²·7²), 128 HTK mel bins from 0 to 6 kHz. A
// 128×128 image is 128 frames = 5.08 s, the length of Riffusion's 512 px at
// a quarter of the time and mel resolution, so that the VAE (f8) gives the
// U-Net 16×16 latents, the size of the embedded image model's.
func AudioParams() audio.Params {
	return audio.Params{SampleRate: 44100, StepSizeMS: 40, WindowDurationMS: 80, PaddedDurationMS: 80,
		NumFrequencies: 128, MinFrequency: 0, MaxFrequency: 6000, MelScale: "htk", GriffinLimIters: 32, PowerForImage: 0.25}
}

// AudioOptions configures GenerateAudio.
type AudioOptions struct {
	N       int     // clips (default 2000)
	Seed    uint64  // clip i depends only on (Seed, i)
	Holdout float64 // fraction marked split "test"
	// Params of the spectrogram images (default AudioParams); Frames is
	// the image width (default NumFrequencies: square images).
	Params audio.Params
	Frames int
}

// The vocabulary of the synthesised set.
var (
	AudioInstruments = []string{"piano", "organ", "flute", "guitar", "bell"}
	AudioKinds       = []string{"melody", "chords", "arpeggio", "drum beat"}
	AudioTonics      = []string{"C", "D", "E", "F", "G", "A", "B"}
	AudioModes       = []string{"major", "minor"}
	// AudioTempi maps the caption word to its range of beats per minute.
	AudioTempi = []AudioTempo{{"slow", 60, 80}, {"medium", 95, 115}, {"fast", 130, 150}}
)

// AudioTempo is a tempo word and its range in bpm.
type AudioTempo struct {
	Word     string
	Min, Max int
}

// AudioSample describes one synthesised clip.
type AudioSample struct {
	Caption    string `json:"text"`
	Instrument string `json:"instrument"` // "" for a drum beat
	Kind       string `json:"kind"`
	Tonic      string `json:"tonic,omitempty"`
	Mode       string `json:"mode,omitempty"`
	Tempo      string `json:"tempo"`
	BPM        int    `json:"bpm"`
	Drums      bool   `json:"drums"`
	Split      string `json:"split"`
}

func (o AudioOptions) withDefaults() (AudioOptions, error) {
	if o.N == 0 {
		o.N = 2000
	}
	if o.Params == (audio.Params{}) {
		o.Params = AudioParams()
	}
	if o.Frames == 0 {
		o.Frames = o.Params.NumFrequencies
	}
	if err := o.Params.Validate(); err != nil {
		return o, err
	}
	switch {
	case o.N < 1:
		return o, fmt.Errorf("n %d: want at least 1", o.N)
	case o.Frames < 8 || o.Frames > 4096:
		return o, fmt.Errorf("frames %d: want 8 to 4096", o.Frames)
	case o.Holdout < 0 || o.Holdout >= 1:
		return o, fmt.Errorf("holdout %g: want a fraction in [0, 1)", o.Holdout)
	}
	return o, nil
}

const purposeAudio uint64 = 101

// semitones of the major and natural minor scales.
var scaleSteps = map[string][]int{"major": {0, 2, 4, 5, 7, 9, 11}, "minor": {0, 2, 3, 5, 7, 8, 10}}

var tonicPC = map[string]int{"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

// KeyPitchClasses returns the pitch classes (0 = C) of a key's scale.
func KeyPitchClasses(tonic, mode string) []int {
	out := make([]int, 0, 7)
	for _, s := range scaleSteps[mode] {
		out = append(out, (tonicPC[tonic]+s)%12)
	}
	return out
}

// AudioClip synthesises clip i of the set described by o: samples at
// o.Params.SampleRate, as long as o.Frames spectrogram columns.
func AudioClip(o AudioOptions, i int) ([]float64, AudioSample, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, AudioSample{}, err
	}
	r := newRand(purposeAudio, o.Seed, uint64(i))
	s := AudioSample{Kind: AudioKinds[r.intn(len(AudioKinds))]}
	tempo := AudioTempi[r.intn(len(AudioTempi))]
	s.Tempo, s.BPM = tempo.Word, tempo.Min+5*r.intn((tempo.Max-tempo.Min)/5+1)
	if s.Kind != "drum beat" {
		s.Instrument = AudioInstruments[r.intn(len(AudioInstruments))]
		s.Tonic, s.Mode = AudioTonics[r.intn(len(AudioTonics))], AudioModes[r.intn(len(AudioModes))]
		s.Drums = r.float64() < 0.25
	}
	s.Split = "train"
	if newRand(purposeSplit, o.Seed, uint64(i), purposeAudio).float64() < o.Holdout {
		s.Split = "test"
	}
	s.Caption = AudioCaption(s)

	rate := o.Params.SampleRate
	x := make([]float64, o.Params.Samples(o.Frames))
	beat := 60 / float64(s.BPM)
	if s.Kind == "drum beat" || s.Drums {
		gain := 0.5
		if s.Drums {
			gain = 0.25
		}
		drums(x, rate, beat, r.intn(len(drumPatterns)), gain, r)
	}
	if s.Kind != "drum beat" {
		v := voice(s.Instrument)
		scale := KeyPitchClasses(s.Tonic, s.Mode)
		root := 60 + scale[0] // tonic in octave 4
		if root > 65 {
			root -= 12
		}
		degree := func(d, octave int) int { // scale degree d (any integer) to a MIDI note
			n := len(scale)
			q, m := d/n, d%n
			if m < 0 {
				m += n
				q--
			}
			return root + 12*(q+octave) + (scale[m]-scale[0]+12)%12
		}
		switch s.Kind {
		case "melody":
			d, t := 0, 0.0
			for t < float64(len(x))/float64(rate) {
				dur := beat * []float64{1, 1, 0.5, 2}[r.intn(4)]
				if s.Tempo == "fast" {
					dur = beat * []float64{0.5, 0.5, 1}[r.intn(3)]
				}
				v(x, rate, t, dur, midiHz(degree(d, 0)), 0.45)
				t += dur
				d += []int{-2, -1, -1, 1, 1, 2, 0, 3}[r.intn(8)]
				d = max(-3, min(9, d))
				if r.float64() < 0.15 {
					d = 0 // back to the tonic now and then, so the key is heard
				}
			}
		case "chords":
			prog := [][]int{{0, 3, 4, 0}, {0, 5, 3, 4}, {0, 4, 5, 3}}[r.intn(3)]
			for k, t := 0, 0.0; t < float64(len(x))/float64(rate); k, t = k+1, t+2*beat {
				c := prog[k%len(prog)]
				for _, d := range []int{c, c + 2, c + 4} {
					v(x, rate, t, 2*beat, midiHz(degree(d, -1)), 0.22)
				}
				v(x, rate, t, 2*beat, midiHz(degree(c, -2)), 0.2)
			}
		case "arpeggio":
			prog := [][]int{{0, 3, 4, 0}, {0, 5, 3, 4}}[r.intn(2)]
			pattern := []int{0, 2, 4, 7, 4, 2}
			step := beat / 2
			for k, t := 0, 0.0; t < float64(len(x))/float64(rate); k, t = k+1, t+step {
				c := prog[(k/8)%len(prog)]
				v(x, rate, t, step*1.5, midiHz(degree(c+pattern[k%len(pattern)], 0)), 0.4)
			}
		}
	}
	audio.Master(x, -16, 1)
	return x, s, nil
}

// AudioCaption is the caption of a synthesised clip, e.g. "slow piano
// melody in C minor, 70 bpm" or "fast drum beat, 140 bpm".
func AudioCaption(s AudioSample) string {
	if s.Kind == "drum beat" {
		return fmt.Sprintf("%s drum beat, %d bpm", s.Tempo, s.BPM)
	}
	c := fmt.Sprintf("%s %s %s in %s %s", s.Tempo, s.Instrument, s.Kind, s.Tonic, s.Mode)
	if s.Drums {
		c += " with drums"
	}
	return fmt.Sprintf("%s, %d bpm", c, s.BPM)
}

func midiHz(n int) float64 { return 440 * math.Pow(2, float64(n-69)/12) }

// voiceFunc adds a note starting at t seconds lasting dur seconds.
type voiceFunc func(x []float64, rate int, t, dur, hz, amp float64)

// partials adds decaying sinusoids: ratio, amplitude and decay rate (1/s)
// per partial, with attack and release ramps.
func partials(x []float64, rate int, t, dur, hz, amp float64, ratio, level, decay []float64, attack, release float64, vibrato float64) {
	start := int(t * float64(rate))
	n := int((dur + release) * float64(rate))
	for i := 0; i < n && start+i < len(x); i++ {
		tt := float64(i) / float64(rate)
		env := math.Min(1, tt/attack)
		if tt > dur {
			env *= math.Max(0, 1-(tt-dur)/release)
		}
		ph := 2 * math.Pi * hz * tt
		if vibrato > 0 {
			ph += vibrato * math.Sin(2*math.Pi*5*tt)
		}
		var s float64
		for k, rt := range ratio {
			if rt*hz >= float64(rate)/2 {
				continue
			}
			s += level[k] * math.Exp(-decay[k]*tt) * math.Sin(rt*ph)
		}
		x[start+i] += amp * env * s
	}
}

func voice(instrument string) voiceFunc {
	switch instrument {
	case "piano": // bright attack, higher partials die first
		return func(x []float64, rate int, t, dur, hz, amp float64) {
			partials(x, rate, t, dur, hz, amp, []float64{1, 2, 3, 4, 5, 6}, []float64{1, 0.5, 0.3, 0.2, 0.12, 0.08},
				[]float64{1.5, 2.5, 3.5, 5, 7, 9}, 0.004, 0.08, 0)
		}
	case "organ": // sustained drawbars, no decay
		return func(x []float64, rate int, t, dur, hz, amp float64) {
			partials(x, rate, t, dur, hz, amp*0.7, []float64{0.5, 1, 2, 3, 4, 6, 8}, []float64{0.5, 1, 0.7, 0.5, 0.4, 0.25, 0.2},
				make([]float64, 7), 0.02, 0.05, 0)
		}
	case "flute": // nearly a sine, slow attack, vibrato
		return func(x []float64, rate int, t, dur, hz, amp float64) {
			partials(x, rate, t, dur, hz, amp, []float64{1, 2, 3}, []float64{1, 0.1, 0.04}, []float64{0.2, 0.2, 0.2}, 0.08, 0.1, 0.004*hz/5)
		}
	case "guitar": // plucked: many partials, fast decay, the upper ones faster
		return func(x []float64, rate int, t, dur, hz, amp float64) {
			partials(x, rate, t, dur, hz, amp, []float64{1, 2, 3, 4, 5, 6, 7, 8}, []float64{1, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08},
				[]float64{3, 4, 6, 8, 10, 12, 14, 16}, 0.002, 0.05, 0)
		}
	default: // bell: inharmonic partials, long ring
		return func(x []float64, rate int, t, dur, hz, amp float64) {
			partials(x, rate, t, dur, hz, amp*0.8, []float64{1, 2.76, 5.4, 8.93}, []float64{1, 0.6, 0.4, 0.25},
				[]float64{0.8, 1.6, 3, 5}, 0.002, 0.3, 0)
		}
	}
}

// drumPatterns are one bar of 16 sixteenths: k kick, s snare, h hi-hat.
var drumPatterns = []string{
	"k.h.s.h.k.h.s.h.", // rock
	"k.h.s.hkk.h.s.h.", // rock with a pickup
	"k.hhs.hhk.hhs.hh", // busier hats
	"k...s...k.k.s...", // no hats
}

func drums(x []float64, rate int, beat float64, pattern int, gain float64, r *splitmix64) {
	p := drumPatterns[pattern]
	six := beat / 4
	for k, t := 0, 0.0; t < float64(len(x))/float64(rate); k, t = k+1, t+six {
		start := int(t * float64(rate))
		switch p[k%len(p)] {
		case 'k': // kick: a sine sweeping 150 → 50 Hz
			n := int(0.25 * float64(rate))
			var ph float64
			for i := 0; i < n && start+i < len(x); i++ {
				tt := float64(i) / float64(rate)
				ph += 2 * math.Pi * (50 + 100*math.Exp(-tt*30)) / float64(rate)
				x[start+i] += gain * math.Exp(-tt*12) * math.Sin(ph)
			}
		case 's': // snare: noise and a 180 Hz body
			n := int(0.2 * float64(rate))
			for i := 0; i < n && start+i < len(x); i++ {
				tt := float64(i) / float64(rate)
				x[start+i] += gain * 0.7 * math.Exp(-tt*20) * ((r.float64()*2 - 1) + 0.5*math.Sin(2*math.Pi*180*tt))
			}
		case 'h': // hi-hat: differenced (high-passed) noise, short
			n := int(0.05 * float64(rate))
			prev := 0.0
			for i := 0; i < n && start+i < len(x); i++ {
				tt := float64(i) / float64(rate)
				v := r.float64()*2 - 1
				x[start+i] += gain * 0.35 * math.Exp(-tt*80) * (v - prev)
				prev = v
			}
		}
	}
}

// AudioRow is a metadata.jsonl line of the audio set.
type AudioRow struct {
	FileName string `json:"file_name"`
	AudioSample
}

// AudioParamsFile is the name of the JSON file holding the spectrogram
// parameters, in a dataset folder and in a model folder.
const AudioParamsFile = "spectrogram.json"

// GenerateAudio writes the synthesised set into out: images/NNNNN.png
// (mel spectrograms in Riffusion's image convention, parameters in EXIF),
// metadata.jsonl with captions and the structured fields, spectrogram.json
// with the parameters, and wav/NNNNN.wav for the held-out clips.
func GenerateAudio(ctx context.Context, out string, opts AudioOptions, progress func(done, total int)) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	conv, err := audio.NewConverter(o.Params)
	if err != nil {
		return err
	}
	for _, d := range []string{"images", "wav"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	pj, _ := json.MarshalIndent(o.Params, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(out, AudioParamsFile), append(pj, '\n')); err != nil {
		return err
	}
	rows := make([]AudioRow, o.N)
	errs := make([]error, o.N)
	done := 0
	for lo := 0; lo < o.N; lo += 64 {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(o.N, lo+64)
		parallelFor(hi-lo, func(j int) {
			i := lo + j
			x, s, err := AudioClip(o, i)
			if err != nil {
				errs[i] = err
				return
			}
			img, peak := conv.ImageFromAudio(x)
			name := fmt.Sprintf("images/%05d.png", i)
			errs[i] = fsutil.WriteAtomic(filepath.Join(out, filepath.FromSlash(name)), func(w io.Writer) error {
				return audio.EncodePNG(w, img, o.Params, peak)
			})
			if errs[i] == nil && s.Split == "test" {
				errs[i] = fsutil.WriteAtomic(filepath.Join(out, "wav", fmt.Sprintf("%05d.wav", i)), func(w io.Writer) error {
					return audio.WriteWAV(w, o.Params.SampleRate, audio.PCM16, x)
				})
			}
			rows[i] = AudioRow{FileName: name, AudioSample: s}
		})
		for i := lo; i < hi; i++ {
			if errs[i] != nil {
				return errs[i]
			}
		}
		done = hi
		if progress != nil {
			progress(done, o.N)
		}
	}
	return writeJSONL(filepath.Join(out, "metadata.jsonl"), rows)
}

// ParseAudioCaption recovers the structured fields from a caption of the
// set's grammar (also from a user's prompt that follows it loosely, e.g.
// "a slow piano melody in C major"): what it names is filled, the rest is
// left empty.
func ParseAudioCaption(c string) AudioSample {
	var s AudioSample
	words := strings.Fields(strings.ToLower(strings.NewReplacer(",", " ").Replace(c)))
	for i, w := range words {
		for _, t := range AudioTempi {
			if w == t.Word {
				s.Tempo = t.Word
			}
		}
		for _, in := range AudioInstruments {
			if w == in || w == in+"s" {
				s.Instrument = in
			}
		}
		switch w {
		case "melody", "chords", "arpeggio":
			s.Kind = w
		case "drum", "drums":
			if i+1 < len(words) && words[i+1] == "beat" {
				s.Kind = "drum beat"
			} else {
				s.Drums = true
			}
		case "major", "minor":
			s.Mode = w
			if i > 0 {
				if _, ok := tonicPC[strings.ToUpper(words[i-1])]; ok {
					s.Tonic = strings.ToUpper(words[i-1])
				}
			}
		case "bpm":
			if i > 0 {
				fmt.Sscan(words[i-1], &s.BPM)
			}
		}
	}
	return s
}

// parallelFor runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallelFor(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
