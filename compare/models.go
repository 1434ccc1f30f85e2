package compare

import (
	"fmt"
	"math"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/baselines"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/gan"
	"github.com/ldm-project/ldm/train"
)

// runAE trains an autoencoder (denoising when m.Corrupt is set): test
// reconstructions and the anomaly score against the shapes images. The plain
// AE's encoder becomes the feature space of the distribution metrics.
func (r *runner) runAE(m baselines.AE) (Row, error) {
	ctx := context.New()
	if err := m.Init(r.backend, ctx, r.o.Seed); err != nil {
		return Row{}, err
	}
	tr, err := train.New(r.backend, ctx, r.optim(r.o.LR, r.o.Steps), []string{"/" + m.Scope}, m.Loss())
	if err != nil {
		return Row{}, err
	}
	ord := &train.Order{N: r.train.N, Seed: r.o.Seed}
	name := ModelAE
	if m.Scope == "dae" {
		name = ModelDAE
	}
	row, err := r.fit(name, tr, r.o.Steps, func(step int) ([]any, error) {
		x := r.train.gather(r.batchIdx(ord, step))
		in := x
		if m.Corrupt != (baselines.Corruption{}) {
			in = m.Corrupt.Apply(train.StepRand(r.o.Seed, step, 0), x)
		}
		return []any{r.imgTensor(in), r.imgTensor(x)}, nil
	})
	if err != nil {
		return row, err
	}
	rt := baselines.NewRuntime(r.backend, ctx)
	recFn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Decode(ctx, m.Encode(ctx, in[0]))} }
	rec, err := r.chunks(rt, "recon", recFn, r.test.N, func(i0, n int) []any { return []any{r.padImages(r.test.X, i0, n)} })
	if err != nil {
		return row, err
	}
	if err := r.reconstructions(&row, rec); err != nil {
		return row, err
	}
	// Anomaly score: the threshold is the 95th percentile of the first half
	// of the test images; ROC-AUC and rates on the second half against as
	// many shapes images.
	errFn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.PerImageError(ctx, in[0])} }
	inScores, err := r.chunks(rt, "score", errFn, r.test.N, func(i0, n int) []any { return []any{r.padImages(r.test.X, i0, n)} })
	if err != nil {
		return row, err
	}
	oodScores, err := r.chunks(rt, "score", errFn, r.ood.N, func(i0, n int) []any { return []any{r.padImages(r.ood.X, i0, n)} })
	if err != nil {
		return row, err
	}
	half := r.test.N / 2
	thr := eval.Threshold(f64(inScores[:half]), 0.95)
	held, ood := f64(inScores[half:]), f64(oodScores[half:])
	auc, err := eval.ROCAUC(held, ood)
	if err != nil {
		return row, err
	}
	row.AUC = pf(auc)
	row.Notes = append(row.Notes, fmt.Sprintf("anomaly threshold %.4f (95th percentile of %d held-out emoji): flags %.0f%% of %d shapes and %.0f%% of %d other held-out emoji",
		thr, half, 100*above(ood, thr), len(ood), 100*above(held, thr), len(held)))
	if m.Corrupt != (baselines.Corruption{}) {
		row.Notes = append(row.Notes, fmt.Sprintf("corruption: Gaussian noise σ=%.2g, dropout %.2g", m.Corrupt.Noise, m.Corrupt.Dropout))
	}
	if name == ModelAE {
		encFn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Encode(ctx, in[0])} }
		r.features = func(x []float32, n int) ([][]float64, error) {
			f, err := r.chunks(rt, "encode", encFn, n, func(i0, k int) []any { return []any{r.padImages(x, i0, k)} })
			if err != nil {
				return nil, err
			}
			return toRows(f, n), nil
		}
	}
	return row, nil
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func above(x []float64, t float64) float64 {
	n := 0
	for _, v := range x {
		if v > t {
			n++
		}
	}
	return float64(n) / float64(len(x))
}

// runVAE trains a (β-)VAE: reconstructions from the posterior mean, the
// ELBO in bits/dim (β = 1 only: a β-VAE's objective is not a bound), samples
// from the prior, an interpolation strip and the PCA plot of the means.
func (r *runner) runVAE(m baselines.VAE, name string) (Row, error) {
	ctx := context.New()
	if err := m.Init(r.backend, ctx, r.o.Seed); err != nil {
		return Row{}, err
	}
	tr, err := train.New(r.backend, ctx, r.optim(r.o.LR, r.o.Steps), []string{"/" + m.Scope}, m.Loss())
	if err != nil {
		return Row{}, err
	}
	ord := &train.Order{N: r.train.N, Seed: r.o.Seed}
	l := m.Config.Latent
	row, err := r.fit(name, tr, r.o.Steps, func(step int) ([]any, error) {
		eps := train.Normal(train.StepRand(r.o.Seed, step, 1), r.o.Batch*l)
		return []any{r.imgTensor(r.train.gather(r.batchIdx(ord, step))), tensors.FromFlatDataAndDimensions(eps, r.o.Batch, l)}, nil
	})
	if err != nil {
		return row, err
	}
	row.Notes = append(row.Notes, fmt.Sprintf("β = %g, decoder σ = %g (fixed), latent %d", m.Beta, m.Sigma, l))
	rt := baselines.NewRuntime(r.backend, ctx)
	imgs := func(x []float32) func(i0, n int) []any {
		return func(i0, n int) []any { return []any{r.padImages(x, i0, n)} }
	}
	meanFn := func(ctx *context.Context, in []*Node) []*Node { mu, _ := m.Posterior(ctx, in[0]); return []*Node{mu} }
	decFn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Decode(ctx, in[0])} }
	means, err := r.chunks(rt, "mean", meanFn, r.test.N, imgs(r.test.X))
	if err != nil {
		return row, err
	}
	latents := func(z []float32) func(i0, n int) []any {
		return func(i0, n int) []any { return []any{r.padRows(z, l, i0, n)} }
	}
	rec, err := r.chunks(rt, "decode", decFn, r.test.N, latents(means))
	if err != nil {
		return row, err
	}
	if err := r.reconstructions(&row, rec); err != nil {
		return row, err
	}
	if m.Beta == 1 {
		rng := r.rand(11)
		elboFn := func(ctx *context.Context, in []*Node) []*Node {
			rec, kl := m.Terms(ctx, in[0], in[1])
			return []*Node{Add(rec, kl)}
		}
		nll, err := r.chunks(rt, "elbo", elboFn, r.test.N, func(i0, n int) []any {
			return []any{r.padImages(r.test.X, i0, n), tensors.FromFlatDataAndDimensions(train.Normal(rng, r.o.Batch*l), r.o.Batch, l)}
		})
		if err != nil {
			return row, err
		}
		s := 0.0
		for _, v := range nll {
			s += float64(v)
		}
		row.BitsPerDim = pf(eval.BitsPerDim(s/float64(len(nll)), 3*r.o.Size*r.o.Size))
		row.Notes = append(row.Notes, "bits/dim: negative ELBO on the test images (one posterior sample each), 8-bit discretisation by bin width")
	}
	start := time.Now()
	z := train.Normal(r.rand(12), r.o.Samples*l)
	samples, err := r.chunks(rt, "decode", decFn, r.o.Samples, latents(z))
	if err != nil {
		return row, err
	}
	if _, err := r.samplesDone(&row, samples, r.o.Samples, time.Since(start).Seconds()); err != nil {
		return row, err
	}
	// Interpolation between the means of pairs of test images.
	const steps = 8
	pairs := min(4, r.test.N/2)
	var path []float32
	for p := range pairs {
		a, b := means[(2*p)*l:(2*p+1)*l], means[(2*p+1)*l:(2*p+2)*l]
		for i := range steps {
			t := float32(i) / (steps - 1)
			for j := range l {
				path = append(path, (1-t)*a[j]+t*b[j])
			}
		}
	}
	strip, err := r.chunks(rt, "decode", decFn, pairs*steps, latents(path))
	if err != nil {
		return row, err
	}
	iname := name + "-interpolation.png"
	if err := writeGrid(r.path(iname), strip, pairs*steps, r.o.Size, steps); err != nil {
		return row, err
	}
	pts, err := pca2(toRows(means, r.test.N))
	if err != nil {
		return row, err
	}
	pname := name + "-latent-pca.png"
	if err := writePNG(r.path(pname), scatterPlot(pts, r.test.Categories, name+": posterior means of the test images, first two principal axes")); err != nil {
		return row, err
	}
	row.Artifacts = append(row.Artifacts, iname, pname)
	return row, nil
}

// vqConfig is the VQ-VAE's encoder: enough stride-2 levels for an 8×8 code
// grid, 32-value codes.
func (r *runner) vqConfig() baselines.Config {
	ch := []int{32, 64, 128, 128, 128}
	levels := 0
	for s := r.o.Size; s > 8; s /= 2 {
		levels++
	}
	return baselines.Config{Size: r.o.Size, Channels: ch[:levels], Latent: 32}
}

// runVQ trains the VQ-VAE (EMA codebook, dead-code restarts), then the
// causal-transformer prior on the training images' codes, and samples.
func (r *runner) runVQ() (Row, error) {
	// Usage averages over about a tenth of the run, so that restarts can
	// happen in a short one: a dead code is restarted after ~Steps/4.
	ud := min(0.99, max(0.8, 1-10/float64(r.o.Steps)))
	m := baselines.VQVAE{Config: r.vqConfig(), VQ: baselines.VQOpts{K: 128, Beta: 0.25, EMA: 0.99, RestartBelow: 0.1, UsageDecay: ud}, Scope: "vq"}
	ctx := context.New()
	if err := m.Init(r.backend, ctx, r.o.Seed); err != nil {
		return Row{}, err
	}
	tr, err := train.New(r.backend, ctx, r.optim(r.o.LR, r.o.Steps), m.Trainable(), m.Loss())
	if err != nil {
		return Row{}, err
	}
	ord := &train.Order{N: r.train.N, Seed: r.o.Seed}
	row, err := r.fit(ModelVQVAE, tr, r.o.Steps, func(step int) ([]any, error) {
		return []any{r.imgTensor(r.train.gather(r.batchIdx(ord, step)))}, nil
	})
	if err != nil {
		return row, err
	}
	row.Notes = append(row.Notes, fmt.Sprintf("K = %d codes of %d values on an %d×%d grid, β = %g, EMA codebook (decay %g), dead-code restarts below %g of uniform usage (usage decay %.3g)",
		m.VQ.K, m.Config.Latent, m.Config.Grid(), m.Config.Grid(), m.VQ.Beta, m.VQ.EMA, m.VQ.RestartBelow, ud))
	rt := baselines.NewRuntime(r.backend, ctx)
	t := m.Config.Grid() * m.Config.Grid()
	codeFn := func(ctx *context.Context, in []*Node) []*Node {
		return []*Node{ConvertDType(m.Codes(ctx, in[0]), dtypes.Float32)}
	}
	decFn := func(ctx *context.Context, in []*Node) []*Node {
		return []*Node{m.DecodeCodes(ctx, ConvertDType(in[0], dtypes.Int32))}
	}
	codesOf := func(s *imageSet) ([]float32, error) {
		return r.chunks(rt, "codes", codeFn, s.N, func(i0, n int) []any { return []any{r.padImages(s.X, i0, n)} })
	}
	testCodes, err := codesOf(r.test)
	if err != nil {
		return row, err
	}
	rec, err := r.chunks(rt, "decode", decFn, r.test.N, func(i0, n int) []any { return []any{r.padRows(testCodes, t, i0, n)} })
	if err != nil {
		return row, err
	}
	if err := r.reconstructions(&row, rec); err != nil {
		return row, err
	}
	counts := make([]int, m.VQ.K)
	for _, c := range testCodes {
		counts[int(c)]++
	}
	used := 0
	for _, c := range counts {
		if c > 0 {
			used++
		}
	}
	row.Perplexity, row.CodesUsed = pf(eval.Perplexity(counts)), &used
	// The prior over the training images' code grids.
	trainCodes, err := codesOf(r.train)
	if err != nil {
		return row, err
	}
	p := baselines.Prior{K: m.VQ.K, T: t, Width: 64, Layers: 2, Heads: 4, Scope: "prior"}
	if err := p.Init(r.backend, ctx, r.o.Seed+1); err != nil {
		return row, err
	}
	ptr, err := train.New(r.backend, ctx, r.optim(r.o.LR/2, r.o.PriorSteps), []string{"/prior"}, p.Loss())
	if err != nil {
		return row, err
	}
	pord := &train.Order{N: r.train.N, Seed: r.o.Seed + 1}
	prow, err := r.fit(ModelVQVAE+"-prior", ptr, r.o.PriorSteps, func(step int) ([]any, error) {
		idx := r.batchIdx(pord, step)
		codes := make([]int32, 0, len(idx)*t)
		for _, i := range idx {
			for _, c := range trainCodes[i*t : (i+1)*t] {
				codes = append(codes, int32(c))
			}
		}
		return []any{tensors.FromFlatDataAndDimensions(codes, len(idx), t)}, nil
	})
	if err != nil {
		return row, err
	}
	row.Params += prow.Params
	row.TrainSeconds += prow.TrainSeconds
	row.Artifacts = append(row.Artifacts, prow.Artifacts...)
	row.Notes = append(row.Notes, fmt.Sprintf("prior: causal transformer (2 layers, width 64) over %d codes, %d steps, final cross-entropy %.3f nats/code (uniform: %.3f)",
		t, r.o.PriorSteps, prow.FinalLoss, logf(m.VQ.K)))
	start := time.Now()
	rng := r.rand(21)
	var samples []float32
	for i0 := 0; i0 < r.o.Samples; i0 += r.o.Batch {
		codes, err := p.Sample(r.ctx, rt, rng, r.o.Batch)
		if err != nil {
			return row, err
		}
		out, err := rt.Run("decode", decFn, tensors.FromFlatDataAndDimensions(i32ToF32(codes), r.o.Batch, t))
		if err != nil {
			return row, err
		}
		v := baselines.Floats(out[0])
		samples = append(samples, v[:min(r.o.Batch, r.o.Samples-i0)*3*r.o.Size*r.o.Size]...)
	}
	_, err = r.samplesDone(&row, samples, r.o.Samples, time.Since(start).Seconds())
	return row, err
}

func i32ToF32(x []int32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// runGAN trains the DCGAN with alternating updates and tracks the sample
// diversity (mean pairwise AE-feature distance of 64 samples from fixed
// noise) ten times over training.
func (r *runner) runGAN() (Row, error) {
	lv := 0
	for s := r.o.Size; s > 4; s /= 2 {
		lv++
	}
	ch := []int{32, 64, 128, 256, 256}[:lv]
	const zDim = 64
	m := gan.GAN{Config: gan.Config{Size: r.o.Size, Z: zDim, Channels: ch}, Scope: "gan"}
	ctx := context.New()
	if err := m.Init(r.backend, ctx, r.o.Seed); err != nil {
		return Row{}, err
	}
	cfg := r.optim(2e-4, r.o.Steps)
	cfg.Beta1 = 0.5 // DCGAN's Adam setting
	d, g, err := m.Trainers(r.backend, ctx, cfg)
	if err != nil {
		return Row{}, err
	}
	rt := baselines.NewRuntime(r.backend, ctx)
	genFn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Generate(ctx, in[0])} }
	generate := func(z []float32, n int) ([]float32, error) {
		return r.chunks(rt, "generate", genFn, n, func(i0, k int) []any { return []any{r.padRows(z, zDim, i0, k)} })
	}
	fixed := train.Normal(r.rand(31), 64*zDim)
	ord := &train.Order{N: r.train.N, Seed: r.o.Seed}
	var diversity []float32
	var dLoss, gLoss []float32
	start := time.Now()
	every := max(1, r.o.Steps/10)
	for step := range r.o.Steps {
		if err := r.ctx.Err(); err != nil {
			return Row{}, err
		}
		rnd := train.StepRand(r.o.Seed, step, 0)
		zd := tensors.FromFlatDataAndDimensions(train.Normal(rnd, r.o.Batch*zDim), r.o.Batch, zDim)
		zg := tensors.FromFlatDataAndDimensions(train.Normal(rnd, r.o.Batch*zDim), r.o.Batch, zDim)
		dl, gl, err := gan.Step(d, g, r.imgTensor(r.train.gather(r.batchIdx(ord, step))), zd, zg)
		if err != nil {
			return Row{}, err
		}
		dLoss, gLoss = append(dLoss, dl), append(gLoss, gl)
		if (step+1)%every == 0 || step+1 == r.o.Steps {
			x, err := generate(fixed, 64)
			if err != nil {
				return Row{}, err
			}
			f, err := r.features(x, 64)
			if err != nil {
				return Row{}, err
			}
			diversity = append(diversity, float32(eval.MeanPairwiseDistance(f)))
			r.log("  dcgan step %d/%d D %.3f G %.3f diversity %.3f", step+1, r.o.Steps, dl, gl, diversity[len(diversity)-1])
		}
	}
	row := Row{Model: ModelGAN, Params: d.NumParams() + g.NumParams(), Steps: r.o.Steps, TrainSeconds: time.Since(start).Seconds()}
	k := min(10, len(gLoss))
	for i := len(gLoss) - k; i < len(gLoss); i++ {
		row.FinalLoss += float64(dLoss[i]+gLoss[i]) / float64(k)
	}
	for _, c := range []struct {
		name string
		v    []float32
	}{{"dcgan-d-loss.png", dLoss}, {"dcgan-g-loss.png", gLoss}, {"dcgan-diversity.png", diversity}} {
		if err := train.WriteLossCurve(r.path(c.name), c.name, "value", c.v, 1); err != nil {
			return row, err
		}
		row.Artifacts = append(row.Artifacts, c.name)
	}
	realDiv := eval.MeanPairwiseDistance(r.testFeat[:min(64, len(r.testFeat))])
	row.Notes = append(row.Notes, fmt.Sprintf("final loss = D + G (BCE); sample diversity (mean pairwise AE-feature distance of 64 samples from fixed noise) over training: %s; test images: %.3f",
		fmtSeries(diversity), realDiv))
	if last := float64(diversity[len(diversity)-1]); last < 0.5*realDiv {
		row.Notes = append(row.Notes, fmt.Sprintf("mode-collapse signal: the samples are %.0f%% as diverse as the test images", 100*last/realDiv))
	}
	startS := time.Now()
	z := train.Normal(r.rand(32), r.o.Samples*zDim)
	samples, err := generate(z, r.o.Samples)
	if err != nil {
		return row, err
	}
	_, err = r.samplesDone(&row, samples, r.o.Samples, time.Since(startS).Seconds())
	return row, err
}

func fmtSeries(v []float32) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += " → "
		}
		s += fmt.Sprintf("%.3f", x)
	}
	return s
}

// runDDPM trains the pixel-space DDPM and samples it ancestrally.
func (r *runner) runDDPM() (Row, error) {
	m, err := baselines.NewDDPM(baselines.PixelUNetConfig(r.o.Size, r.o.DDPMChannels...), r.o.DDPMTimesteps, "ddpm")
	if err != nil {
		return Row{}, err
	}
	ctx := context.New()
	if err := m.Init(r.backend, ctx, r.o.Seed); err != nil {
		return Row{}, err
	}
	tr, err := train.New(r.backend, ctx, r.optim(r.o.LR/2, r.o.Steps), []string{"/ddpm"}, m.Loss())
	if err != nil {
		return Row{}, err
	}
	ord := &train.Order{N: r.train.N, Seed: r.o.Seed}
	s := r.o.Size
	row, err := r.fit(ModelDDPM, tr, r.o.Steps, func(step int) ([]any, error) {
		xt, ts, eps, err := m.Batch(train.StepRand(r.o.Seed, step, 0), r.train.gather(r.batchIdx(ord, step)), r.o.Batch, s)
		if err != nil {
			return nil, err
		}
		return m.Inputs(xt, ts, eps, r.o.Batch, s), nil
	})
	if err != nil {
		return row, err
	}
	row.Notes = append(row.Notes, fmt.Sprintf("%d diffusion steps (linear β), unconditional U-Net %v without attention; final loss is the ε-MSE",
		r.o.DDPMTimesteps, m.UNet.Config.BlockOutChannels))
	rt := baselines.NewRuntime(r.backend, ctx)
	if k := min(r.o.DDPMNLL, r.test.N); k > 0 {
		rng := r.rand(42)
		sum := 0.0
		for i0 := 0; i0 < k; i0 += r.o.Batch {
			b := min(r.o.Batch, k-i0)
			x0 := r.padImages(r.test.X, i0, b)
			nats, err := m.NLL(r.ctx, r.ddpmEps(rt, m), baselines.Floats(x0), r.o.Batch, rng)
			if err != nil {
				return row, err
			}
			for _, v := range nats[:b] { // not the padding
				sum += v
			}
		}
		row.BitsPerDim = pf(sum / float64(k) / (3 * float64(s*s)) / math.Ln2)
		row.Notes = append(row.Notes, fmt.Sprintf("bits/dim: variational bound (Ho et al. 2020, eq. 5) on %d test images, discretised decoder", k))
	} else {
		row.Notes = append(row.Notes, "no likelihood bound computed (--ddpm-nll 0: it costs one U-Net pass per diffusion step)")
	}
	start := time.Now()
	rng := r.rand(41)
	var samples []float32
	for i0 := 0; i0 < r.o.Samples; i0 += r.o.Batch {
		x, err := m.Sample(r.ctx, rt, rng, r.o.Batch, s)
		if err != nil {
			return row, err
		}
		samples = append(samples, x[:min(r.o.Batch, r.o.Samples-i0)*3*s*s]...)
		r.log("  ddpm sampled %d/%d", min(i0+r.o.Batch, r.o.Samples), r.o.Samples)
	}
	_, err = r.samplesDone(&row, samples, r.o.Samples, time.Since(start).Seconds())
	return row, err
}

// ddpmEps is the U-Net's noise prediction on a full batch at one timestep.
func (r *runner) ddpmEps(rt *baselines.Runtime, m *baselines.DDPM) func(x []float32, t int) ([]float32, error) {
	fn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{m.Eps(ctx, in[0], in[1])} }
	return func(x []float32, t int) ([]float32, error) {
		ts := make([]float32, r.o.Batch)
		for i := range ts {
			ts[i] = float32(t)
		}
		out, err := rt.Run("ddpm_eps", fn, r.imgTensor(x), tensors.FromFlatDataAndDimensions(ts, r.o.Batch))
		if err != nil {
			return nil, err
		}
		return baselines.Floats(out[0]), nil
	}
}
