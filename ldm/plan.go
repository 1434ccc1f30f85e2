package ldm

import (
	"fmt"
	"strings"

	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/scheduler"
)

// Plan is a Request made concrete for one pipeline: defaults applied, the
// seed drawn, everything validated, the sampler and the LoRA set resolved
// and the prompts tokenized. Prepare is the only place that happens; a Plan
// does not change afterwards, and every front end echoes Plan.Request.
type Plan struct {
	pipe   *Pipeline // the pipeline that prepared it (nil: PrepareRequest)
	limits Limits
	req    Request
	choice scheduler.Choice
	tags   []LoRASpec // the prompt's <lora:…> tags, parsed once by validate
	loras  []resolvedLoRA
	// pos and neg are the tokenized prompt and negative prompt, padded to
	// the same number of chunks when guidance is on (neg is nil otherwise).
	pos, neg []Chunk
	begin    int // the first denoising step (img2img: from the strength)
	key      string
}

// Row is one image of a plan: its seed and the batch it runs in.
type Row struct {
	Seed  int64
	Batch int // 0 … BatchCount−1
}

// Request is the request as it runs: defaults applied and the seed drawn.
// Its images are the caller's and must not be changed.
func (pl *Plan) Request() Request { return pl.req }

// Key is what one U-Net batch must share: plans with equal keys can run
// together (Pipeline.Run), whatever their prompts, seeds and batch sizes.
func (pl *Plan) Key() string { return pl.key }

// Rows lists the plan's images in order: image i has seed Seed+i and runs
// in batch i/BatchSize.
func (pl *Plan) Rows() []Row {
	rows := make([]Row, 0, pl.req.BatchSize*pl.req.BatchCount)
	for i := range pl.req.BatchSize * pl.req.BatchCount {
		rows = append(rows, Row{Seed: pl.req.Seed + int64(i), Batch: i / pl.req.BatchSize})
	}
	return rows
}

// PrepareRequest is the part of Prepare that needs no model, only its
// native size and VAE factor: defaults, validation, the seed and the
// sampler. A Plan from it has no LoRAs resolved and no prompt tokenized;
// it is for front ends without a pipeline (tests' stand-in models).
func PrepareRequest(req Request, l Limits, sampleSize, factor int) (*Plan, error) {
	req.Defaults(sampleSize)
	c, err := req.validate(l, factor)
	if err != nil {
		return nil, err
	}
	if req.Seed == -1 {
		req.Seed = int64(rng.RandomSeed())
	}
	pl := &Plan{req: req, limits: l, choice: c.choice, tags: c.tags}
	pl.key = pl.baseKey()
	if len(req.ControlNets) > 0 { // control images are per request: such a plan batches with none other
		pl.key += fmt.Sprintf(" controlnets %p", pl)
	}
	return pl, nil
}

// baseKey covers everything of the request the timestep loop and the batch
// shape depend on.
func (pl *Plan) baseKey() string {
	r := pl.req
	mode := "txt2img"
	switch {
	case r.Mask != nil:
		mode = fmt.Sprintf("inpaint %g", r.Strength)
	case r.InitImage != nil:
		mode = fmt.Sprintf("img2img %g", r.Strength)
	}
	return fmt.Sprintf("%dx%d steps %d sampler %q schedule %q eta %g cfg %g noise %s clip %d %s",
		r.Width, r.Height, r.Steps, r.Sampler, r.Schedule, r.Eta, r.GuidanceScale, r.Noise, r.ClipSkip, mode)
}

// Prepare makes req a Plan for this pipeline under the limits l. It is the
// only place where defaults are applied, the seed is drawn (−1: random),
// the request is validated, the sampler and LoRA files are resolved and the
// prompts are tokenized. It reads no weights and may run while a
// generation does.
func (p *Pipeline) Prepare(req Request, l Limits) (*Plan, error) {
	pl, err := PrepareRequest(req, l, p.SampleSize(), p.Factor())
	if err != nil {
		return nil, err
	}
	pl.pipe = p
	r := pl.req
	f := p.Factor()
	if err := p.UNet.Config.CheckSize(r.Height/f, r.Width/f); err != nil {
		return nil, &FieldError{Field: "width", Msg: fmt.Sprintf("%dx%d cannot run on this model: %v", r.Width, r.Height, err)}
	}
	sched, err := scheduler.NewChoice(pl.choice, p.SchedulerConfig)
	if err != nil {
		return nil, &FieldError{Field: "sampler", Msg: strings.TrimPrefix(err.Error(), "scheduler: ")}
	}
	if err := sched.SetTimesteps(r.Steps); err != nil {
		return nil, &FieldError{Field: "steps", Msg: strings.TrimPrefix(err.Error(), "scheduler: ")}
	}
	if r.InitImage != nil {
		pl.begin = sched.BeginIndex(r.Strength)
		if pl.begin >= len(sched.Timesteps()) {
			return nil, &FieldError{Field: "strength", Msg: fmt.Sprintf("%g leaves no denoising step with %d steps", r.Strength, r.Steps)}
		}
	}
	if err := p.checkHiresPass(r); err != nil {
		return nil, err
	}
	p.prep.Lock()
	pl.loras, err = p.requestLoRAs(r, pl.tags)
	p.prep.Unlock()
	if err != nil {
		return nil, err
	}
	pl.pos = p.promptChunks(r.Prompt)
	if r.GuidanceScale > 1 {
		pl.neg = p.promptChunks(r.NegativePrompt)
		// Both sides need the same number of chunks: pad with empty ones.
		for len(pl.neg) < len(pl.pos) {
			pl.neg = append(pl.neg, Chunk{})
		}
		for len(pl.pos) < len(pl.neg) {
			pl.pos = append(pl.pos, Chunk{})
		}
	}
	if err := p.checkRequestVAE(r.VAE); err != nil {
		return nil, err
	}
	pl.key += fmt.Sprintf(" chunks %d loras %s vae %q", len(pl.pos), p.loraSetKey(pl.loras), r.VAE)
	return pl, nil
}
