package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/compare"
	"github.com/ldm-project/ldm/nn"
)

func init() { subcommands = append(subcommands, newCompareCmd) }

func newCompareCmd() *cobra.Command {
	var (
		o          = compare.DefaultOptions()
		quick      bool
		classifier string
		rescore    string
	)
	cmd := &cobra.Command{
		Use:   "compare DATA | compare --rescore REPORT --classifier DIR",
		Short: "Train every baseline (AE, DAE, VAE, β-VAE, VQ-VAE, DCGAN, pixel DDPM) on one dataset and write a comparison report",
		Long: `compare trains the classic generative baselines on one image folder with the
same optimiser-step and batch budget, measures them with the same metrics
(Fréchet distance and KID in the feature space of a classifier, by default
the embedded emoji classifier, and in that of the run's autoencoder, precision/recall,
PSNR/SSIM, bits/dim, codebook perplexity, anomaly ROC-AUC, training time,
sampling speed) and writes report.md, results.json and the figures to --out.
--ldm adds a trained latent diffusion model ("default": the embedded one),
sampled with the test captions; with a classifier its prompt alignment
(top-1/top-5 per label against chance) is reported too. --rescore measures
the samples a finished run stored in its report folder again with
--classifier and rewrites that report. --quick uses reduced budgets (32², 100 steps of batch 16, 512 images,
64 samples, a 50-step DDPM on a half-width U-Net, 10 sampler steps for --ldm).`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rescore != "" {
				return rescoreReport(cmd, rescore, classifier)
			}
			if len(args) != 1 {
				return fmt.Errorf("compare needs a data folder (or --rescore REPORT)")
			}
			if quick {
				q := compare.QuickOptions()
				f := cmd.Flags()
				keep := func(name string, dst *int, v int) {
					if !f.Changed(name) {
						*dst = v
					}
				}
				keep("size", &o.Size, q.Size)
				keep("batch", &o.Batch, q.Batch)
				keep("steps", &o.Steps, q.Steps)
				keep("prior-steps", &o.PriorSteps, q.PriorSteps)
				keep("ddpm-timesteps", &o.DDPMTimesteps, q.DDPMTimesteps)
				keep("ddpm-nll", &o.DDPMNLL, q.DDPMNLL)
				keep("samples", &o.Samples, q.Samples)
				keep("ldm-steps", &o.LDMSteps, q.LDMSteps)
				keep("max-train", &o.MaxTrain, q.MaxTrain)
				keep("max-test", &o.MaxTest, q.MaxTest)
				if !f.Changed("lr") {
					o.LR = q.LR
				}
				if !f.Changed("ddpm-channels") {
					o.DDPMChannels = q.DDPMChannels
				}
			}
			o.Data = args[0]
			o.Command = "ldm " + strings.Join(os.Args[1:], " ")
			o.BackendName = backendFlag(cmd)
			b, err := nn.NewBackend(o.BackendName)
			if err != nil {
				return err
			}
			if o.LDM == "default" {
				if o.LDM, err = defaultModel(); err != nil {
					return err
				}
			}
			if o.Classifier, o.ClassifierName, err = loadClassifier(b, classifier); err != nil {
				return err
			}
			out := cmd.ErrOrStderr()
			start := time.Now()
			o.Log = func(s string) { fmt.Fprintf(out, "[%5.0fs] %s\n", time.Since(start).Seconds(), s) }
			ctx, stop := signalContext()
			defer stop()
			rep, err := compare.Run(ctx, b, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "report: %s/report.md (%d models, %.1f min)\n", o.Out, len(rep.Rows), rep.Seconds/60)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Out, "out", "o", "", "report folder (required)")
	f.BoolVar(&quick, "quick", false, "reduced budgets for a run of minutes on two cores (explicit flags still win)")
	f.IntVar(&o.Size, "size", o.Size, "image size (a power of two)")
	f.IntVar(&o.Batch, "batch", o.Batch, "batch size of every model")
	f.IntVar(&o.Steps, "steps", o.Steps, "optimiser steps of every model")
	f.IntVar(&o.PriorSteps, "prior-steps", o.PriorSteps, "optimiser steps of the VQ-VAE's prior")
	f.IntVar(&o.DDPMTimesteps, "ddpm-timesteps", o.DDPMTimesteps, "diffusion steps of the pixel DDPM")
	f.IntVar(&o.DDPMNLL, "ddpm-nll", o.DDPMNLL, "test images for the DDPM's likelihood bound (one U-Net pass per diffusion step each batch; 0: skip)")
	f.IntSliceVar(&o.DDPMChannels, "ddpm-channels", o.DDPMChannels, "block_out_channels of the pixel DDPM's U-Net")
	f.Float64Var(&o.LR, "lr", o.LR, "peak learning rate of the autoencoders (the prior and DDPM use half, the DCGAN 2e-4)")
	f.IntVar(&o.Samples, "samples", o.Samples, "generated images per model for the metrics")
	f.IntVar(&o.MaxTrain, "max-train", o.MaxTrain, "use at most this many training images (0: all)")
	f.IntVar(&o.MaxTest, "max-test", o.MaxTest, "use at most this many test images (0: all)")
	f.Uint64Var(&o.Seed, "seed", o.Seed, "seed of initialisation, data order and sampling")
	f.StringSliceVar(&o.Models, "models", o.Models, "models to run (the autoencoder always runs: it is the feature space)")
	f.StringVar(&o.LDM, "ldm", "", `also sample and measure this trained latent diffusion model (a diffusers folder or single file; "default": the embedded model)`)
	f.StringVar(&classifier, "classifier", "emoji", `classifier for the primary FD/KID feature space and prompt alignment: an embedded one ("emoji", "shapes"), a folder as `+"`ldm train classifier`"+` exports, or "none"`)
	f.IntVar(&o.LDMSteps, "ldm-steps", 20, "sampler steps of --ldm")
	f.BoolVar(&o.Resume, "resume", false, "keep the rows already in --out/results.json (same flags) and run only the missing models")
	f.StringVar(&rescore, "rescore", "", "re-measure the stored samples of this report folder with --classifier instead of running")
	return cmd
}

// rescoreReport is compare --rescore.
func rescoreReport(cmd *cobra.Command, dir, classifier string) error {
	b, err := nn.NewBackend(backendFlag(cmd))
	if err != nil {
		return err
	}
	clf, name, err := loadClassifier(b, classifier)
	if err != nil {
		return err
	}
	if clf == nil {
		return fmt.Errorf("--rescore needs a classifier (--classifier none given)")
	}
	ctx, stop := signalContext()
	defer stop()
	rep, err := compare.Rescore(ctx, b, dir, clf, name, "ldm "+strings.Join(os.Args[1:], " "))
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "report: %s/report.md (%d models re-measured)\n", dir, len(rep.Rows))
	return nil
}

// loadClassifier resolves --classifier: "none" (or empty) for no
// classifier, the task name of an embedded classifier (unless a folder of
// that name exists), or a classifier folder. It returns the model and the
// name the report gives it.
func loadClassifier(b backends.Backend, arg string) (*classify.Model, string, error) {
	if arg == "" || arg == "none" {
		return nil, "", nil
	}
	if _, err := os.Stat(arg); err != nil && slices.Contains(classify.EmbeddedTasks(), arg) {
		m, err := classify.Embedded(b, arg)
		return m, fmt.Sprintf("embedded %q (classify/models/%s)", arg, arg), err
	}
	m, err := classify.Load(b, arg)
	return m, classifierName(arg), err
}

// classifierName names a classifier folder in a report: its path and the
// first 12 hex digits of its weights' SHA-256, so that a report says which
// weights measured it.
func classifierName(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, classify.WeightsFile))
	if err != nil {
		return dir
	}
	h := sha256.Sum256(b)
	return fmt.Sprintf("%s (weights sha256 %s)", dir, hex.EncodeToString(h[:])[:12])
}
