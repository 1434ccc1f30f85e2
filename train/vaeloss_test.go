package train

import (
	stdctx "context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/internal/testutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

var goBackend = testutil.GoBackend

// tinyFeatures is a two-level convolutional net standing in for the
// classifier (package classify imports train, so its tests cover the real
// one): stride-2 3×3 convolutions with SiLU, both levels' outputs compared.
func tinyFeatures(ctx *context.Context, x *Node) []*Node {
	h := Transpose(Transpose(x, 1, 2), 2, 3)
	h1 := nn.SiLU(nn.Conv2D(ctx.In("c1"), h, nn.Conv2DOpts{Out: 8, Kernel: 3, Stride: 2, Pad: 1}))
	h2 := nn.SiLU(nn.Conv2D(ctx.In("c2"), h1, nn.Conv2DOpts{Out: 8, Kernel: 3, Stride: 2, Pad: 1}))
	return []*Node{h1, h2}
}

func tinyNet(t *testing.T, b backends.Backend) *FeatureNet { return tinyNetSeed(t, b, 11) }

func tinyNetSeed(t *testing.T, b backends.Backend, seed uint64) *FeatureNet {
	t.Helper()
	exp, err := nn.ExpectedKeys(b, func(ctx *context.Context, g *Graph) {
		tinyFeatures(ctx, Zeros(g, shapes.Make(nn.DType, 1, 3, 8, 8)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return &FeatureNet{Name: "tiny", Weights: nn.RandomSource(exp, seed), Features: tinyFeatures}
}

func tinyNets(t *testing.T, b backends.Backend) func(string) (*FeatureNet, error) {
	return func(name string) (*FeatureNet, error) {
		if name != "tiny" {
			t.Fatalf("asked for perceptual network %q", name)
		}
		return tinyNet(t, b), nil
	}
}

func tinyVAEConfig() vae.Config {
	c := SmallVAEConfig()
	c.DownBlockTypes = []string{vae.DownEncoderBlock2D, vae.DownEncoderBlock2D}
	c.UpBlockTypes = []string{vae.UpDecoderBlock2D, vae.UpDecoderBlock2D}
	c.BlockOutChannels = []int{8, 8}
	c.NormNumGroups = 4
	c.SampleSize = 16
	return c
}

func randImages(seed uint64, n int) *tensors.Tensor {
	x := Normal(StepRand(seed, 0, 0), n*3*16*16)
	for i := range x {
		x[i] = float32(math.Tanh(float64(x[i])))
	}
	return tensors.FromFlatDataAndDimensions(x, n, 3, 16, 16)
}

// The perceptual distance is exactly 0 between identical images, positive
// and symmetric between different ones.
func TestPerceptualDistanceIsZeroForIdenticalImagesPositiveAndSymmetric(t *testing.T) {
	b := goBackend(t)
	net := tinyNet(t, b)
	ctx := context.New()
	if err := net.load(ctx); err != nil {
		t.Fatal(err)
	}
	a, c := randImages(1, 2), randImages(2, 2)
	dist := func(x, y *tensors.Tensor) float64 {
		out, err := context.ExecOnceN(b, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
			return []*Node{perceptualTerm(ctx, net, in[0], in[1])}
		}, x, y)
		if err != nil {
			t.Fatal(err)
		}
		return float64(scalar(out[0]))
	}
	same, ac, ca := dist(a, a), dist(a, c), dist(c, a)
	if same != 0 {
		t.Errorf("d(a, a) = %g, want 0", same)
	}
	if !(ac > 1e-3 && ac <= 4) {
		t.Errorf("d(a, c) = %g, want in (0, 4]", ac)
	}
	if math.Abs(ac-ca) > 1e-6*ac {
		t.Errorf("d(a, c) = %.9g, d(c, a) = %.9g: not symmetric", ac, ca)
	}
}

// The perceptual term alone trains the VAE: its gradient reaches the
// decoder's output convolution and the encoder's input convolution, and is
// finite.
func TestPerceptualGradientReachesTheDecoderAndEncoder(t *testing.T) {
	b := goBackend(t)
	net := tinyNet(t, b)
	cfg := tinyVAEConfig()
	ctx := context.New()
	m, err := vae.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := m.ExpectedKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := InitComponent(ctx, VAEScope, exp, 3); err != nil {
		t.Fatal(err)
	}
	if err := net.load(ctx); err != nil {
		t.Fatal(err)
	}
	loss := VAELoss(cfg, VAELossOpts{Perceptual: 1, PerceptualNet: "tiny"}, net)
	eps := tensors.FromFlatDataAndDimensions(Normal(StepRand(4, 0, 0), 2*4*8*8), 2, 4, 8, 8)
	out, err := context.ExecOnceN(b, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
		l := loss(ctx, in)
		g := l.Graph()
		dec := ctx.GetVariableByScopeAndName(VAEScope+"/decoder/conv_out", "weight").ValueGraph(g)
		enc := ctx.GetVariableByScopeAndName(VAEScope+"/encoder/conv_in", "weight").ValueGraph(g)
		grads := Gradient(l, dec, enc)
		return []*Node{l, ReduceAllSum(Square(grads[0])), ReduceAllSum(Square(grads[1]))}
	}, randImages(5, 2), eps)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"loss", "|∇ decoder.conv_out|²", "|∇ encoder.conv_in|²"} {
		v := float64(scalar(out[i]))
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %g, want positive and finite", name, v)
		}
	}
}

// The hinge losses at logits ±1 and 0, by hand: D's is
// ½(mean relu(1−real) + mean relu(1+fake)), G's is −mean fake.
func TestHingeLossesAtKnownLogits(t *testing.T) {
	b := goBackend(t)
	for _, tc := range []struct {
		name         string
		real, fake   []float32
		wantD, wantG float64
	}{
		{"confident and right", []float32{1, 1, 1, 1}, []float32{-1, -1, -1, -1}, 0, 1},
		{"undecided", []float32{0, 0, 0, 0}, []float32{0, 0, 0, 0}, 1, 0},
		{"confident and wrong", []float32{-1, -1, -1, -1}, []float32{1, 1, 1, 1}, 2, -1},
		{"beyond the margin costs nothing", []float32{2, 3, 1, 5}, []float32{-4, -1, -2, -1}, 0, 2},
		{"mixed", []float32{1, -1, 0, 2}, []float32{1, -1, 0, -2}, 0.75, 0.5},
	} {
		out, err := context.ExecOnceN(b, context.New(), func(_ *context.Context, in []*Node) []*Node {
			return []*Node{HingeDiscLoss(in[0], in[1]), GeneratorAdvLoss(in[1])}
		}, tensors.FromFlatDataAndDimensions(tc.real, 1, 2, 2), tensors.FromFlatDataAndDimensions(tc.fake, 1, 2, 2))
		if err != nil {
			t.Fatal(err)
		}
		if d, g := float64(scalar(out[0])), float64(scalar(out[1])); math.Abs(d-tc.wantD) > 1e-6 || math.Abs(g-tc.wantG) > 1e-6 {
			t.Errorf("%s: D loss %g, G loss %g; want %g, %g", tc.name, d, g, tc.wantD, tc.wantG)
		}
	}
}

// The adaptive weight is ‖∇rec‖ / (‖∇adv‖ + 1e-4) at the last layer,
// clamped to [0, 1e4], and no gradient flows through it.
func TestAdaptiveWeightBalancesTheGradientNorms(t *testing.T) {
	b := goBackend(t)
	for _, tc := range []struct {
		name string
		a, c []float32 // rec = Σ a·w, adv = Σ c·w: gradients a and c
		want float64
	}{
		{"ratio of norms", []float32{3, 4, 0}, []float32{0, 0, 2}, 5 / (2 + 1e-4)},
		{"clamped", []float32{3, 4, 0}, []float32{0, 0, 0}, 1e4},
		{"no reconstruction gradient", []float32{0, 0, 0}, []float32{1, 2, 2}, 0},
	} {
		out, err := context.ExecOnceN(b, context.New(), func(ctx *context.Context, in []*Node) []*Node {
			w := in[2]
			rec, adv := ReduceAllSum(Mul(in[0], w)), ReduceAllSum(Mul(in[1], w))
			lambda := adaptiveWeight(rec, adv, w)
			// λ is a constant to the optimiser: d(λ·adv)/dw = λ·c.
			g := Gradient(Mul(lambda, adv), w)[0]
			return []*Node{lambda, g}
		}, tensors.FromFlatDataAndDimensions(tc.a, 3), tensors.FromFlatDataAndDimensions(tc.c, 3), tensors.FromFlatDataAndDimensions([]float32{0.5, -1, 2}, 3))
		if err != nil {
			t.Fatal(err)
		}
		lambda := float64(scalar(out[0]))
		if math.Abs(lambda-tc.want) > 1e-5*math.Max(1, tc.want) {
			t.Errorf("%s: λ = %g, want %g", tc.name, lambda, tc.want)
		}
		for i, g := range nn.Values(out[1]) {
			if want := lambda * float64(tc.c[i]); math.Abs(float64(g)-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: gradient[%d] = %g, want λ·c = %g", tc.name, i, g, want)
			}
		}
	}
}

// The discriminator is a map of patch logits: [B, H/2^n, W/2^n].
func TestDiscriminatorReturnsAPatchMap(t *testing.T) {
	b := goBackend(t)
	c := DiscConfig{Channels: []int{8, 8}, Groups: 4, LR: 1e-3}
	ctx := context.New()
	if err := initDiscriminator(b, ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	out, err := context.ExecOnceN(b, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
		return []*Node{Discriminator(ctx.In(DiscScope[1:]), c, in[0])}
	}, randImages(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Shape().Dimensions; len(got) != 3 || got[0] != 3 || got[1] != 4 || got[2] != 4 {
		t.Fatalf("logits %v, want [3 4 4]", got)
	}
}

// shapesFolder writes a small procedural image folder (16², a quarter held out).
func shapesFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shapes")
	if err := data.GenerateShapes(stdctx.Background(), dir, data.ShapesOptions{N: 40, Size: 16, Seed: 1, Holdout: 0.25}, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tinyVAERun(dir string, loss VAELossOpts, steps int) VAERun {
	c := DefaultConfig()
	c.LR, c.WarmupSteps, c.Steps, c.EMADecay = 1e-2, 3, steps, 0
	loss.L1, loss.KL = 1, 1e-6
	return VAERun{Data: dir, Size: 16, Batch: 4, Seed: 2, VAE: tinyVAEConfig(), Loss: loss, Train: c}
}

func tinyDisc() DiscConfig { return DiscConfig{Channels: []int{8, 8}, Groups: 4, LR: 1e-3} }

// A tiny VAE trained with each term on reconstructs held-out images better
// than at the start; with the adversarial term, the discriminator trains
// from DiscStart and its loss stays finite.
func TestVAETrainingWithEachTermImprovesReconstruction(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	const steps = 80
	for _, tc := range []struct {
		name string
		loss VAELossOpts
	}{
		{"L1+KL", VAELossOpts{}},
		{"+perceptual", VAELossOpts{Perceptual: 0.5, PerceptualNet: "tiny"}},
		{"+adversarial", VAELossOpts{Adversarial: 0.1, DiscStart: 20, Disc: tinyDisc()}},
		{"+adversarial, adaptive weight", VAELossOpts{Adversarial: 0.1, DiscStart: 20, Disc: tinyDisc(), AdaptiveWeight: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVAETrainer(b, tinyVAERun(dir, tc.loss, steps), "", tinyNets(t, b))
			if err != nil {
				t.Fatal(err)
			}
			before, err := v.Evaluate(b, "", 16)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Loop(stdctx.Background(), steps, v.Batch, LoopOptions{}); err != nil {
				t.Fatal(err)
			}
			after, err := v.Evaluate(b, "", 16)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("held-out PSNR %.2f → %.2f dB, SSIM %.3f → %.3f", before.PSNR, after.PSNR, before.SSIM, after.SSIM)
			if !(after.PSNR > before.PSNR+3) || !(after.SSIM > before.SSIM) {
				t.Errorf("held-out PSNR %.2f → %.2f dB, SSIM %.3f → %.3f: want +3 dB and a higher SSIM", before.PSNR, after.PSNR, before.SSIM, after.SSIM)
			}
			if first, last := mean(v.Losses[:5]), mean(v.Losses[15:20]); !(last < first) {
				t.Errorf("loss %.4f (steps 1–5) → %.4f (steps 16–20): want lower", first, last)
			}
			if tc.loss.Adversarial > 0 {
				if len(v.DiscLosses) != steps-20 || v.Disc.Step != steps-20 {
					t.Errorf("%d discriminator losses, discriminator step %d; want %d", len(v.DiscLosses), v.Disc.Step, steps-20)
				}
				for _, l := range v.DiscLosses {
					if math.IsNaN(float64(l)) || l < 0 || l > 10 {
						t.Fatalf("discriminator losses %v", v.DiscLosses)
					}
				}
			}
		})
	}
}

// --resume with both terms on (the discriminator already training at the
// checkpoint, the adaptive weight on) reproduces the uninterrupted run: the same loss of every step
// and bit-identical VAE, discriminator and optimiser variables. The
// checkpoint holds the discriminator and its Adam moments, not the frozen
// perceptual network.
func TestResumeWithPerceptualAndAdversarialTermsReproducesTheRun(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	const n = 6
	loss := VAELossOpts{Perceptual: 0.5, PerceptualNet: "tiny", Adversarial: 0.1, DiscStart: 3, Disc: tinyDisc(), AdaptiveWeight: true}
	run := tinyVAERun(dir, loss, 2*n)
	straight, err := NewVAETrainer(b, run, "", tinyNets(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if err := straight.Loop(stdctx.Background(), 2*n, straight.Batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}

	ckpt := t.TempDir()
	first, err := NewVAETrainer(b, run, "", tinyNets(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Loop(stdctx.Background(), n, first.Batch, LoopOptions{Dir: ckpt, Every: n, Extra: first.Run}); err != nil {
		t.Fatal(err)
	}
	f, err := weights.Open(Latest(ckpt))
	if err != nil {
		t.Fatal(err)
	}
	var hasDisc, hasDiscAdam bool
	for _, k := range f.Names() {
		hasDisc = hasDisc || strings.HasPrefix(k, "discriminator.")
		hasDiscAdam = hasDiscAdam || strings.HasPrefix(k, "train.adam_v.discriminator.")
		if strings.HasPrefix(k, "frozen.") {
			t.Errorf("checkpoint holds frozen weight %s", k)
		}
	}
	f.Close()
	if !hasDisc || !hasDiscAdam {
		t.Errorf("checkpoint: discriminator weights %v, its Adam moments %v; want both", hasDisc, hasDiscAdam)
	}

	resumed, err := NewVAETrainer(b, VAERun{Data: dir}, Latest(ckpt), tinyNets(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Step != n || resumed.Disc.Step != n-loss.DiscStart {
		t.Fatalf("resumed at step %d (discriminator %d), want %d (%d)", resumed.Step, resumed.Disc.Step, n, n-loss.DiscStart)
	}
	if err := resumed.Loop(stdctx.Background(), 2*n, resumed.Batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range straight.Losses {
		if straight.Losses[i] != resumed.Losses[i] {
			t.Errorf("step %d: loss %.9g straight, %.9g resumed", i+1, straight.Losses[i], resumed.Losses[i])
		}
	}
	if got, want := resumed.DiscLosses, straight.DiscLosses[n-loss.DiscStart:]; len(got) != len(want) {
		t.Errorf("%d discriminator losses after resume, want %d", len(got), len(want))
	} else {
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("discriminator step %d: loss %.9g straight, %.9g resumed", n-loss.DiscStart+i+1, want[i], got[i])
			}
		}
	}
	for v := range straight.Ctx.IterVariables() {
		w := resumed.Ctx.GetVariableByScopeAndName(v.Scope(), v.Name())
		if w == nil {
			t.Fatalf("%s/%s missing after resume", v.Scope(), v.Name())
		}
		a, c := nn.Values(v.MustValue()), nn.Values(w.MustValue())
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("%s/%s[%d]: %g straight, %g resumed", v.Scope(), v.Name(), i, a[i], c[i])
			}
		}
	}
}

// A run remembers its perceptual network's weights: resuming with other
// weights under the same name is an error, not a silently different run.
func TestResumeRefusesAChangedPerceptualNetwork(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	run := tinyVAERun(dir, VAELossOpts{Perceptual: 0.5, PerceptualNet: "tiny"}, 4)
	v, err := NewVAETrainer(b, run, "", tinyNets(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Run.Loss.PerceptualSHA256) != 64 {
		t.Fatalf("stored digest %q", v.Run.Loss.PerceptualSHA256)
	}
	ckpt := t.TempDir()
	if err := v.Loop(stdctx.Background(), 2, v.Batch, LoopOptions{Dir: ckpt, Every: 2, Extra: v.Run}); err != nil {
		t.Fatal(err)
	}
	other := func(string) (*FeatureNet, error) { return tinyNetSeed(t, b, 12), nil }
	_, err = NewVAETrainer(b, VAERun{}, Latest(ckpt), other)
	if err == nil || !strings.Contains(err.Error(), "not the one the run started with") {
		t.Fatalf("resume with other weights: err %v", err)
	}
	if _, err := NewVAETrainer(b, VAERun{}, Latest(ckpt), tinyNets(t, b)); err != nil {
		t.Fatalf("resume with the same weights: %v", err)
	}
}

// Bad settings are errors that say what is wrong, before anything trains.
func TestVAELossSettingsAreValidated(t *testing.T) {
	b := goBackend(t)
	dir := shapesFolder(t)
	for _, tc := range []struct {
		name string
		edit func(r *VAERun)
		nets bool
		want string
	}{
		{"negative perceptual weight", func(r *VAERun) { r.Loss.Perceptual, r.Loss.PerceptualNet = -1, "tiny" }, true, "perceptual loss weight -1"},
		{"negative adversarial weight", func(r *VAERun) { r.Loss.Adversarial = -0.5 }, true, "adversarial loss weight -0.5"},
		{"NaN KL weight", func(r *VAERun) { r.Loss.KL = math.NaN() }, true, "KL loss weight NaN"},
		{"no reconstruction term", func(r *VAERun) { r.Loss.L1 = 0 }, true, "L1 or MSE"},
		{"perceptual without a network name", func(r *VAERun) { r.Loss.Perceptual = 1 }, true, "needs a feature network"},
		{"perceptual without a resolver", func(r *VAERun) { r.Loss.Perceptual, r.Loss.PerceptualNet = 1, "tiny" }, false, "no way to load"},
		{"disc start at the last step", func(r *VAERun) { r.Loss.Adversarial, r.Loss.DiscStart, r.Loss.Disc = 0.1, 10, tinyDisc() }, true, "would never be used"},
		{"negative disc start", func(r *VAERun) { r.Loss.Adversarial, r.Loss.DiscStart, r.Loss.Disc = 0.1, -1, tinyDisc() }, true, "start -1"},
		{"disc levels too deep", func(r *VAERun) {
			r.Loss.Adversarial, r.Loss.Disc = 0.1, DiscConfig{Channels: []int{8, 8, 8, 8, 8}, Groups: 4, LR: 1e-3}
		}, true, "do not divide"},
		{"disc groups", func(r *VAERun) {
			r.Loss.Adversarial, r.Loss.Disc = 0.1, DiscConfig{Channels: []int{8, 6}, Groups: 4, LR: 1e-3}
		}, true, "multiple of the groups"},
		{"disc learning rate", func(r *VAERun) {
			r.Loss.Adversarial, r.Loss.Disc = 0.1, DiscConfig{Channels: []int{8}, LR: 0}
		}, true, "learning rate 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := tinyVAERun(dir, VAELossOpts{}, 10)
			tc.edit(&run)
			var nets func(string) (*FeatureNet, error)
			if tc.nets {
				nets = tinyNets(t, b)
			}
			_, err := NewVAETrainer(b, run, "", nets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
