package ldm

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/rng"
)

// BatchItem is one request of a cross-request batch (GenerateBatch): its own
// context (cancelling it drops that item only) and options (its Progress
// hears about that item only).
type BatchItem struct {
	Ctx  context.Context
	Req  Request
	Opts Options
}

// BatchResult is one item's outcome.
type BatchResult struct {
	Results []Result
	Err     error
}

// Compatible reports whether requests a and b can share one U-Net batch:
// both txt2img with a single batch, and everything that the timestep loop
// and the batch shape depend on equal (size, steps, sampler, schedule, η,
// guidance, noise source, clip skip, LoRAs, prompt length in 75-token chunks).
// Prompts, negative prompts, seeds and batch sizes may differ.
func (p *Pipeline) Compatible(a, b Request) bool {
	s := p.SampleSize()
	a.Defaults(s)
	b.Defaults(s)
	if a.InitImage != nil || b.InitImage != nil || a.Mask != nil || b.Mask != nil || len(a.ControlNets) > 0 || len(b.ControlNets) > 0 {
		return false
	}
	if a.BatchCount != 1 || b.BatchCount != 1 {
		return false
	}
	if a.Width != b.Width || a.Height != b.Height || a.Steps != b.Steps || a.Sampler != b.Sampler ||
		a.Schedule != b.Schedule || a.Eta != b.Eta || a.GuidanceScale != b.GuidanceScale ||
		a.Noise != b.Noise || a.ClipSkip != b.ClipSkip {
		return false
	}
	return p.chunkCount(a) == p.chunkCount(b) && SameLoRAs(a, b)
}

// chunkCount is the number of 75-token chunks the request's conditioning
// has (the longer of prompt and negative prompt when guidance is on).
func (p *Pipeline) chunkCount(r Request) int {
	pos, _ := p.promptChunks(r.Prompt)
	n := len(pos)
	if r.GuidanceScale > 1 {
		neg, _ := p.promptChunks(r.NegativePrompt)
		n = max(n, len(neg))
	}
	return n
}

// GenerateBatch runs several requests as one U-Net batch, each image with
// the seed, prompt and infotext it would have had alone. Items that fail
// validation, or are not Compatible with the first valid item, are run
// after it one at a time; result i belongs to item i. An item whose context
// ends gets its context's error while the others go on.
func (p *Pipeline) GenerateBatch(ctx context.Context, items []BatchItem) []BatchResult {
	out := make([]BatchResult, len(items))
	var group, alone []int
	for i := range items {
		it := &items[i]
		it.Req.Defaults(p.SampleSize())
		if it.Req.Seed == -1 {
			it.Req.Seed = int64(rng.RandomSeed())
		}
		limits := DefaultLimits
		if it.Opts.Limits != nil {
			limits = *it.Opts.Limits
		}
		if err := it.Req.Validate(limits, p.Factor()); err != nil {
			out[i].Err = err
			continue
		}
		if len(group) == 0 || p.Compatible(items[group[0]].Req, it.Req) {
			group = append(group, i)
		} else {
			alone = append(alone, i)
		}
	}
	if len(group) == 1 {
		alone, group = append(group, alone...), nil
	}
	if len(group) > 0 {
		res, err := p.generateGroup(ctx, items, group)
		for k, i := range group {
			if err != nil {
				out[i].Err = err
			} else {
				out[i] = res[k]
			}
		}
	}
	for _, i := range alone {
		ictx, stop := mergeDone(ctx, items[i].Ctx)
		out[i].Results, out[i].Err = p.Generate(ictx, items[i].Req, items[i].Opts)
		stop()
	}
	return out
}

// mergeDone returns a context that ends when either a or b ends.
func mergeDone(a, b context.Context) (context.Context, func()) {
	if b == nil {
		return a, func() {}
	}
	c, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return c, func() { stop(); cancel() }
}

// generateGroup runs compatible, validated items (indices idx) as one batch.
// The error is for the whole group (a model failure, or ctx ending);
// per-item cancellation is reported in the item's result.
func (p *Pipeline) generateGroup(ctx context.Context, items []BatchItem, idx []int) ([]BatchResult, error) {
	// The loop runs while any item still wants its images.
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var live atomic.Int32
	live.Store(int32(len(idx)))
	for _, i := range idx {
		if c := items[i].Ctx; c != nil {
			stop := context.AfterFunc(c, func() {
				if live.Add(-1) == 0 {
					cancel()
				}
			})
			defer stop()
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	first := items[idx[0]].Req
	if err := p.applyLoRAs(first); err != nil { // Compatible: one LoRA set for the group
		return nil, err
	}
	cfg := first.GuidanceScale > 1
	var gens []rng.Source
	var neg, pos []float32
	var T, D int
	offsets := make([]int, len(idx)+1) // image offsets of the items in the batch
	for k, i := range idx {
		req := items[i].Req
		for j := 0; j < req.BatchSize; j++ {
			g, err := rng.New(req.Noise, uint64(req.Seed+int64(j)))
			if err != nil {
				return nil, err
			}
			gens = append(gens, g)
		}
		c, err := p.encodePrompts(req.Prompt, req.NegativePrompt, req.BatchSize, req.ClipSkip, cfg)
		if err != nil {
			return nil, err
		}
		T, D = c.shape[1], c.shape[2]
		half := len(c.embeds)
		if cfg {
			half /= 2
			neg = append(neg, c.embeds[:half]...)
		}
		pos = append(pos, c.embeds[len(c.embeds)-half:]...)
		offsets[k+1] = offsets[k] + req.BatchSize
	}
	B := offsets[len(idx)]
	rows := B
	if cfg {
		rows = 2 * B
	}
	cond := &conditioning{embeds: append(neg, pos...), shape: []int{rows, T, D}, cfg: cfg}

	sched, err := p.newScheduler(first)
	if err != nil {
		return nil, err
	}
	if err := sched.SetTimesteps(first.Steps); err != nil {
		return nil, err
	}
	f, C := p.Factor(), p.UNet.Config.OutChannels
	shape := []int{B, C, first.Height / f, first.Width / f}
	per := C * shape[2] * shape[3]
	x := sched.InitLatents(drawEach(gens, per))
	var init *img2imgState
	if p.isInpaintingUNet() {
		init = &img2imgState{shape: shape}
		if init.unetMask, init.maskedLatents, err = p.fullMask(B, first.Height, first.Width); err != nil {
			return nil, err
		}
	}

	// Each item's Progress sees its own images only.
	var cur []float32
	start := time.Now()
	var mu sync.Mutex
	progress := func(pr Progress) {
		mu.Lock()
		defer mu.Unlock()
		for k, i := range idx {
			o := items[i].Opts
			if o.Progress == nil || (items[i].Ctx != nil && items[i].Ctx.Err() != nil) {
				continue
			}
			q := Progress{Image: 1, Images: 1, Step: pr.Step, Total: pr.Total, Elapsed: pr.Elapsed, ETA: pr.ETA}
			if o.PreviewEvery > 0 && (pr.Step%o.PreviewEvery == 0 || pr.Step == pr.Total) {
				sub := append([]int{offsets[k+1] - offsets[k]}, shape[1:]...)
				q.Preview = LatentPreview(cur[offsets[k]*per:offsets[k+1]*per], sub)
			}
			o.Progress(q)
		}
	}
	req := first
	req.BatchSize = B
	r := &run{p: p, req: req, start: start, opts: Options{
		Progress: progress,
		onStep:   func(_ int, x []float32) { cur = x },
	}}
	x, err = r.denoise(loopCtx, sched, x, shape, cond, 0, gens, init)
	if err != nil {
		if ctx.Err() == nil && loopCtx.Err() != nil { // every item was cancelled
			res := make([]BatchResult, len(idx))
			for k, i := range idx {
				res[k].Err = items[i].Ctx.Err()
			}
			return res, nil
		}
		return nil, err
	}

	nn.ReleaseBuffers(p.Backend) // the decode reuses the U-Net's memory
	img, ishape, err := p.VAE.DecodeRun(p.VAE.Config.UnscaleValues(x), shape)
	if err != nil {
		return nil, err
	}
	ipix := ishape[1] * ishape[2] * ishape[3]
	res := make([]BatchResult, len(idx))
	for k, i := range idx {
		it := items[i]
		if it.Ctx != nil && it.Ctx.Err() != nil {
			res[k].Err = it.Ctx.Err()
			continue
		}
		for j := offsets[k]; j < offsets[k+1]; j++ {
			seed := it.Req.Seed + int64(j-offsets[k])
			rgba := toRGBA(img[j*ipix:(j+1)*ipix], ishape[1], ishape[2], ishape[3])
			res[k].Results = append(res[k].Results, Result{Image: rgba, Seed: seed, Infotext: p.infotext(it.Req, seed)})
		}
	}
	return res, nil
}
