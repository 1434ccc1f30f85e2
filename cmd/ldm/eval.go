package main

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

func init() { subcommands = append(subcommands, newEvalCmd) }

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure a model: prompt alignment, FD/KID (ldm), reconstructions (vae), shapes alignment",
		Long: `eval measures a model with the classifiers this project trained (ldm train classifier; the emoji
and shapes classifiers are embedded). See docs/EVAL.md for what each number means.`,
	}
	cmd.AddCommand(newEvalLDMCmd(), newEvalVAECmd(), newEvalShapesCmd(), newEvalAudioCmd())
	return cmd
}

// evalFlags are the flags every eval command shares.
type evalFlags struct {
	model, classifier, jsonOut string
	modelName                  string // set by generateAndClassify
}

func (e *evalFlags) add(cmd *cobra.Command, classifierHelp bool) {
	f := cmd.Flags()
	f.StringVar(&e.model, "model", "", "model folder or file (default: the embedded default model)")
	if classifierHelp {
		f.StringVar(&e.classifier, "classifier", "", "classifier folder written by `ldm train classifier` (default: the embedded one)")
	}
	f.StringVar(&e.jsonOut, "json", "", "also write every number to this JSON file")
}

// load opens the model and returns it with the name to report.
func (e *evalFlags) load(cmd *cobra.Command) (*ldm.Pipeline, string, error) {
	path, name := e.model, e.model
	if path == "" {
		p, err := defaultModel()
		if err != nil {
			return nil, "", err
		}
		path, name = p, models.Name+" (embedded)"
	}
	pipe, err := ldm.Load(path, ldm.LoadOptions{Backend: backendFlag(cmd)})
	if err != nil {
		return nil, "", err
	}
	return pipe, name, nil
}

// generateAndClassify loads the model and the task's classifier and runs
// evaluate with generation progress on stderr, cancelled by SIGINT/SIGTERM.
func (e *evalFlags) generateAndClassify(cmd *cobra.Command, task string, o *classify.GenOptions,
	evaluate func(ctx stdctx.Context, pipe *ldm.Pipeline, clf *classify.Model) error) error {
	pipe, name, err := e.load(cmd)
	if err != nil {
		return err
	}
	e.modelName = name
	clf, err := classify.LoadOrEmbedded(pipe.Backend, e.classifier, task)
	if err != nil {
		return err
	}
	o.Progress = genProgress(cmd.ErrOrStderr())
	ctx, stop := signalContext()
	defer stop()
	return evaluate(ctx, pipe, clf)
}

// names are the model and classifier names a report shows: the classifier
// folder when one was given, else the report's own (embedded) name.
func (e *evalFlags) names(classifier string) (string, string) {
	if e.classifier != "" {
		classifier = e.classifier
	}
	return e.modelName, classifier
}

func (e *evalFlags) writeJSON(v any) error {
	if e.jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(e.jsonOut, append(b, '\n'))
}

// genFlags adds the generation flags. Its --lora flags are parsed into
// o.LoRAs before the command runs.
func genFlags(cmd *cobra.Command, o *classify.GenOptions) {
	f := cmd.Flags()
	var loras []string
	f.StringArrayVar(&loras, "lora", nil, "apply this LoRA to every image: FILE[:WEIGHT] (repeatable)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		o.LoRAs = nil
		for _, l := range loras {
			spec, err := parseLoRAFlag(l)
			if err != nil {
				return err
			}
			o.LoRAs = append(o.LoRAs, spec)
		}
		return nil
	}
	f.IntVar(&o.N, "n", o.N, "images to generate (one per prompt)")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed: chooses the prompts; image i gets seed+i")
	f.IntVar(&o.Steps, "steps", o.Steps, "sampling steps")
	f.Float64Var(&o.CFG, "cfg", o.CFG, "classifier-free guidance scale")
	f.StringVar(&o.Sampler, "sampler", o.Sampler, "sampler (default: DDIM)")
	f.IntVar(&o.Size, "size", o.Size, "generated image side (0: the model's native size)")
	f.IntVar(&o.Batch, "batch", o.Batch, "prompts per U-Net batch")
}

// openData opens the evaluation dataset, with a clear error for a missing
// flag or folder.
func openData(path string) (*data.Dataset, error) {
	if path == "" {
		return nil, fmt.Errorf("give the dataset with held-out split: --data (e.g. the folder of `ldm data emoji`)")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	return data.Open(path)
}

// genProgress writes "generated i/n" on one line.
func genProgress(w io.Writer) func(done, total int) {
	return func(done, total int) {
		fmt.Fprintf(w, "\rgenerated %d/%d", done, total)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

func newEvalLDMCmd() *cobra.Command {
	var ef evalFlags
	var dataDir string
	o := classify.GenOptions{N: 200, Seed: 1, Steps: 20, CFG: 7.5, Batch: 8}
	cmd := &cobra.Command{
		Use:   "ldm",
		Short: "Prompt alignment (top-1/top-5) and FD/KID against held-out real images",
		Long: `ldm generates --n images from the held-out captions of --data (chosen by --seed; image i has seed
seed+i), classifies them with the emoji classifier and reports, per label field, how often the
prompt's label is the classifier's top-1 / among its top-5 — beside the levels that need no text
(images judged against other prompts' labels, the most frequent training classes, a uniform guess)
and the classifier's own accuracy on the real held-out images (the ceiling). It then reports the
Fréchet distance and KID between the generated and the real held-out images in the classifier's
feature space, and the same for as many real training images (the floor).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := openData(dataDir)
			if err != nil {
				return err
			}
			var rep *classify.LDMReport
			err = ef.generateAndClassify(cmd, "emoji", &o, func(ctx stdctx.Context, pipe *ldm.Pipeline, clf *classify.Model) (err error) {
				rep, err = classify.EvaluateLDM(ctx, pipe, clf, ds, o)
				return err
			})
			if err != nil {
				return err
			}
			rep.Model, rep.Classifier = ef.names(rep.Classifier)
			printLDMReport(cmd.OutOrStdout(), rep)
			return ef.writeJSON(rep)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "dataset with a held-out split and the classifier's label fields (required)")
	ef.add(cmd, true)
	genFlags(cmd, &o)
	cmd.Flags().IntVar(&o.PromptTags, "prompt-tags", 0, "prompt with only the first N comma-separated tags of each caption "+
		"(1: the emoji's name, as people type it; 0: the whole caption)")
	return cmd
}

func printLDMReport(w io.Writer, r *classify.LDMReport) {
	g := r.Gen
	sampler := g.Sampler
	if sampler == "" {
		sampler = "DDIM"
	}
	fmt.Fprintf(w, "model %s · classifier %s · data %s\n", r.Model, r.Classifier, r.Data)
	what := "captions"
	if g.PromptTags > 0 {
		what = fmt.Sprintf("captions cut to their first %d tag(s)", g.PromptTags)
	}
	fmt.Fprintf(w, "%d images generated from %d distinct held-out %s (of %d held-out images); seed %d, %d steps, CFG %g, %s; %.0f s\n\n",
		g.N, r.Prompts, what, r.HeldOut, g.Seed, g.Steps, g.CFG, sampler, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "prompt alignment\t\ttop-1\ttop-5\t")
	for _, a := range r.Alignment {
		fmt.Fprintf(tw, "%s (%d classes)\tgenerated\t%s\t%s\t\n", a.Field, a.Classes, pct(a.Top1), pct(a.Top5))
		fmt.Fprintf(tw, "\tprompt-independent\t%s\t%s\t\n", pct(a.PromptIndependentTop1), pct(a.PromptIndependentTop5))
		fmt.Fprintf(tw, "\tmajority classes\t%s\t%s\t\n", pct(a.MajorityTop1), pct(a.MajorityTop5))
		fmt.Fprintf(tw, "\tuniform chance\t%s\t%s\t\n", pct(a.UniformTop1), pct(a.UniformTop5))
		fmt.Fprintf(tw, "\treal held-out (ceiling)\t%s\t%s\t\n", pct(a.RealTop1), pct(a.RealTop5))
	}
	tw.Flush()
	fmt.Fprintln(w)
	printDistances(w, r.Generated, r.Reference)
}

func printDistances(w io.Writer, ds ...classify.Distance) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "classifier feature space\tFD\tKID\tsamples\t")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s vs %s\t%.3f\t%.4f\t%d vs %d\t\n", d.A, d.B, d.FD, d.KID, d.NA, d.NB)
	}
	tw.Flush()
}

func newEvalVAECmd() *cobra.Command {
	var ef evalFlags
	var dataDir string
	n, size := 390, 64
	cmd := &cobra.Command{
		Use:   "vae",
		Short: "PSNR and SSIM of the VAE's reconstructions of held-out images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := openData(dataDir)
			if err != nil {
				return err
			}
			pipe, name, err := ef.load(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			rep, err := classify.EvaluateVAE(ctx, pipe.VAE, ds, n, size)
			if err != nil {
				return err
			}
			rep.Model = name
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "model %s · data %s\n", rep.Model, rep.Data)
			fmt.Fprintf(w, "VAE reconstruction (posterior mean) of %d held-out images at %d²: PSNR %.2f dB, SSIM %.4f\n",
				rep.Images, rep.Size, rep.PSNR, rep.SSIM)
			return ef.writeJSON(rep)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "dataset with a held-out split (required)")
	cmd.Flags().IntVar(&n, "n", n, "held-out images (at most; the first n)")
	cmd.Flags().IntVar(&size, "size", size, "image size")
	ef.add(cmd, false)
	return cmd
}

func newEvalShapesCmd() *cobra.Command {
	var ef evalFlags
	var shapesSeed uint64 = 1000
	o := classify.GenOptions{N: 200, Seed: 1, Steps: 20, CFG: 7.5, Batch: 8}
	cmd := &cobra.Command{
		Use:   "shapes",
		Short: "Shapes-set alignment: colour, shape and both correct, judged by the shapes classifier",
		Long: `shapes draws --n procedural shapes captions (data.Shape with --shapes-seed; pick one the model was not
trained on), generates one image per caption with --model and reports how often the shapes
classifier sees the caption's colour, its shape, and both; the classifier on the true renderings
is the ceiling. Works with any model, trained on shapes or not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *classify.ShapesReport
			err := ef.generateAndClassify(cmd, "shapes", &o, func(ctx stdctx.Context, pipe *ldm.Pipeline, clf *classify.Model) (err error) {
				rep, err = classify.EvaluateShapes(ctx, pipe, clf, shapesSeed, o)
				return err
			})
			if err != nil {
				return err
			}
			rep.Model, rep.Classifier = ef.names(rep.Classifier)
			w := cmd.OutOrStdout()
			g := rep.Gen
			fmt.Fprintf(w, "model %s · classifier %s\n", rep.Model, rep.Classifier)
			fmt.Fprintf(w, "%d shapes prompts (shapes seed %d); seed %d, %d steps, CFG %g; %.0f s\n\n", g.N, rep.ShapesSeed, g.Seed, g.Steps, g.CFG, rep.Seconds)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "shapes alignment\tcolour\tshape\tboth\t")
			fmt.Fprintf(tw, "generated\t%s\t%s\t%s\t\n", pct(rep.Color), pct(rep.Shape), pct(rep.Both))
			fmt.Fprintf(tw, "uniform chance\t%s\t%s\t%s\t\n", pct(rep.ChanceColor), pct(rep.ChanceShape), pct(rep.ChanceColor*rep.ChanceShape))
			fmt.Fprintf(tw, "true renderings (ceiling)\t%s\t%s\t%s\t\n", pct(rep.RealColor), pct(rep.RealShape), pct(rep.RealBoth))
			tw.Flush()
			fmt.Fprintln(w)
			printDistances(w, rep.Generated)
			return ef.writeJSON(rep)
		},
	}
	cmd.Flags().Uint64Var(&shapesSeed, "shapes-seed", shapesSeed, "seed of the procedural shapes prompts")
	ef.add(cmd, true)
	genFlags(cmd, &o)
	return cmd
}
