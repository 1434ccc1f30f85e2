package ldm

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/scheduler"
)

// Task is one plan to run: its own context (cancelling it drops this plan
// only) and options (its Progress hears about this plan's images only).
type Task struct {
	Ctx  context.Context // nil: only Run's context
	Plan *Plan
	Opts Options
}

// Run executes plans; result i belongs to task i. It is the one executor of
// every generation: a single image, a batch, BatchCount batches, img2img,
// inpainting and requests batched together. Plans with equal keys share
// U-Net batches — batch b of the run holds batch b of each such plan — and
// every image gets the seed, prompt and infotext it would have had alone.
// Plans with other keys run after, one group per key. A task whose context
// ends gets that error and the others go on; ctx ending stops them all.
// Results of batches that finished are kept with the error.
func (p *Pipeline) Run(ctx context.Context, tasks []Task) []BatchResult {
	out := make([]BatchResult, len(tasks))
	var groups [][]int
	byKey := map[string]int{}
	tasks = slices.Clone(tasks)
	for i, t := range tasks {
		if t.Plan == nil {
			out[i].Err = errors.New("ldm: Run: a task without a plan")
			continue
		}
		if in := t.Opts.Interpolate; in != nil {
			if err := in.validate(); err != nil {
				out[i].Err = err
				continue
			}
		}
		if t.Plan.pipe != p { // prepared by another pipeline (a model switch) or by PrepareRequest
			pl, err := p.Prepare(t.Plan.req, t.Plan.limits)
			if err != nil {
				out[i].Err = err
				continue
			}
			tasks[i].Plan = pl
		}
		g, ok := byKey[tasks[i].Plan.key]
		if !ok {
			g = len(groups)
			byKey[tasks[i].Plan.key] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	// A hires fix's first pass hands its images to the second pass only.
	hires := make([]Options, len(tasks))
	for i, t := range tasks {
		if t.Plan != nil && t.Plan.req.Hires != nil {
			hires[i] = t.Opts
			tasks[i].Opts.OnImage = nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range groups {
		p.runGroup(ctx, tasks, g, out)
	}
	tasks = slices.Clone(tasks)
	for i := range tasks {
		if tasks[i].Plan != nil && tasks[i].Plan.req.Hires != nil {
			tasks[i].Opts = hires[i]
		}
	}
	p.runHires(ctx, tasks, hires, out)
	return out
}

// member is one plan's share of a U-Net batch: its rows are off … off+n−1.
type member struct {
	task   *Task
	res    *BatchResult
	embeds *promptEmbeds
	seed0  int64
	off, n int
	init   *img2imgState // this plan's init image and mask (nil: txt2img)
}

// runGroup runs plans of one key (tasks[idx]), batch after batch.
func (p *Pipeline) runGroup(ctx context.Context, tasks []Task, idx []int, out []BatchResult) {
	fail := func(err error) {
		for _, i := range idx {
			if out[i].Err == nil {
				out[i].Err = err
			}
		}
	}
	if err := p.applyLoRASet(tasks[idx[0]].Plan.loras); err != nil { // one key, one LoRA set
		fail(err)
		return
	}
	restoreVAE, err := p.requestVAE(tasks[idx[0]].Plan.req.VAE) // and one VAE
	if err != nil {
		fail(err)
		return
	}
	defer restoreVAE()
	embeds := make([]*promptEmbeds, len(idx))
	batches := 0
	for k, i := range idx {
		e, err := p.encodePlan(tasks[i].Plan)
		if err == nil && tasks[i].Opts.Interpolate != nil {
			err = p.blendEmbeds(tasks[i].Plan, e, tasks[i].Opts.Interpolate)
		}
		if err != nil {
			fail(err)
			return
		}
		embeds[k] = e
		batches = max(batches, tasks[i].Plan.req.BatchCount)
	}
	start := time.Now()
	for b := range batches {
		var ms []*member
		off := 0
		for k, i := range idx {
			t, r := &tasks[i], tasks[i].Plan.req
			if b >= r.BatchCount || out[i].Err != nil {
				continue
			}
			if t.Ctx != nil && t.Ctx.Err() != nil {
				out[i].Err = t.Ctx.Err()
				continue
			}
			ms = append(ms, &member{task: t, res: &out[i], embeds: embeds[k], seed0: r.Seed + int64(b*r.BatchSize), off: off, n: r.BatchSize})
			off += r.BatchSize
		}
		if len(ms) == 0 {
			continue
		}
		if err := p.runBatch(ctx, ms, b, start); err != nil {
			for _, m := range ms {
				if m.res.Err == nil {
					m.res.Err = err
				}
			}
			if ctx.Err() != nil || !errors.Is(err, errAllCancelled) {
				fail(err)
				return
			}
		}
	}
}

// errAllCancelled ends a batch whose every task's context ended.
var errAllCancelled = errors.New("every task of the batch was cancelled")

// runBatch runs batch b of the members' plans as one U-Net batch and
// appends each member's images to its result.
func (p *Pipeline) runBatch(ctx context.Context, ms []*member, b int, start time.Time) error {
	// The loop runs while any member still wants its images.
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var live atomic.Int32
	live.Store(int32(len(ms)))
	for _, m := range ms {
		if c := m.task.Ctx; c != nil {
			stop := context.AfterFunc(c, func() {
				if live.Add(-1) == 0 {
					cancel()
				}
			})
			defer stop()
		}
	}

	first := ms[0].task.Plan
	req := first.req
	last := ms[len(ms)-1]
	B := last.off + last.n
	var gens []rng.Source
	for _, m := range ms {
		for j := range m.n {
			g, err := rng.New(m.task.Plan.req.Noise, uint64(m.seed0+int64(j)))
			if err != nil {
				return err
			}
			gens = append(gens, g)
		}
	}
	cond := batchConditioning(ms, req.GuidanceScale > 1)
	if o := ms[0].task.Opts; o.onPrompt != nil {
		o.onPrompt(cond)
	}
	control, err := p.prepareControl(req, B, cond.cfg) // one plan: its key is its own
	if err != nil {
		return err
	}
	sched, err := scheduler.NewChoice(first.choice, p.SchedulerConfig)
	if err != nil {
		return err
	}
	sched.Eta = req.Eta
	if err := sched.SetTimesteps(req.Steps); err != nil {
		return err
	}
	f, C := p.Factor(), p.UNet.Config.OutChannels
	shape := []int{B, C, req.Height / f, req.Width / f}
	per := C * shape[2] * shape[3]

	// Each image's starting noise, after the draws the init image's
	// posterior sample takes from the same generator.
	initialNoise := func() ([]float32, error) {
		noise := drawEach(gens, per)
		for _, m := range ms {
			if in := m.task.Opts.Interpolate; in != nil {
				if err := slerpNoise(m, b, noise, per, in); err != nil {
					return nil, err
				}
			}
		}
		return noise, nil
	}
	var x []float32
	var init *img2imgState
	if req.InitImage != nil {
		parts := make([]*img2imgState, len(ms))
		for k, m := range ms {
			sub := append([]int{m.n}, shape[1:]...)
			if m.init, err = p.prepareInit(m.task.Plan.req, gens[m.off:m.off+m.n], sub); err != nil {
				return err
			}
			parts[k] = m.init
		}
		init = joinInits(parts, shape)
		if init.noise, err = initialNoise(); err != nil {
			return err
		}
		if init, err = p.inpaintAfterNoise(ms, parts, init, gens, shape); err != nil {
			return err
		}
		if fullStrengthInpaint(req) {
			x = sched.InitLatents(init.noise)
		} else if x, err = sched.AddNoiseAt(init.latents, init.noise, first.begin); err != nil {
			return err
		}
	} else {
		noise, err := initialNoise()
		if err != nil {
			return err
		}
		x = sched.InitLatents(noise)
		if p.isInpaintingUNet() {
			init = &img2imgState{shape: shape}
			if init.unetMask, init.maskedLatents, err = p.fullMask(B, req.Height, req.Width); err != nil {
				return err
			}
		}
	}

	x, err = p.denoise(loopCtx, sched, x, shape, cond, first.begin, gens, init, control, func(done, total int, el time.Duration, x []float32) {
		for _, m := range ms {
			o, r := m.task.Opts, m.task.Plan.req
			if o.onStep != nil {
				o.onStep(first.begin+done-1, x)
			}
			if o.Progress == nil || (m.task.Ctx != nil && m.task.Ctx.Err() != nil) {
				continue
			}
			left := total - done + (r.BatchCount-b-1)*total // steps of this batch and of the plan's batches after it
			pr := Progress{Image: b + 1, Images: r.BatchCount, Step: done, Total: total, Elapsed: time.Since(start),
				ETA: time.Duration(float64(el) / float64(done) * float64(left))}
			if o.PreviewEvery > 0 && (done%o.PreviewEvery == 0 || done == total) {
				pr.Preview = p.preview(x[m.off*per:(m.off+m.n)*per], append([]int{m.n}, shape[1:]...))
			}
			o.Progress(pr)
		}
	})
	if err != nil {
		if ctx.Err() == nil && loopCtx.Err() != nil { // every member was cancelled
			for _, m := range ms {
				m.res.Err = m.task.Ctx.Err()
			}
			return errAllCancelled
		}
		return err
	}

	img, ishape, err := p.decode(x, shape)
	if err != nil {
		return err
	}
	ipix := ishape[1] * ishape[2] * ishape[3]
	for _, m := range ms {
		if c := m.task.Ctx; c != nil && c.Err() != nil {
			m.res.Err = c.Err()
			continue
		}
		for j := range m.n {
			rgba := toRGBA(img[(m.off+j)*ipix:(m.off+j+1)*ipix], ishape[1], ishape[2], ishape[3])
			if m.init != nil && m.init.pixelMask != nil {
				pasteUnmasked(rgba, m.init.original, m.init.pixelMask)
			}
			if m.init != nil && m.init.fullRes != nil {
				rgba = m.init.fullRes.pasteBack(rgba)
			}
			seed := m.seed0 + int64(j)
			m.res.Results = append(m.res.Results, Result{Image: rgba, Seed: seed, Infotext: p.infotext(m.task.Plan.req, seed)})
			if h := m.task.Plan.req.Hires; h != nil && isLatentUpscaler(h.Upscaler) {
				m.res.Results[len(m.res.Results)-1].latents = slices.Clone(x[(m.off+j)*per : (m.off+j+1)*per])
			}
			if f := m.task.Opts.OnImage; f != nil {
				f(m.res.Results[len(m.res.Results)-1])
			}
		}
	}
	return nil
}

// denoise runs the sampling loop from step begin; step is called after
// every step with the steps done and the latents.
func (p *Pipeline) denoise(ctx context.Context, s *scheduler.Scheduler, x []float32, shape []int, cond *conditioning, begin int,
	gens []rng.Source, init *img2imgState, control *controlRun, step func(done, total int, elapsed time.Duration, x []float32)) ([]float32, error) {
	stepStart := time.Now()
	noise := noiseFrom(gens)
	// s.Calls() grows as DPM adaptive runs (its calls depend on the
	// sample) and the total is then an estimate until it is done; for every
	// other sampler both are fixed by the plan.
	for i := begin; i < s.Calls(); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		total := s.ExpectedCalls() - begin
		ti := s.Timestep(i)
		xin := s.ScaleModelInput(x, i)
		ctl, ctlShapes, err := control.residuals(p, xin, shape, ti, cond, i-begin, total)
		if err != nil {
			return nil, err
		}
		if init != nil && init.unetMask != nil {
			xin = concatChannels(shape, xin, init.unetMask, init.maskedLatents)
		}
		eps, err := p.predict(xin, shape, ti, cond, ctl, ctlShapes)
		if err != nil {
			return nil, err
		}
		if x, err = s.Step(eps, i, x, noise); err != nil {
			return nil, err
		}
		if init != nil && init.blendMask != nil {
			if x, err = init.blend(s, x, i+1); err != nil {
				return nil, err
			}
		}
		step(i-begin+1, s.ExpectedCalls()-begin, time.Since(stepStart), x)
	}
	return x, nil
}
