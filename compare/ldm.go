package compare

import (
	"fmt"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

// ldmBatch is the number of prompts sampled as one U-Net batch.
const ldmBatch = 8

// promptIndex is the test image whose caption prompts sample i of n: evenly
// spaced over the m test images when n ≤ m (a folder sorted by category
// would otherwise give prompts from its first categories only and a
// distribution unlike the test set's), every one in turn when n > m.
func promptIndex(i, n, m int) int {
	if n <= m {
		return i * m / n
	}
	return i % m
}

// runLDM samples a trained latent diffusion model with the test captions as
// prompts (image i: caption of test image promptIndex(i), seed Seed+i, the model's
// own resolution resized to the comparison's), measures the samples like the
// baselines' and, with a classifier, scores their prompt alignment. Its
// training budget is whatever made it, not this run's.
func (r *runner) runLDM() (Row, error) {
	p, err := ldm.Load(r.o.LDM, ldm.LoadOptions{Backend: r.o.BackendName})
	if err != nil {
		return Row{}, err
	}
	row := Row{Model: ModelLDM}
	for _, keys := range []func() (map[string][]int, error){p.UNet.ExpectedKeys, p.VAE.ExpectedKeys} {
		k, err := keys()
		if err != nil {
			return row, err
		}
		for _, shape := range k {
			n := 1
			for _, d := range shape {
				n *= d
			}
			row.Params += n
		}
	}
	steps := r.o.LDMSteps
	if steps <= 0 {
		steps = 20
	}
	start := time.Now()
	var samples []float32
	testIdx := make([]int, r.o.Samples)
	for lo := 0; lo < r.o.Samples; lo += ldmBatch {
		if err := r.ctx.Err(); err != nil {
			return row, err
		}
		hi := min(lo+ldmBatch, r.o.Samples)
		items := make([]ldm.BatchItem, 0, hi-lo)
		for i := lo; i < hi; i++ {
			testIdx[i] = promptIndex(i, r.o.Samples, r.test.N)
			items = append(items, ldm.BatchItem{Req: ldm.Request{Prompt: r.test.Captions[testIdx[i]], Steps: steps, Seed: int64(r.o.Seed) + int64(i)}})
		}
		for k, res := range p.GenerateBatch(r.ctx, items) {
			if res.Err != nil {
				return row, fmt.Errorf("sample %d: %w", lo+k, res.Err)
			}
			samples = append(samples, toNCHW(res.Results[0].Image, r.o.Size)...)
		}
		r.log("  ldm sampled %d/%d", hi, r.o.Samples)
	}
	seconds := time.Since(start).Seconds()
	note := fmt.Sprintf("loaded from %s (trained elsewhere: its budget is not this run's); U-Net + VAE parameters; %d sampler steps at %d² (default sampler and guidance, batches of %d), prompts = captions of %d test images spread evenly over the %d, resized to %d²",
		r.o.LDM, steps, p.SampleSize(), ldmBatch, min(r.o.Samples, r.test.N), r.test.N, r.o.Size)
	if r.o.Classifier == nil {
		note += "; prompt alignment not measured (no classifier given)"
	}
	row.Notes = append(row.Notes, note)
	pred, err := r.samplesDone(&row, samples, r.o.Samples, seconds)
	if err != nil || pred == nil {
		return row, err
	}
	var skipped string
	row.Alignment, skipped, err = r.promptAlignment(pred, testIdx)
	if skipped != "" {
		row.Notes = append(row.Notes, skipped)
	}
	return row, err
}
