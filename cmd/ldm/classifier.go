package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

func newTrainClassifierCmd() *cobra.Command {
	run := classify.Run{Batch: 32, Seed: 1, Shift: 4, Flip: true, Train: train.DefaultConfig()}
	run.Train.LR, run.Train.WarmupSteps, run.Train.Steps, run.Train.EMADecay = 2e-3, 50, 1500, 0.99
	run.Train.WeightDecay = 5e-2
	var rf runFlags
	var channels []int
	var fields []string
	size, groups := 64, 8
	cmd := &cobra.Command{
		Use:   "classifier <emoji|shapes> <image-folder>",
		Short: "Train the evaluation classifier (emoji subcategory/category or shapes shape/colour)",
		Long: `classifier trains the small CNN that ldm eval judges generated images with: one linear head
per metadata field (emoji: subcategory and category; shapes: shape and color; --fields overrides),
on the folder's "train" split, reporting top-1/top-5 accuracy on its held-out split. Its pooled
feature vector is the feature space of the Fréchet distance and KID. The classifier is written to
<out>/model (config.json with the label names, model.safetensors with the EMA weights).`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			resume, err := rf.resumePath()
			if err != nil {
				return err
			}
			if resume == "" {
				if len(args) != 2 {
					return fmt.Errorf("give the task (emoji or shapes) and the image folder")
				}
				task := args[0]
				def, ok := classify.TaskFields[task]
				if !ok {
					return fmt.Errorf("task %q: want emoji or shapes", task)
				}
				run.Data, run.Fields = args[1], def
				if len(fields) > 0 {
					run.Fields = fields
				}
				run.Model = classify.Config{Task: task, Size: size, Channels: classify.TaskChannels[task], Groups: groups}
				if len(channels) > 0 {
					run.Model.Channels = channels
				}
			} else if len(args) == 2 {
				run.Data = args[1]
			}
			if _, err := os.Stat(run.Data); resume == "" && err != nil {
				return fmt.Errorf("image folder: %w", err)
			}
			b, err := nn.NewBackend(backendFlag(cmd))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(rf.out, 0o755); err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			out := cmd.ErrOrStderr()
			steps := run.Train.Steps
			t, err := classify.NewTrainer(ctx, b, run, resume)
			if err != nil {
				return err
			}
			extendSteps(cmd, t.Trainer, &t.Run.Train, steps)
			held := "no held-out split: accuracy is measured on the training images"
			if t.HeldOut != nil {
				held = fmt.Sprintf("%d held-out images", t.HeldOut.Len())
			}
			fmt.Fprintf(out, "classifier (%s): %d parameters, %d training images, %s, batch %d×%d\n",
				t.Run.Model.Task, t.NumParams(), t.TrainSet.Len(), held, t.Run.Batch, t.Run.Train.Accum)
			for _, h := range t.Run.Model.Heads {
				fmt.Fprintf(out, "  head %s: %d classes\n", h.Field, len(h.Labels))
			}
			modelDir := filepath.Join(rf.out, "model")
			hook := func(step int) error {
				if err := train.WriteLossCurve(filepath.Join(rf.out, "loss.png"), "train classifier", "loss (cross-entropy, nats)", t.Losses, 50); err != nil {
					return err
				}
				acc, err := t.EvaluateHeldOut()
				if err != nil {
					return err
				}
				fmt.Fprintln(out)
				printAccuracy(out, acc)
				if err := t.Export(modelDir); err != nil {
					return err
				}
				return train.AppendJSONL(filepath.Join(rf.out, "metrics.jsonl"), acc)
			}
			err = t.Loop(ctx, t.Run.Train.Steps, t.Batch, train.LoopOptions{Dir: rf.out, Every: rf.every, Keep: rf.keep,
				Extra: t.Run, ImgPerStep: t.Run.Batch * t.Run.Train.Accum, Hook: hook, HookEvery: rf.hookEvery, Progress: progressBar(out)})
			fmt.Fprintln(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "classifier written to %s\n", modelDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&size, "size", size, "input image size")
	f.IntSliceVar(&channels, "channels", nil, "stage widths, each a stride-2 stage (default emoji 32,64,128,128; shapes 16,32,64,64)")
	f.IntVar(&groups, "groups", groups, "GroupNorm groups")
	f.StringSliceVar(&fields, "fields", nil, "metadata fields to predict (default: the task's)")
	f.IntVar(&run.Batch, "batch", run.Batch, "micro-batch size")
	f.Uint64Var(&run.Seed, "seed", run.Seed, "seed of initialisation, data order and augmentation")
	f.IntVar(&run.Shift, "shift", run.Shift, "random shift augmentation, ± pixels")
	f.BoolVar(&run.Flip, "flip", run.Flip, "random horizontal flips")
	f.StringVar(&run.Cache, "cache-dir", "", "preprocessed-image cache folder of the data loader")
	optimFlags(cmd, &run.Train)
	rf.add(cmd)
	return cmd
}

// printAccuracy writes one line per head.
func printAccuracy(w io.Writer, a classify.Accuracy) {
	for _, h := range a.Heads {
		fmt.Fprintf(w, "  step %d: %s top-1 %.1f%% top-5 %.1f%% (%d classes, %d images)\n",
			a.Step, h.Field, 100*h.Top1, 100*h.Top5, h.Classes, a.Images)
	}
}
