package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

func init() { subcommands = append(subcommands, newTrainCmd, newFinetuneCmd) }

func newTrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model from scratch: vae, ldm",
	}
	cmd.AddCommand(newTrainVAECmd(), newTrainLDMCmd(), newTrainClassifierCmd())
	return cmd
}

// optimFlags adds the optimiser flags shared by every training command.
func optimFlags(cmd *cobra.Command, c *train.Config) {
	f := cmd.Flags()
	f.Float64Var(&c.LR, "lr", c.LR, "peak learning rate (AdamW)")
	f.IntVar(&c.Steps, "steps", c.Steps, "optimiser steps (the cosine schedule's length)")
	f.IntVar(&c.WarmupSteps, "warmup", c.WarmupSteps, "linear warm-up steps")
	f.Float64Var(&c.MinLRFrac, "min-lr-frac", c.MinLRFrac, "cosine floor as a fraction of --lr")
	f.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW decoupled weight decay")
	f.Float64Var(&c.ClipNorm, "clip", c.ClipNorm, "clip gradients to this global norm (0: off)")
	f.Float64Var(&c.EMADecay, "ema", c.EMADecay, "EMA decay of the weights used for samples and export (0: off)")
	f.IntVar(&c.Accum, "accum", c.Accum, "gradient accumulation: micro-batches per step")
}

// runFlags are the flags of the loop itself.
type runFlags struct {
	out       string
	every     int
	keep      int
	hookEvery int
	resume    bool
}

func (r *runFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&r.out, "out", "o", "", "run folder: checkpoints, loss curve, samples, metrics.jsonl (required)")
	f.IntVar(&r.every, "checkpoint-every", 200, "write a checkpoint every N steps")
	f.IntVar(&r.keep, "keep", 3, "checkpoints kept")
	f.IntVar(&r.hookEvery, "sample-every", 500, "loss curve, samples and metrics every N steps")
	f.BoolVar(&r.resume, "resume", false, "continue the newest checkpoint in --out exactly (its stored settings win)")
	_ = cmd.MarkFlagRequired("out")
}

// resumePath is the checkpoint to resume, or "" for a fresh run.
func (r *runFlags) resumePath() (string, error) {
	if !r.resume {
		if train.Latest(r.out) != "" {
			return "", fmt.Errorf("%s already holds checkpoints: pass --resume to continue, or choose another --out", r.out)
		}
		return "", nil
	}
	p := train.Latest(r.out)
	if p == "" {
		return "", fmt.Errorf("--resume: no checkpoint in %s", r.out)
	}
	return p, nil
}

// extendSteps applies an explicit --steps to a resumed run (which otherwise
// keeps its stored settings): the cosine schedule is stretched to the new end.
func extendSteps(cmd *cobra.Command, t *train.Trainer, stored *train.Config, steps int) {
	if cmd.Flags().Changed("steps") {
		stored.Steps, t.Config.Steps = steps, steps
	}
}

// reportSkipped names the images a dataset could not read.
func reportSkipped(w io.Writer, ds *train.Dataset) {
	for _, s := range ds.Skipped {
		fmt.Fprintf(w, "skipped %s\n", s)
	}
}

// signalContext is cancelled by SIGINT/SIGTERM so that the loop writes a
// final checkpoint.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// progressBar draws one line per update: bar, step, loss, it/s, img/s, ETA.
func progressBar(w io.Writer) func(train.Progress) {
	last := time.Time{}
	return func(p train.Progress) {
		if time.Since(last) < 500*time.Millisecond && p.Step != p.Steps && p.Checkpoint == "" {
			return
		}
		last = time.Now()
		const width = 30
		done := width * p.Step / max(p.Steps, 1)
		bar := strings.Repeat("█", done) + strings.Repeat("░", width-done)
		fmt.Fprintf(w, "\r%s %d/%d loss %.4f lr %.2e %.2f it/s %.1f img/s ETA %s ", bar, p.Step, p.Steps,
			p.Loss, p.LR, p.ItPerSec, p.ImgPerSec, p.ETA.Round(time.Second))
		if p.Checkpoint != "" {
			fmt.Fprintf(w, "\n  checkpoint %s\n", p.Checkpoint)
		}
	}
}

func newTrainVAECmd() *cobra.Command {
	run := train.VAERun{Size: 64, Batch: 16, Seed: 1, VAE: train.SmallVAEConfig(),
		Loss: train.VAELossOpts{L1: 1, KL: 1e-6, Disc: train.DefaultDiscConfig()}, Train: train.DefaultConfig()}
	run.Train.LR = 1e-3
	var rf runFlags
	var blocks []int
	var exportTo string
	cmd := &cobra.Command{
		Use:   "vae <image-folder>",
		Short: "Train a KL-VAE (L1/MSE reconstruction + β·KL, optional perceptual and adversarial terms) on an image folder",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				run.Data = args[0]
			}
			if len(blocks) > 0 {
				run.VAE.BlockOutChannels = blocks
				run.VAE.DownBlockTypes = repeat("DownEncoderBlock2D", len(blocks))
				run.VAE.UpBlockTypes = repeat("UpDecoderBlock2D", len(blocks))
			}
			resume, err := rf.resumePath()
			if err != nil {
				return err
			}
			if resume == "" && run.Data == "" {
				return fmt.Errorf("give the image folder")
			}
			if err := os.MkdirAll(rf.out, 0o755); err != nil { // the loss curve may come before the first checkpoint
				return err
			}
			b, err := nn.NewBackend(backendFlag(cmd))
			if err != nil {
				return err
			}
			if resume == "" && run.Loss.Perceptual == 0 || resume != "" && !cmd.Flags().Changed("perceptual-net") {
				run.Loss.PerceptualNet = "" // only a run with the term names a network; a resume uses the stored one unless given
			}
			if run.Loss.Adversarial == 0 {
				run.Loss.DiscStart, run.Loss.Disc, run.Loss.AdaptiveWeight = 0, train.DiscConfig{}, false
			}
			t, err := train.NewVAETrainer(b, run, resume, perceptualNets(b))
			if err != nil {
				return err
			}
			extendSteps(cmd, t.Trainer, &t.Run.Train, run.Train.Steps)
			if exportTo != "" {
				if resume == "" {
					return fmt.Errorf("--export writes a checkpoint of the run: give --resume")
				}
				return train.ExportVAE(t.Ctx, t.Run.VAE, exportTo)
			}
			out := cmd.ErrOrStderr()
			reportSkipped(out, t.Data)
			fmt.Fprintf(out, "VAE: %d parameters, %d training images, batch %d×%d\n", t.NumParams(), len(t.Data.Examples), t.Run.Batch, t.Run.Train.Accum)
			ctx, stop := signalContext()
			defer stop()
			hook := func(step int) error {
				if err := train.WriteLossCurve(filepath.Join(rf.out, "loss.png"), "train vae", "loss (weighted sum of the terms)", t.Losses, 50); err != nil {
					return err
				}
				ev, err := t.Evaluate(b, rf.out, 64)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n  step %d: held-out PSNR %.2f dB, SSIM %.3f (%d images)", step, ev.PSNR, ev.SSIM, ev.Images)
				if n := len(t.DiscLosses); n > 0 {
					fmt.Fprintf(out, "; discriminator loss %.3f (last step)", t.DiscLosses[n-1])
				}
				fmt.Fprintln(out)
				return train.AppendJSONL(filepath.Join(rf.out, "metrics.jsonl"), ev)
			}
			err = t.Loop(ctx, t.Run.Train.Steps, t.Batch, train.LoopOptions{Dir: rf.out, Every: rf.every, Keep: rf.keep,
				Extra: t.Run, ImgPerStep: t.Run.Batch * t.Run.Train.Accum, Hook: hook, HookEvery: rf.hookEvery, Progress: progressBar(out)})
			fmt.Fprintln(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&exportTo, "export", "", "with --resume: write the newest checkpoint's EMA weights as a diffusers vae folder here, and stop")
	f.IntVar(&run.Size, "size", run.Size, "image size")
	f.StringVar(&run.Init, "init", "", "start from these weights instead of random ones: a checkpoint of ldm train vae, or a diffusers model or vae folder "+
		"(its architecture replaces --blocks, --layers, --latent-channels, --norm-groups)")
	f.StringVar(&run.TrainOnly, "train-only", "", `train only this part: "decoder" (with --init: the encoder and so the latent space stay fixed, `+
		`and latent diffusion models trained on the --init VAE keep working with the result, as Stable Diffusion's ft-MSE VAE); default: all`)
	f.IntVar(&run.Crop, "crop", run.Crop, "train on random crops of this size (0: whole images)")
	f.Float64Var(&run.Holdout, "holdout", 0, "fraction of the images held out for the PSNR/SSIM evaluation when the dataset has no split column "+
		"(picked by a hash of each file name; 0: evaluate on training images)")
	f.IntVar(&run.VAE.NormNumGroups, "norm-groups", run.VAE.NormNumGroups, "GroupNorm groups")
	f.IntVar(&run.Batch, "batch", run.Batch, "micro-batch size")
	f.Uint64Var(&run.Seed, "seed", run.Seed, "seed of initialisation, data order and noise")
	f.IntSliceVar(&blocks, "blocks", nil, "block_out_channels (default 32,64,64: f4)")
	f.IntVar(&run.VAE.LatentChannels, "latent-channels", run.VAE.LatentChannels, "latent channels")
	f.IntVar(&run.VAE.LayersPerBlock, "layers", run.VAE.LayersPerBlock, "ResNet layers per block")
	f.Float64Var(&run.Loss.L1, "l1", run.Loss.L1, "L1 reconstruction weight")
	f.Float64Var(&run.Loss.MSE, "mse", run.Loss.MSE, "MSE reconstruction weight")
	f.Float64Var(&run.Loss.KL, "kl", run.Loss.KL, "KL weight (LDM convention: per-image sums)")
	f.Float64Var(&run.Loss.Perceptual, "perceptual", 0, "perceptual loss weight: LPIPS-style distance (unit-normalised channels, mean squared difference) "+
		"in the stage activations of the frozen --perceptual-net classifier; 0: off (in 300-step emoji runs it did not raise PSNR/SSIM, and weight 1 lowered them: see docs/PERFORMANCE.md, 'VAE loss terms')")
	f.StringVar(&run.Loss.PerceptualNet, "perceptual-net", "emoji", "frozen network of --perceptual: an embedded classifier's task (emoji, shapes) or a classifier folder; "+
		"with --resume, replaces the stored one (its weights must be the same)")
	f.Float64Var(&run.Loss.Adversarial, "adversarial", 0, "adversarial loss weight: generator term −mean D(x̂) of a PatchGAN discriminator with hinge loss; "+
		"0: off (in 300-step emoji runs it lowered PSNR: see docs/PERFORMANCE.md, 'VAE loss terms')")
	f.BoolVar(&run.Loss.AdaptiveWeight, "adaptive-weight", false, "scale the adversarial term by Esser et al.'s adaptive weight "+
		"‖∇rec‖/‖∇adv‖ at the decoder's last layer (otherwise the weight is fixed)")
	f.IntVar(&run.Loss.DiscStart, "disc-start", 0, "optimiser step from which the discriminator trains and the adversarial term counts (must be below --steps)")
	f.Float64Var(&run.Loss.Disc.LR, "disc-lr", run.Loss.Disc.LR, "discriminator Adam learning rate (constant; β 0.5/0.9)")
	f.IntSliceVar(&run.Loss.Disc.Channels, "disc-channels", run.Loss.Disc.Channels, "discriminator channels of its 4×4 stride-2 convolutions")
	f.IntVar(&run.Loss.Disc.Groups, "disc-groups", run.Loss.Disc.Groups, "discriminator GroupNorm groups (0: no normalisation)")
	optimFlags(cmd, &run.Train)
	rf.add(cmd)
	return cmd
}

// perceptualNets resolves --perceptual-net: a classifier folder, or the
// task of an embedded classifier.
func perceptualNets(b backends.Backend) func(string) (*train.FeatureNet, error) {
	return func(name string) (*train.FeatureNet, error) {
		dir := ""
		if _, err := os.Stat(filepath.Join(name, classify.ConfigFile)); err == nil {
			dir = name
		}
		m, err := classify.LoadOrEmbedded(b, dir, name)
		if err != nil {
			return nil, err
		}
		return m.PerceptualNet(name)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func backendFlag(cmd *cobra.Command) string {
	s, _ := cmd.Flags().GetString("backend")
	return s
}

func newTrainLDMCmd() *cobra.Command {
	run := train.LDMRun{Size: 64, Batch: 16, Seed: 1, TokenizerMerges: 2000, MaxLength: 32, Prediction: "epsilon",
		CaptionDropout: 0.1, TrainText: true, SchedulerClass: "EulerDiscreteScheduler", Train: train.DefaultConfig()}
	run.Train.LR = 5e-4
	var rf runFlags
	var hidden, layers, crossDim int
	var exportTo string
	var blocks []int
	var prompts []string
	cmd := &cobra.Command{
		Use:   "ldm <image-folder>",
		Short: "Train a latent diffusion model (U-Net + CLIP text encoder) on a frozen VAE",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				run.Data = args[0]
			}
			resume, err := rf.resumePath()
			if err != nil {
				return err
			}
			if resume == "" {
				if run.Data == "" || run.VAE == "" {
					return fmt.Errorf("give the image folder and --vae")
				}
				run.UNet = train.SmallUNetConfig(hidden)
				if len(blocks) > 0 {
					run.UNet.BlockOutChannels = blocks
				}
				run.Text = train.SmallTextConfig(0, hidden, layers, run.MaxLength)
				if crossDim != 0 && crossDim != hidden {
					return fmt.Errorf("--cross-dim must equal --text-hidden")
				}
				if run.Scheduler, err = train.SDSchedulerConfig(run.SchedulerClass, run.Prediction); err != nil {
					return err
				}
			}
			t, err := openLDMRun(cmd, run, rf.out, resume, prompts)
			if err != nil {
				return err
			}
			out := cmd.ErrOrStderr()
			if exportTo != "" {
				return t.Export(exportTo)
			}
			reportSkipped(out, t.Data)
			fmt.Fprintf(out, "LDM: %d trainable parameters, %d training images, batch %d×%d, latent scale %.4f\n",
				t.NumParams(), len(t.Data.Examples), t.Run.Batch, t.Run.Train.Accum, t.Run.ScalingFactor)
			ctx, stop := signalContext()
			defer stop()
			hook := func(step int) error {
				if err := train.WriteLossCurve(filepath.Join(rf.out, "loss.png"), "train ldm", "loss (MSE per latent element)", t.Losses, 50); err != nil {
					return err
				}
				dir := filepath.Join(rf.out, "model")
				if err := t.Export(dir); err != nil {
					return err
				}
				path := filepath.Join(rf.out, fmt.Sprintf("samples-%08d.png", step))
				if err := train.SampleGrid(ctx, dir, path, t.Run.Prompts, 20, 1); err != nil {
					fmt.Fprintf(out, "\n  samples: %v\n", err)
					path = ""
				}
				return appendLossMetrics(rf, t, path)
			}
			err = t.Loop(ctx, t.Run.Train.Steps, t.Batch, train.LoopOptions{Dir: rf.out, Every: rf.every, Keep: rf.keep,
				Extra: t.Run, ImgPerStep: t.Run.Batch * t.Run.Train.Accum, Hook: hook, HookEvery: rf.hookEvery, Progress: progressBar(out)})
			fmt.Fprintln(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&exportTo, "export", "", "with --resume: write the newest checkpoint's EMA weights as a diffusers folder here, and stop")
	f.StringVar(&run.VAE, "vae", "", "frozen VAE: a diffusers vae folder, or a checkpoint of `ldm train vae`")
	f.StringVar(&run.Tokenizer, "tokenizer", "", "CLIP tokenizer folder (default: train a BPE on the captions)")
	f.IntVar(&run.TokenizerMerges, "merges", run.TokenizerMerges, "BPE merges when training the tokenizer")
	f.IntVar(&run.MaxLength, "max-length", run.MaxLength, "tokens per caption (text encoder positions)")
	f.IntVar(&run.Size, "size", run.Size, "image size")
	f.IntVar(&run.Batch, "batch", run.Batch, "micro-batch size")
	f.Uint64Var(&run.Seed, "seed", run.Seed, "seed of initialisation, data order and noise")
	f.StringVar(&run.Prediction, "prediction", run.Prediction, `"epsilon" or "v_prediction"`)
	f.Float64Var(&run.CaptionDropout, "caption-dropout", run.CaptionDropout, "probability of an empty caption (classifier-free guidance)")
	captionFlags(cmd, &run)
	f.BoolVar(&run.TrainText, "train-text", run.TrainText, "train the text encoder jointly (false: frozen at its initialisation)")
	f.StringVar(&run.SchedulerClass, "scheduler", run.SchedulerClass, "diffusers scheduler class written into the model")
	f.IntVar(&hidden, "text-hidden", 64, "text encoder width = U-Net cross-attention width")
	f.IntVar(&crossDim, "cross-dim", 0, "U-Net cross-attention width (must equal --text-hidden)")
	f.IntVar(&layers, "text-layers", 2, "text encoder layers")
	f.IntSliceVar(&blocks, "blocks", nil, "U-Net block_out_channels (default 32,64,64)")
	f.StringArrayVar(&prompts, "prompt", []string{"grinning face", "red apple", "red heart", "thumbs up", "dog face", "sun", "pizza", "rocket"}, "sample-grid prompts")
	optimFlags(cmd, &run.Train)
	rf.add(cmd)
	return cmd
}

func newFinetuneCmd() *cobra.Command {
	run := train.LDMRun{Size: 64, Batch: 4, Seed: 1, CaptionDropout: 0.1, Train: train.DefaultConfig()}
	run.Train.LR, run.Train.WarmupSteps, run.Train.Steps = 1e-4, 20, 500
	var rf runFlags
	var prompts []string
	cmd := &cobra.Command{
		Use:   "finetune <model> <image-folder>",
		Short: "Fine-tune a model's U-Net (full, or LoRA with --lora r) on an image folder",
		Long: `finetune trains the U-Net of a diffusers model (text encoder and VAE frozen) on an image folder in
any layout ldm reads: images with .txt captions beside them (kohya), a metadata.jsonl or
metadata.csv (file_name, text; a split column is optional, and only its "train" rows train), or a
CSV file. With --lora r only rank-r adapters on the attention projections are
trained and saved as <out>/lora.safetensors (kohya lora_unet_* keys, as AUTOMATIC1111 and ComfyUI
read them; "ldm generate --lora <out>/lora.safetensors" applies it);
otherwise the fine-tuned model is exported to <out>/model. <model> "default" is the embedded model.`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if len(args) == 2 {
				run.Data = args[1]
				if run.Base, err = modelArg(args[0]); err != nil {
					return err
				}
			}
			resume, err := rf.resumePath()
			if err != nil {
				return err
			}
			if resume == "" && run.Base == "" {
				return fmt.Errorf("give the model and the image folder")
			}
			if run.TrainText && run.LoRARank > 0 {
				return fmt.Errorf("--train-text trains the whole text encoder and --lora only adapters on the U-Net: use one of them")
			}
			t, err := openLDMRun(cmd, run, rf.out, resume, prompts)
			if err != nil {
				return err
			}
			out := cmd.ErrOrStderr()
			reportSkipped(out, t.Data)
			what := "full U-Net"
			if t.Run.TrainText && t.LoRA == nil {
				what = "full U-Net and text encoder"
			}
			if t.LoRA != nil {
				what = fmt.Sprintf("LoRA rank %d", t.LoRA.Rank)
			}
			fmt.Fprintf(out, "finetune (%s): %d trainable parameters, %d images, batch %d×%d\n",
				what, t.NumParams(), len(t.Data.Examples), t.Run.Batch, t.Run.Train.Accum)
			ctx, stop := signalContext()
			defer stop()
			hook := func(step int) error {
				if err := train.WriteLossCurve(filepath.Join(rf.out, "loss.png"), "finetune", "loss (MSE per latent element)", t.Losses, 50); err != nil {
					return err
				}
				model, lora := filepath.Join(rf.out, "model"), ""
				if t.LoRA != nil {
					model, lora = t.Run.Base, filepath.Join(rf.out, "lora.safetensors")
					if err := t.LoRA.SaveLoRA(t.Ctx, lora); err != nil {
						return err
					}
				} else if err := t.Export(model); err != nil {
					return err
				}
				path := filepath.Join(rf.out, fmt.Sprintf("samples-%08d.png", step))
				if err := train.SampleGridLoRA(ctx, model, lora, path, t.Run.Prompts, 20, 1); err != nil {
					fmt.Fprintf(out, "\n  samples: %v\n", err)
					path = ""
				}
				return appendLossMetrics(rf, t, path)
			}
			err = t.Loop(ctx, t.Run.Train.Steps, t.Batch, train.LoopOptions{Dir: rf.out, Every: rf.every, Keep: rf.keep,
				Extra: t.Run, ImgPerStep: t.Run.Batch * t.Run.Train.Accum, Hook: hook, HookEvery: rf.hookEvery, Progress: progressBar(out)})
			fmt.Fprintln(out)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&run.LoRARank, "lora", 0, "train rank-r LoRA adapters instead of the full U-Net (0: full)")
	f.Float64Var(&run.LoRAAlpha, "lora-alpha", 0, "LoRA alpha (default: the rank)")
	f.IntVar(&run.Size, "size", run.Size, "image size")
	f.IntVar(&run.Batch, "batch", run.Batch, "micro-batch size")
	f.Uint64Var(&run.Seed, "seed", run.Seed, "seed of data order and noise")
	f.IntVar(&run.MaxLength, "max-length", 0, "tokens per caption (default: the model's tokenizer)")
	f.Float64Var(&run.CaptionDropout, "caption-dropout", run.CaptionDropout, "probability of an empty caption")
	f.BoolVar(&run.TrainText, "train-text", false, "also train the text encoder (full fine-tune only; how the embedded model was trained)")
	captionFlags(cmd, &run)
	f.StringArrayVar(&prompts, "prompt", []string{"red apple", "grinning face", "red heart", "rocket"}, "sample-grid prompts")
	optimFlags(cmd, &run.Train)
	rf.add(cmd)
	return cmd
}

// captionFlags registers the caption augmentations of `train ldm` and
// `finetune`: kohya-style tag dropout and "a"/"an" articles.
func captionFlags(cmd *cobra.Command, run *train.LDMRun) {
	f := cmd.Flags()
	f.Float64Var(&run.TagDropout, "tag-dropout", 0, "drop each comma-separated caption tag after the first --keep-tags with this probability "+
		"(kohya's caption_tag_dropout_rate), so that short prompts work too; may be changed with --resume")
	f.Float64Var(&run.ArticleProb, "article-prob", 0, `prefix captions with "a"/"an" with this probability, so that prompts written `+
		`as phrases ("a red apple") match tag-style captions ("red apple"); may be changed with --resume`)
	f.IntVar(&run.KeepTags, "keep-tags", 1, "caption tags never dropped by --tag-dropout (kohya's keep_tokens); may be changed with --resume")
}

// applyCaptionFlags copies the caption flags given on the command line into
// the trainer's run (they may change when resuming: a new phase of the run)
// and validates the result.
func applyCaptionFlags(cmd *cobra.Command, dst *train.LDMRun, flags train.LDMRun) error {
	if cmd.Flags().Changed("tag-dropout") {
		dst.TagDropout = flags.TagDropout
	}
	if cmd.Flags().Changed("keep-tags") {
		dst.KeepTags = flags.KeepTags
	}
	if cmd.Flags().Changed("article-prob") {
		dst.ArticleProb = flags.ArticleProb
	}
	if dst.TagDropout < 0 || dst.TagDropout > 1 || dst.KeepTags < 0 || dst.ArticleProb < 0 || dst.ArticleProb > 1 {
		return fmt.Errorf("--tag-dropout %g, --keep-tags %d, --article-prob %g: want probabilities in [0, 1] and a count ≥ 0",
			dst.TagDropout, dst.KeepTags, dst.ArticleProb)
	}
	return nil
}

// appendLossMetrics writes the metrics.jsonl line of an LDM run's hook.
func appendLossMetrics(rf runFlags, t *train.LDMTrainer, samples string) error {
	m := t.LossMetrics(rf.hookEvery)
	if samples != "" {
		m.Samples = filepath.Base(samples)
	}
	return train.AppendJSONL(filepath.Join(rf.out, "metrics.jsonl"), m)
}

// openLDMRun starts or resumes an LDM run (train ldm, finetune) in out: the
// backend, the trainer, a --steps given on resume, the caption flags, the
// sample prompts (a resumed run keeps its own unless --prompt is given).
func openLDMRun(cmd *cobra.Command, run train.LDMRun, out, resume string, prompts []string) (*train.LDMTrainer, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	b, err := nn.NewBackend(backendFlag(cmd))
	if err != nil {
		return nil, err
	}
	t, err := train.NewLDMTrainer(b, run, out, resume)
	if err != nil {
		return nil, err
	}
	extendSteps(cmd, t.Trainer, &t.Run.Train, run.Train.Steps)
	if err := applyCaptionFlags(cmd, &t.Run, run); err != nil {
		return nil, err
	}
	if resume == "" || cmd.Flags().Changed("prompt") || len(t.Run.Prompts) == 0 {
		t.Run.Prompts = prompts
	}
	return t, nil
}
