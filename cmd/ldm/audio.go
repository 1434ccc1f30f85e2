package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/audio"
	"github.com/ldm-project/ldm/audio/music"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/models"
)

func init() {
	subcommands = append(subcommands, newAudioCmd, newAudioInfoCmd, newAudioConvertCmd)
}

func newAudioCmd() *cobra.Command {
	var (
		model                 modelFlags
		req                   music.Request
		output, specOut, init string
		from, format          string
		toSeed                int64
	)
	cmd := &cobra.Command{
		Use:   "audio PROMPT -o clip.wav",
		Short: "Text to music: draw mel spectrograms with a diffusion model (Riffusion's method) and turn them into a WAV",
		Long: `audio draws mel spectrogram images with an SD1.x model and recovers the sound (mel inverse,
Griffin-Lim, mastering to −12 dBFS). The default model is the project's small audio model; a
Riffusion checkpoint (riffusion-model-v1, as a diffusers folder or single file) works with --model.
The spectrogram parameters come from the model's spectrogram.json, else Riffusion's (512 mels, 10 ms).

  ldm audio "a slow piano melody in C major" -o a.wav
  ldm audio "fast drum beat" --duration 12 -o beat.wav                  # clips stitched with crossfades
  ldm audio --from "organ chords" --to "flute melody" --frames 5 -o walk.wav   # prompt interpolation
  ldm audio --from "guitar" --to "bell" --loop -o loop.wav               # seamless loop
  ldm audio "bell arpeggio" --init-audio in.wav --strength 0.6 -o out.wav`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				req.Prompt = args[0]
			}
			if from != "" {
				if req.Prompt != "" {
					return fmt.Errorf("give the prompt either as PROMPT or as --from, not both")
				}
				req.Prompt = from
			}
			if strings.TrimSpace(req.Prompt) == "" {
				return fmt.Errorf("give a PROMPT (or --from and --to)")
			}
			if req.Loop && req.To == "" {
				return fmt.Errorf("--loop walks between two prompts: give --to")
			}
			if cmd.Flags().Changed("to-seed") {
				req.ToSeed = &toSeed
			}
			if output == "" {
				return fmt.Errorf("give the output WAV with -o")
			}
			sf, err := audio.ParseSampleFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if model.path == "" {
				if model.path, err = defaultAudioModel(); err != nil {
					return err
				}
				if model.load.Name == "" {
					model.load.Name = models.AudioName
				}
			}
			params, err := music.ModelParams(model.path)
			if err != nil {
				return err
			}
			if init != "" {
				clip, err := readWAVFile(init)
				if err != nil {
					return fmt.Errorf("--init-audio: %w", err)
				}
				req.InitAudio = audio.Resample(clip.Mono(), clip.Rate, params.SampleRate)
			}
			start := time.Now()
			p, loadTime, err := model.open(cmd)
			if err != nil {
				return err
			}
			errw := cmd.ErrOrStderr()
			bar := newStepBar(errw)
			res, err := music.Generate(cmd.Context(), p, params, req, func(pr music.Progress) {
				if pr.Spectrogram != nil {
					bar.finish()
					return
				}
				bar.prefix = fmt.Sprintf("clip %d/%d ", pr.Clip, pr.Clips)
				bar.update(pr.Progress)
			})
			bar.finish()
			if err != nil {
				return err
			}
			if err := writeWAVFile(output, res.Rate, sf, res.Audio); err != nil {
				return err
			}
			if specOut != "" {
				for i, img := range res.Spectrograms {
					name := specOut
					if len(res.Spectrograms) > 1 {
						ext := filepath.Ext(specOut)
						name = fmt.Sprintf("%s-%02d%s", strings.TrimSuffix(specOut, ext), i+1, ext)
					}
					err := fsutil.WriteAtomic(name, func(w io.Writer) error { return audio.EncodePNG(w, img, res.Params, audio.DefaultMaxValue) })
					if err != nil {
						return err
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %.2f s at %d Hz from %d clip(s), seed %d (model loaded in %s, %s in all)\n", output,
				float64(len(res.Audio))/float64(res.Rate), res.Rate, len(res.Spectrograms), res.Seed, seconds(loadTime), seconds(time.Since(start)))
			return nil
		},
	}
	f := cmd.Flags()
	model.register(f)
	f.StringVarP(&output, "output", "o", "", "output WAV file")
	f.StringVar(&format, "format", "pcm16", "WAV samples: pcm16 or float32")
	f.StringVar(&specOut, "spectrogram-out", "", "also write the spectrogram image(s) here (PNG with Riffusion's EXIF tags; -NN suffixes for several clips)")
	f.Float64Var(&req.Duration, "duration", 0, "length in seconds, by stitching clips (0: one clip)")
	f.Float64Var(&req.Crossfade, "crossfade", 0, "overlap between stitched clips in seconds (default 0.25)")
	f.Int64Var(&req.Seed, "seed", -1, "seed of the first clip (-1: random); clip k gets seed+k")
	f.IntVar(&req.Steps, "steps", 0, "denoising steps per clip (default 20)")
	f.Float64Var(&req.GuidanceScale, "cfg", 0, "classifier-free guidance scale (default 7.5)")
	f.StringVar(&req.Sampler, "sampler", "", "sampler (default DDIM; any name ldm generate takes)")
	f.StringVar(&req.NegativePrompt, "negative", "", "negative prompt")
	f.IntVar(&req.Width, "width", 0, "spectrogram columns per clip (default: the model's sample size)")
	f.StringVar(&from, "from", "", "interpolation: the first prompt (instead of PROMPT)")
	f.StringVar(&req.To, "to", "", "interpolation: the second prompt")
	f.Int64Var(&toSeed, "to-seed", 0, "interpolation: the second prompt's seed (default seed+1)")
	f.IntVar(&req.Clips, "frames", 0, "interpolation: number of clips from --from to --to (default 5)")
	f.BoolVar(&req.Loop, "loop", false, "interpolation: walk to --to and back, wrapping the end into the start (a seamless loop)")
	f.StringVar(&init, "init-audio", "", "audio-to-audio: redraw this WAV through img2img on its spectrogram")
	f.Float64Var(&req.Strength, "strength", 0, "with --init-audio: how much to redraw, 0–1 (default 0.5)")
	f.IntVar(&req.GriffinLimIters, "griffin-lim-iters", 0, "Griffin-Lim iterations (default: the model's, 32)")
	return cmd
}

func readWAVFile(path string) (*audio.Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := audio.ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func writeWAVFile(path string, rate int, f audio.SampleFormat, x []float64) error {
	return fsutil.WriteAtomic(path, func(w io.Writer) error { return audio.WriteWAV(w, rate, f, x) })
}

func newAudioInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "audio-info FILE.wav|FILE.png",
		Short: "Show a WAV's format and levels, or a spectrogram image's parameters (Riffusion's EXIF tags)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if bytes.HasPrefix(b, []byte("RIFF")) {
				c, err := audio.ReadWAV(bytes.NewReader(b))
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				m := c.Mono()
				fmt.Fprintf(w, "%s: WAV, %d Hz, %d channel(s), %d samples = %.3f s, RMS %.1f dBFS, peak %.1f dBFS\n", args[0],
					c.Rate, len(c.Channels), len(m), c.Duration(), audio.RMSDBFS(m), audio.PeakDBFS(m))
				return nil
			}
			img, info, err := audio.DecodePNG(b, audio.Riffusion())
			if err != nil {
				return fmt.Errorf("%s: not a WAV, and %w", args[0], err)
			}
			p := info.Params
			src := "EXIF tags"
			if !info.Tagged {
				src = "no spectrogram tags: Riffusion's defaults"
			}
			cols := img.Bounds().Dx()
			fmt.Fprintf(w, "%s: spectrogram image %d×%d (%s)\n", args[0], cols, img.Bounds().Dy(), src)
			fmt.Fprintf(w, "  %d Hz, hop %d ms, window %d ms, n_fft %d ms (%d samples), %d %s mel bins %d–%d Hz, power %g, max value %g\n",
				p.SampleRate, p.StepSizeMS, p.WindowDurationMS, p.PaddedDurationMS, p.NFFT(), p.NumFrequencies, p.MelScale,
				p.MinFrequency, p.MaxFrequency, p.PowerForImage, info.MaxValue)
			fmt.Fprintf(w, "  %d columns = %.3f s of audio\n", cols, float64(p.Samples(cols))/float64(p.SampleRate))
			if p.NumFrequencies != img.Bounds().Dy() {
				fmt.Fprintf(w, "  warning: %d mel bins in the tags but the image is %d rows tall\n", p.NumFrequencies, img.Bounds().Dy())
			}
			return nil
		},
	}
}

func newAudioConvertCmd() *cobra.Command {
	var (
		model, format string
		seed          uint64
		iters         int
	)
	cmd := &cobra.Command{
		Use:   "audio-convert IN OUT",
		Short: "WAV → spectrogram image (PNG with EXIF parameters) or spectrogram image → WAV",
		Long: `audio-convert turns a WAV into a mel spectrogram image in Riffusion's convention, with the
parameters of --model's spectrogram.json (default: Riffusion's), or an image back into a WAV with the
parameters in its EXIF tags (mel inverse, Griffin-Lim, mastering to −12 dBFS).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, out := args[0], args[1]
			b, err := os.ReadFile(in)
			if err != nil {
				return err
			}
			start := time.Now()
			if bytes.HasPrefix(b, []byte("RIFF")) {
				c, err := audio.ReadWAV(bytes.NewReader(b))
				if err != nil {
					return fmt.Errorf("%s: %w", in, err)
				}
				p := audio.Riffusion()
				if model != "" {
					if p, err = music.ModelParams(model); err != nil {
						return err
					}
				}
				conv, err := audio.NewConverter(p)
				if err != nil {
					return err
				}
				img, peak := conv.ImageFromAudio(audio.Resample(c.Mono(), c.Rate, p.SampleRate))
				if err := fsutil.WriteAtomic(out, func(w io.Writer) error { return audio.EncodePNG(w, img, p, peak) }); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d×%d spectrogram of %.2f s in %s\n", out, img.Bounds().Dx(), img.Bounds().Dy(), c.Duration(), seconds(time.Since(start)))
				return nil
			}
			sf, err := audio.ParseSampleFormat(format)
			if err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			img, info, err := audio.DecodePNG(b, audio.Riffusion())
			if err != nil {
				return fmt.Errorf("%s: not a WAV, and %w", in, err)
			}
			if iters > 0 {
				info.Params.GriffinLimIters = iters
			}
			conv, err := audio.NewConverter(info.Params)
			if err != nil {
				return fmt.Errorf("%s: its spectrogram parameters: %w", in, err)
			}
			x, err := conv.AudioFromImage(context.Background(), img, info.MaxValue, audio.Recovery{Seed: seed})
			if err != nil {
				return err
			}
			if err := writeWAVFile(out, info.Params.SampleRate, sf, x); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %.2f s at %d Hz in %s\n", out, float64(len(x))/float64(info.Params.SampleRate), info.Params.SampleRate, seconds(time.Since(start)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "WAV → image: take the spectrogram parameters of this model (its spectrogram.json); default Riffusion's")
	f.StringVar(&format, "format", "pcm16", "image → WAV: pcm16 or float32")
	f.Uint64Var(&seed, "seed", 0, "image → WAV: seed of Griffin-Lim's initial phases")
	f.IntVar(&iters, "griffin-lim-iters", 0, "image → WAV: Griffin-Lim iterations (default 32)")
	return cmd
}

// defaultAudioModel materialises the embedded music model (once, into the
// user cache) and returns its folder, used when no --model is given.
func defaultAudioModel() (string, error) {
	p, err := models.AudioPath()
	if err != nil {
		return "", fmt.Errorf("no --model given and the embedded music model could not be unpacked: %w (pass --model)", err)
	}
	return p, nil
}
