package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/data"
)

func newDataAudioCmd() *cobra.Command {
	var opts data.AudioOptions
	cmd := &cobra.Command{
		Use:   "audio OUT",
		Short: "Synthesise the captioned music set (melodies, chords, arpeggios, drum beats) as spectrogram images",
		Long: `audio synthesises short clips in Go — five timbres (piano, organ, flute, guitar, bell) playing
melodies, chords or arpeggios in 7 major and 7 minor keys at three tempi, optionally over drums, and
drum beats alone — and writes OUT/images/NNNNN.png (mel spectrograms in Riffusion's image
convention, parameters in EXIF), OUT/metadata.jsonl (caption and fields: instrument, kind, tonic,
mode, tempo, bpm, drums, split), OUT/spectrogram.json and OUT/wav/NNNNN.wav for the held-out clips.
Clip i depends only on (--seed, i). Nothing is downloaded: every sound is synthesised.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			if err := data.GenerateAudio(cmd.Context(), args[0], opts, newProgress(cmd.ErrOrStderr(), "audio")); err != nil {
				return err
			}
			p := data.AudioParams()
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d clips of %.2f s as %d×%d spectrograms in %.1fs\n", args[0], opts.N,
				float64(p.Samples(p.NumFrequencies))/float64(p.SampleRate), p.NumFrequencies, p.NumFrequencies, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.N, "n", 2000, "number of clips")
	f.Uint64Var(&opts.Seed, "seed", 0, "random seed")
	f.Float64Var(&opts.Holdout, "holdout", 0.05, "fraction of clips marked split test")
	return cmd
}
