package train

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/vae"
)

// VAERun describes a VAE training run; it is stored in every checkpoint so
// that --resume needs only the folder.
type VAERun struct {
	Data string `json:"data"`
	Size int    `json:"size"`
	Crop int    `json:"crop,omitempty"` // train on random crops of this size (0: whole images)
	// Holdout is the fraction of a dataset without a split column held out
	// for evaluation (data.Dataset.TrainTest).
	Holdout float64     `json:"holdout,omitempty"`
	Batch   int         `json:"batch"`
	Seed    uint64      `json:"seed"`
	VAE     vae.Config  `json:"vae"`
	Loss    VAELossOpts `json:"loss"`
	Train   Config      `json:"train"`
	// Init names the weights the run starts from instead of a random
	// initialisation: a checkpoint of `ldm train vae` (its EMA weights) or a
	// diffusers model or vae folder. Its configuration replaces VAE.
	Init string `json:"init,omitempty"`
	// TrainOnly restricts training to a part of the VAE: "" (all of it) or
	// "decoder" (decoder and post_quant_conv; the encoder, and with it the
	// latent space, stays fixed, so latent diffusion models trained on the
	// initial VAE keep working with the result: Stable Diffusion's
	// ft-MSE/ft-EMA decoder fine-tunes).
	TrainOnly string `json:"train_only,omitempty"`
}

// trainableScopes are the scopes TrainOnly selects.
func (r VAERun) trainableScopes() ([]string, error) {
	switch r.TrainOnly {
	case "":
		return []string{VAEScope}, nil
	case "decoder":
		return []string{VAEScope + "/decoder", VAEScope + "/post_quant_conv"}, nil
	}
	return nil, fmt.Errorf("train-only %q: want \"decoder\" or nothing (the whole VAE)", r.TrainOnly)
}

// SmallVAEConfig is the default model's VAE: f4 (64² → 16²×4), three
// blocks of 32/64/64 channels, one ResNet per block.
func SmallVAEConfig() vae.Config {
	c := vae.DefaultConfig()
	c.DownBlockTypes = []string{vae.DownEncoderBlock2D, vae.DownEncoderBlock2D, vae.DownEncoderBlock2D}
	c.UpBlockTypes = []string{vae.UpDecoderBlock2D, vae.UpDecoderBlock2D, vae.UpDecoderBlock2D}
	c.BlockOutChannels = []int{32, 64, 64}
	c.NormNumGroups = 16
	c.SampleSize = 64
	c.ScalingFactor = 1
	return c
}

// VAETrainer is a VAE run ready to Loop.
type VAETrainer struct {
	*Trainer
	Run  VAERun
	Data *Dataset
	Test *Dataset
	// Disc is the discriminator's optimiser (nil without an adversarial
	// term); the VAE trainer's AfterStep runs it from Loss.DiscStart on,
	// and DiscLosses holds its loss of every step this process ran.
	Disc       *Trainer
	DiscLosses []float32
	ord        Order
}

// NewVAETrainer loads the data and builds a fresh (random) VAE, or, with
// resume set to a checkpoint path, the run stored there (the given run is
// then ignored). nets resolves the run's Loss.PerceptualNet to the frozen
// network of the perceptual term; it is called only when the run has that
// term (nil is then an error).
func NewVAETrainer(backend backends.Backend, run VAERun, resume string, nets func(name string) (*FeatureNet, error)) (*VAETrainer, error) {
	if resume != "" {
		// A data folder or perceptual network given with --resume wins:
		// the data may have moved, the network's file too.
		data, pnet := run.Data, run.Loss.PerceptualNet
		if err := ReadCheckpointExtra(resume, &run); err != nil {
			return nil, err
		}
		if data != "" {
			run.Data = data
		}
		if pnet != "" {
			run.Loss.PerceptualNet = pnet
		}
	}
	if err := run.Loss.Validate(run.Train.Steps); err != nil {
		return nil, err
	}
	scopes, err := run.trainableScopes()
	if err != nil {
		return nil, err
	}
	if run.TrainOnly != "" && run.Init == "" {
		return nil, fmt.Errorf("training only the %s needs the weights to start from (--init): a random encoder would stay random", run.TrainOnly)
	}
	var initial nn.MapSource
	if run.Init != "" && resume == "" {
		m, err := LoadVAE(backend, run.Init)
		if err != nil {
			return nil, fmt.Errorf("--init %s: %w", run.Init, err)
		}
		run.VAE = m.Config
		if initial, err = vaeSource(m); err != nil {
			return nil, err
		}
	}
	var net *FeatureNet
	if run.Loss.Perceptual > 0 {
		if nets == nil {
			return nil, fmt.Errorf("the run has a perceptual term (network %q) but no way to load feature networks was given", run.Loss.PerceptualNet)
		}
		var err error
		if net, err = nets(run.Loss.PerceptualNet); err != nil {
			return nil, fmt.Errorf("perceptual network %q: %w", run.Loss.PerceptualNet, err)
		}
		sum, err := net.Digest()
		if err != nil {
			return nil, fmt.Errorf("perceptual network %q: %w", run.Loss.PerceptualNet, err)
		}
		if run.Loss.PerceptualSHA256 != "" && sum != run.Loss.PerceptualSHA256 {
			return nil, fmt.Errorf("perceptual network %q is not the one the run started with (weights sha256 %.12s…, the run's %.12s…): "+
				"resuming would not continue the same run; give the original network (a classifier folder)", run.Loss.PerceptualNet, sum, run.Loss.PerceptualSHA256)
		}
		run.Loss.PerceptualSHA256 = sum
	}
	size := run.Size
	if run.Crop > 0 && run.Crop < run.Size {
		size = run.Crop
	}
	if run.Loss.Adversarial > 0 {
		if err := run.Loss.Disc.validate(size); err != nil {
			return nil, err
		}
	}
	m, err := vae.New(run.VAE)
	if err != nil {
		return nil, err
	}
	expected, err := m.ExpectedKeys()
	if err != nil {
		return nil, err
	}
	ctx := context.New()
	var src nn.Source = nn.RandomSource(expected, run.Seed) // what InitComponent loads
	if initial != nil {
		for k := range initial {
			if _, ok := expected[k]; !ok {
				return nil, fmt.Errorf("--init %s: weight %q is not one of the VAE's", run.Init, k)
			}
		}
		if len(initial) != len(expected) {
			return nil, fmt.Errorf("--init %s: %d weights, the VAE has %d", run.Init, len(initial), len(expected))
		}
		src = initial
	}
	if err := LoadComponent(ctx, VAEScope, src); err != nil {
		return nil, err
	}
	if net != nil {
		if err := net.load(ctx); err != nil {
			return nil, err
		}
	}
	var disc *Trainer
	if run.Loss.Adversarial > 0 {
		// A seed of its own, so that the VAE's initialisation does not
		// depend on whether there is a discriminator.
		if err := initDiscriminator(backend, ctx, run.Loss.Disc, run.Seed+0x9e3779b97f4a7c15); err != nil {
			return nil, err
		}
		if disc, err = New(backend, ctx, run.Loss.Disc.optimiser(run.Train), []string{DiscScope}, discLoss(run.VAE, run.Loss)); err != nil {
			return nil, err
		}
	}
	tr, err := New(backend, ctx, run.Train, scopes, VAELoss(run.VAE, run.Loss, net))
	if err != nil {
		return nil, err
	}
	if resume != "" {
		if err := tr.Resume(resume, nil); err != nil {
			return nil, err
		}
	}
	ds, test, err := LoadTrainingData(run.Data, run.Size, run.Holdout)
	if err != nil {
		return nil, err
	}
	v := &VAETrainer{Trainer: tr, Run: run, Data: ds, Test: test, Disc: disc, ord: Order{N: len(ds.Examples), Seed: run.Seed}}
	if disc != nil {
		// The discriminator's step count (its Adam bias correction) follows
		// from the VAE's: one update per VAE step from DiscStart on.
		disc.Step = max(0, tr.Step-run.Loss.DiscStart)
		tr.AfterStep = v.discStep
	}
	return v, nil
}

// discStep updates the discriminator on the micro-batches of the VAE step
// just done (against the updated VAE's reconstructions), from DiscStart on.
func (v *VAETrainer) discStep(micro [][]any) error {
	if v.Step-1 < v.Run.Loss.DiscStart {
		return nil
	}
	r, err := v.Disc.TrainStep(micro)
	if err != nil {
		return fmt.Errorf("discriminator: %w", err)
	}
	v.DiscLosses = append(v.DiscLosses, r.Loss)
	return nil
}

// Batch returns the micro-batches of step: images in data order and the
// posterior noise, both functions of (seed, step).
func (v *VAETrainer) Batch(step int) ([][]any, error) {
	r := v.Run
	f := r.VAE.DownsampleFactor()
	out := make([][]any, r.Train.Accum)
	for m := range out {
		idx := make([]int, r.Batch)
		for i := range idx {
			idx[i] = v.ord.Index((step*r.Train.Accum+m)*r.Batch + i)
		}
		x := v.Data.NCHW(idx)
		rnd := StepRand(r.Seed, step, m)
		s := r.Size
		if r.Crop > 0 && r.Crop < r.Size {
			x = randomCrops(rnd, x, r.Batch, r.Size, r.Crop)
			s = r.Crop
		}
		eps := Normal(rnd, r.Batch*r.VAE.LatentChannels*(s/f)*(s/f))
		out[m] = []any{
			tensors.FromFlatDataAndDimensions(x, r.Batch, 3, s, s),
			tensors.FromFlatDataAndDimensions(eps, r.Batch, r.VAE.LatentChannels, s/f, s/f),
		}
		if r.Loss.Adversarial > 0 {
			gate := float32(0)
			if step >= r.Loss.DiscStart {
				gate = 1
			}
			out[m] = append(out[m], gate)
		}
	}
	return out, nil
}

// randomCrops cuts one c×c window (a multiple-of-8 offset, so that the
// downsamplers see aligned grids) out of each [3,s,s] image of x.
func randomCrops(r *rand.Rand, x []float32, b, s, c int) []float32 {
	out := make([]float32, 0, b*3*c*c)
	for n := range b {
		y0, x0 := 8*r.IntN((s-c)/8+1), 8*r.IntN((s-c)/8+1)
		for ch := range 3 {
			for y := range c {
				row := ((n*3+ch)*s+y0+y)*s + x0
				out = append(out, x[row:row+c]...)
			}
		}
	}
	return out
}

// Model returns an inference VAE holding the EMA weights.
func (v *VAETrainer) Model(backend backends.Backend) (*vae.AutoencoderKL, error) {
	return VAEFromContext(backend, v.Ctx, v.Run.VAE)
}

// VAEFromContext builds an inference VAE from the (EMA) weights under VAEScope.
func VAEFromContext(backend backends.Backend, ctx *context.Context, cfg vae.Config) (*vae.AutoencoderKL, error) {
	src, err := ComponentSource(ctx, VAEScope, true)
	if err != nil {
		return nil, err
	}
	m, err := vae.New(cfg)
	if err != nil {
		return nil, err
	}
	m.Backend = backend
	return m, m.LoadWeights(src)
}

// Reconstruct encodes x [n,3,H,W] to the posterior mean and decodes it.
func Reconstruct(m *vae.AutoencoderKL, x []float32, n, size int) ([]float32, error) {
	moments, shape, err := m.EncodeRun(x, []int{n, 3, size, size})
	if err != nil {
		return nil, err
	}
	mean := posteriorMean(moments, shape)
	rec, _, err := m.DecodeRun(mean, []int{shape[0], shape[1] / 2, shape[2], shape[3]})
	return rec, err
}

func posteriorMean(moments []float32, shape []int) []float32 {
	b, l, hw := shape[0], shape[1]/2, shape[2]*shape[3]
	out := make([]float32, 0, b*l*hw)
	for n := range b {
		out = append(out, moments[n*2*l*hw:(n*2*l+l)*hw]...)
	}
	return out
}

// VAEEval is the held-out reconstruction quality of the EMA weights.
type VAEEval struct {
	Step   int     `json:"step"`
	Images int     `json:"images"`
	PSNR   float64 `json:"psnr_db"` // mean over images
	SSIM   float64 `json:"ssim"`    // mean over images (eval.SSIM)
}

// Evaluate reconstructs up to n held-out images (training images when the
// folder has no test split) with the EMA weights, writes dir/recon-<step>.png
// (originals above reconstructions, 8 columns) and returns the mean PSNR and
// SSIM.
func (v *VAETrainer) Evaluate(backend backends.Backend, dir string, n int) (VAEEval, error) {
	ds := v.Test
	if ds == nil {
		ds = v.Data
	}
	n = min(n, len(ds.Examples))
	m, err := v.Model(backend)
	if err != nil {
		return VAEEval{}, err
	}
	s := v.Run.Size
	ev := VAEEval{Step: v.Step, Images: n}
	var shown []float32
	const chunk = 16
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		x := ds.NCHW(idx)
		rec, err := Reconstruct(m, x, len(idx), s)
		if err != nil {
			return ev, err
		}
		per := 3 * s * s
		for i := range idx {
			a, b := x[i*per:(i+1)*per], rec[i*per:(i+1)*per]
			ev.PSNR += PSNR(a, b)
			ssim, err := eval.SSIM(a, b, 3, s, s)
			if err != nil {
				return ev, err
			}
			ev.SSIM += ssim
		}
		if lo == 0 {
			k := min(8, len(idx))
			shown = append(append(shown, x[:k*per]...), rec[:k*per]...)
		}
	}
	ev.PSNR /= float64(n)
	ev.SSIM /= float64(n)
	if dir != "" {
		k := len(shown) / (3 * s * s) / 2
		if err := writePNG(filepath.Join(dir, fmt.Sprintf("recon-%08d.png", v.Step)), Grid(NCHWToImages(shown, 2*k, s, s), k)); err != nil {
			return ev, err
		}
	}
	return ev, nil
}

// AppendJSONL appends one JSON line to path (a log, not a checkpoint).
func AppendJSONL(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ExportVAE writes a diffusers vae/ folder (config.json and
// diffusion_pytorch_model.safetensors) from the EMA weights under VAEScope.
func ExportVAE(ctx *context.Context, cfg vae.Config, dir string) error {
	cj, err := ConfigJSON("AutoencoderKL", cfg)
	if err != nil {
		return err
	}
	return exportComponent(ctx, VAEScope, dir, "diffusion_pytorch_model.safetensors", cj)
}

func exportComponent(ctx *context.Context, scope, dir, file string, configJSON []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	list, err := ComponentTensors(ctx, scope, true)
	if err != nil {
		return err
	}
	if err := writeTensors(filepath.Join(dir, file), list); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, "config.json"), configJSON)
}

// ConfigJSON marshals a config struct as diffusers writes a config: with
// its "_class_name", and without the fields left unset ("").
func ConfigJSON(class string, cfg any) ([]byte, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		if v == "" {
			delete(m, k) // unset: diffusers writes no empty strings, and the class's default applies
		}
	}
	if class != "" {
		m["_class_name"] = class
	}
	return json.MarshalIndent(m, "", "  ")
}
