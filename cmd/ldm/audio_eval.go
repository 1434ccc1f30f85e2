package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/audio/music"
	"github.com/ldm-project/ldm/internal/fsutil"
)

func newEvalAudioCmd() *cobra.Command {
	var (
		model  modelFlags
		o      music.EvalOptions
		report string
	)
	cmd := &cobra.Command{
		Use:   "audio",
		Short: "Prompt match of a music model by DSP: tempo (onset rate), key (pitch-class histogram), instrument (spectral centroid)",
		Long: `audio re-synthesises the set of ldm data audio (same --n, --seed, --holdout), fits nearest-mean
tempo and timbre classifiers on --fit training clips, and for each held-out caption generates one clip
with the model. It reports the classifiers' accuracy against the prompt on the generated clips, on the
real held-out clips (as synthesised, and through their spectrogram image and Griffin-Lim), against
shuffled prompts and at chance. The key is the best-correlating Krumhansl–Kessler profile of 14 keys;
"scale" counts relative keys (C major / A minor) as one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if model.path == "" {
				if model.path, err = defaultAudioModel(); err != nil {
					return err
				}
			}
			params, err := music.ModelParams(model.path)
			if err != nil {
				return err
			}
			p, _, err := model.open(cmd)
			if err != nil {
				return err
			}
			start := time.Now()
			o.Progress = newProgress(cmd.ErrOrStderr(), "held-out clips")
			r, err := music.Evaluate(cmd.Context(), p, params, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d held-out clips, %s\n\n%s", r.Clips, seconds(time.Since(start)), r.Markdown())
			if report != "" {
				b, _ := json.MarshalIndent(r, "", "  ")
				return fsutil.WriteAtomic(report, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err })
			}
			return nil
		},
	}
	f := cmd.Flags()
	model.register(f)
	f.IntVar(&o.Data.N, "n", 1200, "clips of the synthesised set (as ldm data audio --n)")
	f.Uint64Var(&o.Data.Seed, "seed", 0, "seed of the set (as ldm data audio --seed)")
	f.Float64Var(&o.Data.Holdout, "holdout", 0.05, "held-out fraction (as ldm data audio --holdout)")
	f.IntVar(&o.Fit, "fit", 200, "training clips that fit the classifiers")
	f.IntVar(&o.Limit, "limit", 0, "held-out clips to generate for (0: all)")
	f.IntVar(&o.Steps, "steps", 0, "denoising steps (default 20)")
	f.Int64Var(&o.Seed, "gen-seed", 1, "seed of the first generated clip")
	f.StringVar(&report, "report", "", "also write the report as JSON here")
	return cmd
}
