package train

import (
	stdctx "context"
	"errors"
	"fmt"
	"time"
)

// Progress is reported after every optimiser step.
type Progress struct {
	Step, Steps int
	Loss        float32
	GradNorm    float32
	LR          float64
	ItPerSec    float64 // optimiser steps per second over the last steps
	ImgPerSec   float64 // training examples per second
	ETA         time.Duration
	Checkpoint  string // set on the step a checkpoint was written
}

// LoopOptions are the side jobs of Loop.
type LoopOptions struct {
	Dir        string // checkpoint folder; "" writes none
	Every      int    // checkpoint every Every steps (and at the end)
	Keep       int    // checkpoints kept
	Extra      any    // run description stored in every checkpoint
	ImgPerStep int    // examples per optimiser step, for the throughput
	// Hook, when set, runs every HookEvery steps and at the end (loss curve,
	// sample grid); an error stops the loop.
	Hook      func(step int) error
	HookEvery int
	Progress  func(Progress)
}

// Loop runs optimiser steps until t.Step reaches steps or ctx is cancelled
// (a checkpoint is written before returning either way). batch returns the
// micro-batches of a step, as a function of the step only.
func (t *Trainer) Loop(ctx stdctx.Context, steps int, batch func(step int) ([][]any, error), o LoopOptions) error {
	start, startStep := time.Now(), t.Step
	window := []time.Time{start}
	save := func() (string, error) {
		if o.Dir == "" {
			return "", nil
		}
		return t.Save(o.Dir, o.Keep, o.Extra)
	}
	lastSaved := -1
	for t.Step < steps {
		if err := ctx.Err(); err != nil {
			if t.Step != lastSaved && t.Step > startStep {
				if _, serr := save(); serr != nil {
					// The steps since the last checkpoint are lost: say so.
					return errors.Join(err, fmt.Errorf("the checkpoint of step %d could not be written, so the steps since step %d are lost: %w", t.Step, max(lastSaved, startStep), serr))
				}
			}
			return err
		}
		micro, err := batch(t.Step)
		if err != nil {
			return fmt.Errorf("step %d: data: %w", t.Step, err)
		}
		r, err := t.TrainStep(micro)
		if err != nil {
			return err
		}
		now := time.Now()
		window = append(window, now)
		if len(window) > 21 {
			window = window[1:]
		}
		p := Progress{Step: r.Step, Steps: steps, Loss: r.Loss, GradNorm: r.GradNorm, LR: r.LR}
		if dt := now.Sub(window[0]).Seconds(); dt > 0 {
			p.ItPerSec = float64(len(window)-1) / dt
			p.ImgPerSec = p.ItPerSec * float64(o.ImgPerStep)
			p.ETA = time.Duration(float64(steps-r.Step) / p.ItPerSec * float64(time.Second))
		}
		if o.Dir != "" && o.Every > 0 && (r.Step%o.Every == 0 || r.Step == steps) {
			if p.Checkpoint, err = save(); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			lastSaved = r.Step
		}
		if o.Hook != nil && o.HookEvery > 0 && (r.Step%o.HookEvery == 0 || r.Step == steps) {
			if err := o.Hook(r.Step); err != nil {
				return err
			}
		}
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	return nil
}

// LossMetrics is a line of a run's metrics.jsonl for runs measured by their
// training loss alone (train ldm, finetune).
type LossMetrics struct {
	Step int `json:"step"`
	// Loss is the mean training loss (the run's objective: the MSE of the
	// predicted noise or velocity) over the Steps steps up to Step.
	Loss  float64 `json:"loss"`
	Steps int     `json:"loss_steps"`
	LR    float64 `json:"lr"` // of the step just taken
	// Samples is the sample grid drawn at Step, when one was.
	Samples string `json:"samples,omitempty"`
}

// LossMetrics summarises the last window steps of the loss history.
func (t *Trainer) LossMetrics(window int) LossMetrics {
	m := LossMetrics{Step: t.Step, LR: t.Config.LRAt(max(t.Step-1, 0))}
	recent := t.Losses[max(len(t.Losses)-max(window, 1), 0):]
	for _, l := range recent {
		m.Loss += float64(l)
	}
	if m.Steps = len(recent); m.Steps > 0 {
		m.Loss /= float64(m.Steps)
	}
	return m
}
