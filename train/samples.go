package train

import (
	stdctx "context"
	"fmt"
	"image"

	"github.com/ldm-project/ldm/ldm"
)

// SampleGrid loads the diffusers folder modelDir with the pipeline and writes
// one image per prompt (seed, steps, guidance 5, the model's sample size) as a
// grid PNG at path: the same code path `ldm generate` takes.
func SampleGrid(ctx stdctx.Context, modelDir, path string, prompts []string, steps int, seed int64) error {
	return SampleGridLoRA(ctx, modelDir, "", path, prompts, steps, seed)
}

// SampleGridLoRA is SampleGrid with a LoRA file (when not "") at weight 1,
// passed as a request's LoRA: the pipeline merges it and restores the
// model's weights after, as for every request.
func SampleGridLoRA(ctx stdctx.Context, modelDir, lora, path string, prompts []string, steps int, seed int64) error {
	p, err := ldm.Load(modelDir, ldm.LoadOptions{})
	if err != nil {
		return err
	}
	var loras []ldm.LoRASpec
	if lora != "" {
		loras = []ldm.LoRASpec{{Path: lora, Weight: 1}}
	}
	imgs := make([]image.Image, 0, len(prompts))
	for _, prompt := range prompts {
		res, err := p.Generate(ctx, ldm.Request{Prompt: prompt, Steps: steps, GuidanceScale: 5, Seed: seed, LoRAs: loras}, ldm.Options{})
		if err != nil {
			return fmt.Errorf("%q: %w", prompt, err)
		}
		imgs = append(imgs, res[0].Image)
	}
	return writePNG(path, Grid(imgs, min(len(imgs), 8)))
}
