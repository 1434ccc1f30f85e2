package compare

import (
	"fmt"
	"time"

	"github.com/ldm-project/ldm/ldm"
)

// runLDM samples a trained latent diffusion model with the test captions as
// prompts (one image each, seed i, the model's own resolution resized to the
// comparison's) and measures the samples like the baselines'. Its training
// budget is whatever made it, not this run's.
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
	for i := range r.o.Samples {
		if err := r.ctx.Err(); err != nil {
			return row, err
		}
		req := ldm.Request{Prompt: r.test.Captions[i%r.test.N], Steps: steps, Seed: int64(r.o.Seed) + int64(i)}
		req.Defaults(p.SampleSize())
		res, err := p.Generate(r.ctx, req, ldm.Options{})
		if err != nil {
			return row, fmt.Errorf("sample %d: %w", i, err)
		}
		samples = append(samples, toNCHW(res[0].Image, r.o.Size)...)
		if (i+1)%16 == 0 {
			r.log("  ldm sampled %d/%d", i+1, r.o.Samples)
		}
	}
	row.Notes = append(row.Notes, fmt.Sprintf("loaded from %s (trained elsewhere: its budget is not this run's); U-Net + VAE parameters; %d sampler steps at %d², prompts = test captions, resized to %d²; prompt alignment not measured (no image–text scorer in this project yet)",
		r.o.LDM, steps, p.SampleSize(), r.o.Size))
	return row, r.samplesDone(&row, samples, r.o.Samples, time.Since(start).Seconds())
}
