package compare

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/ldm-project/ldm/baselines"
	"github.com/ldm-project/ldm/classify"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/train"
)

// Model names, in the order they run. The autoencoder always runs first: its
// encoder is the feature space of every distribution metric.
const (
	ModelAE    = "ae"
	ModelDAE   = "dae"
	ModelVAE   = "vae"
	ModelBVAE  = "beta-vae"
	ModelVQVAE = "vq-vae"
	ModelGAN   = "dcgan"
	ModelDDPM  = "ddpm"
	// ModelLDM is the latent diffusion model given by Options.LDM.
	ModelLDM = "ldm"
)

// AllModels lists every model compare knows.
var AllModels = []string{ModelAE, ModelDAE, ModelVAE, ModelBVAE, ModelVQVAE, ModelGAN, ModelDDPM}

// Options configure a comparison run.
type Options struct {
	Data string `json:"data"` // image folder with a train/test split
	Out  string `json:"-"`    // report folder
	Size int    `json:"size"` // image side
	// Batch and Steps are every model's budget: the same number of optimiser
	// steps on batches of the same size (a DCGAN step is one discriminator
	// and one generator update; the VQ-VAE's prior gets PriorSteps more).
	Batch      int `json:"batch"`
	Steps      int `json:"steps"`
	PriorSteps int `json:"prior_steps"`
	// DDPMTimesteps is the pixel DDPM's number of diffusion steps (training
	// and ancestral sampling).
	DDPMTimesteps int `json:"ddpm_timesteps"`
	// DDPMNLL is the number of test images the DDPM's variational bound is
	// computed on (0: none; it costs one U-Net pass per diffusion step).
	DDPMNLL int `json:"ddpm_nll_images"`
	// DDPMChannels is the pixel U-Net's block_out_channels.
	DDPMChannels []int   `json:"ddpm_channels"`
	LR           float64 `json:"lr"`
	// Samples is the number of generated images per model the metrics use.
	Samples  int      `json:"samples"`
	MaxTrain int      `json:"max_train"` // 0: all training images
	MaxTest  int      `json:"max_test"`  // 0: all test images
	Seed     uint64   `json:"seed"`
	Models   []string `json:"models"`
	Command  string   `json:"command"` // recorded in the report
	// LDM, when set, is a trained latent diffusion model (anything ldm.Load
	// opens) sampled with the test captions as prompts and measured like the
	// baselines; LDMSteps sampler steps (default 20), BackendName is passed
	// to ldm.Load.
	LDM         string `json:"ldm,omitempty"`
	LDMSteps    int    `json:"ldm_steps,omitempty"`
	BackendName string `json:"-"`
	// Classifier, when set, is the primary feature space of FD, KID and
	// precision/recall (the AE's and pooled pixels stay as secondary
	// columns) and judges the prompt alignment of the LDM's samples;
	// ClassifierName says where it came from in the report.
	Classifier     *classify.Model `json:"-"`
	ClassifierName string          `json:"classifier,omitempty"`
	// Resume keeps the rows of the results.json already in Out (a stopped
	// run, or one whose rows were deleted to be measured again) and runs
	// only the missing models; the AE always runs again, as it is the
	// feature space.
	Resume bool `json:"-"`
	// Log receives progress lines; nil discards them.
	Log func(string) `json:"-"`
}

// DefaultOptions is the full comparison on the emoji set at the default
// model's resolution.
func DefaultOptions() Options {
	return Options{Size: 64, Batch: 32, Steps: 3000, PriorSteps: 3000, DDPMTimesteps: 1000, DDPMNLL: 64, DDPMChannels: []int{32, 64, 64},
		LR: 1e-3, Samples: 500, Seed: 1, Models: AllModels}
}

// QuickOptions are reduced budgets that finish on two (shared) CPU cores in
// under 15 minutes: 32² images, 100 steps of batch 16, 64 samples, a
// 50-step DDPM on a U-Net of half the width, 10 sampler steps for --ldm.
func QuickOptions() Options {
	return Options{Size: 32, Batch: 16, Steps: 100, PriorSteps: 100, DDPMTimesteps: 50, DDPMChannels: []int{16, 32, 32},
		LR: 2e-3, Samples: 64, MaxTrain: 512, MaxTest: 128, Seed: 1, Models: AllModels, LDMSteps: 10}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Data == "" || o.Out == "":
		return fmt.Errorf("compare: a data folder and an output folder are needed")
	case o.Size < 16 || o.Size&(o.Size-1) != 0:
		return fmt.Errorf("compare: size %d must be a power of two ≥ 16", o.Size)
	case o.Batch < 4 || o.Steps < 1 || o.Samples < 8 || o.DDPMTimesteps < 2 || o.LR <= 0:
		return fmt.Errorf("compare: batch ≥ 4, steps ≥ 1, samples ≥ 8, ddpm timesteps ≥ 2 and lr > 0 are needed")
	}
	for _, m := range o.Models {
		if !slices.Contains(AllModels, m) {
			return fmt.Errorf("compare: unknown model %q (have %v)", m, AllModels)
		}
	}
	return nil
}

// Row is one model's results; nil fields do not apply.
type Row struct {
	Model        string  `json:"model"`
	Params       int     `json:"params"`
	Steps        int     `json:"steps"`
	TrainSeconds float64 `json:"train_seconds"`
	FinalLoss    float64 `json:"final_loss"`
	Samples      int     `json:"samples,omitempty"`
	// FDClf and KIDClf are in the classifier's feature space (when the run
	// has one), FD and KID in the AE's.
	FDClf      *float64 `json:"fd_classifier,omitempty"`
	KIDClf     *float64 `json:"kid_classifier,omitempty"`
	FD         *float64 `json:"fd,omitempty"`       // AE feature space
	FDPixel    *float64 `json:"fd_pixel,omitempty"` // 8×8 average-pooled pixels
	KID        *float64 `json:"kid,omitempty"`
	Precision  *float64 `json:"precision,omitempty"`
	Recall     *float64 `json:"recall,omitempty"`
	PSNR       *float64 `json:"psnr,omitempty"`
	SSIM       *float64 `json:"ssim,omitempty"`
	BitsPerDim *float64 `json:"bits_per_dim,omitempty"`
	Perplexity *float64 `json:"perplexity,omitempty"`
	CodesUsed  *int     `json:"codes_used,omitempty"`
	AUC        *float64 `json:"ood_auc,omitempty"`
	ImgPerSec  *float64 `json:"sample_img_per_s,omitempty"`
	// Alignment is prompt alignment per classifier head (conditioned
	// models only).
	Alignment []Alignment `json:"alignment,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
	Artifacts []string    `json:"artifacts,omitempty"`
}

func pf(v float64) *float64 { return &v }

// Report is everything a run measured.
type Report struct {
	Options Options `json:"options"`
	Backend string  `json:"backend"`
	TrainN  int     `json:"train_images"`
	TestN   int     `json:"test_images"`
	// ClassifierFeatures is the length of the classifier's feature vector
	// (0: no classifier); PRSpace names the feature space of
	// precision/recall.
	ClassifierFeatures int      `json:"classifier_features,omitempty"`
	PRSpace            string   `json:"precision_recall_space"`
	Reference          Row      `json:"reference"` // training images against test images
	Rows               []Row    `json:"rows"`
	Seconds            float64  `json:"seconds"`
	Conclusion         []string `json:"conclusions"`
	// Rescored is the command that re-measured the classifier columns from
	// the stored samples after the run ("" when the run measured them).
	Rescored string `json:"rescored,omitempty"`
	// Resumed lists the commands that resumed the run (Options.Resume).
	Resumed []string `json:"resumed,omitempty"`
}

type runner struct {
	ctx     stdctx.Context
	backend backends.Backend
	o       Options
	train   *imageSet
	test    *imageSet
	ood     *imageSet
	// features maps images to the AE feature space (set once the AE ran).
	features func(x []float32, n int) ([][]float64, error)
	testFeat [][]float64
	testPix  [][]float64
	// testPred is the classifier on the test images (nil without one).
	testPred *classify.Prediction
	report   *Report
}

func (r *runner) log(format string, args ...any) {
	if r.o.Log != nil {
		r.o.Log(fmt.Sprintf(format, args...))
	}
}

func (r *runner) path(name string) string { return filepath.Join(r.o.Out, name) }

// Run trains and evaluates every model of o and writes the report folder.
// The report files are rewritten after each model, so a stopped run keeps
// what it measured.
func Run(ctx stdctx.Context, backend backends.Backend, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	r := &runner{ctx: ctx, backend: backend, o: o}
	if err := r.loadData(); err != nil {
		return nil, err
	}
	var err error
	if r.ood, err = shapesSet(r.test.N, o.Size, o.Seed); err != nil {
		return nil, err
	}
	r.report = &Report{Options: o, Backend: backend.Name(), TrainN: r.train.N, TestN: r.test.N, PRSpace: "AE"}
	if o.Classifier != nil {
		r.report.ClassifierFeatures, r.report.PRSpace = o.Classifier.Config.FeatureDim(), "classifier"
	}
	r.log("data: %d training and %d test images at %d², %d shapes images as out-of-distribution", r.train.N, r.test.N, o.Size, r.ood.N)
	var prev map[string]Row
	var prevSeconds float64
	if o.Resume {
		old, err := r.previous()
		if err != nil {
			return nil, err
		}
		if old != nil {
			prev, prevSeconds = map[string]Row{}, old.Seconds
			for _, row := range old.Rows {
				prev[row.Model] = row
			}
			r.report.Options.Command = old.Options.Command
			r.report.Resumed = append(old.Resumed, o.Command)
		}
	}
	models := append([]string{ModelAE}, o.Models...)
	if o.LDM != "" {
		models = append(models, ModelLDM)
	}
	done := map[string]bool{}
	for _, m := range models {
		if done[m] {
			continue
		}
		done[m] = true
		if err := ctx.Err(); err != nil {
			return r.report, err
		}
		row, kept := prev[m]
		if kept && m != ModelAE {
			r.log("%s: kept from the previous run", m)
		} else {
			r.log("%s: training %d steps", m, o.Steps)
			if row, err = r.runModel(m); err != nil {
				return r.report, fmt.Errorf("compare: %s: %w", m, err)
			}
		}
		if m == ModelAE {
			if err := r.reference(); err != nil {
				return r.report, err
			}
		}
		r.report.Rows = append(r.report.Rows, row)
		r.report.Seconds = prevSeconds + time.Since(start).Seconds()
		r.report.Conclusion = conclusions(r.report)
		if err := r.write(); err != nil {
			return r.report, err
		}
	}
	return r.report, nil
}

// previous reads the report a resumed run continues (nil when there is
// none) and checks that it was made with the same data and budgets.
func (r *runner) previous() (*Report, error) {
	b, err := os.ReadFile(r.path("results.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var old Report
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("compare: resuming %s: %w", r.o.Out, err)
	}
	budget := func(o Options) string {
		return fmt.Sprint(o.Data, o.Size, o.Batch, o.Steps, o.PriorSteps, o.DDPMTimesteps, o.DDPMNLL, o.DDPMChannels, o.LR, o.Samples, o.MaxTrain, o.MaxTest, o.Seed, o.LDM, o.LDMSteps)
	}
	if budget(old.Options) != budget(r.o) {
		return nil, fmt.Errorf("compare: %s was made with other data or budgets (%+v); resume it with the same flags", r.o.Out, old.Options)
	}
	return &old, nil
}

// loadData reads the training and test images of r.o.Data.
func (r *runner) loadData() error {
	o := r.o
	var err error
	r.train, err = loadSplit(o.Data, o.Size, "train", o.MaxTrain)
	if err == nil {
		r.test, err = loadSplit(o.Data, o.Size, "test", o.MaxTest)
	}
	if err == nil {
		return nil
	}
	// A folder without a train/test split: every fifth image is held out.
	all, errAll := loadSplit(o.Data, o.Size, "", 0)
	if errAll != nil {
		return fmt.Errorf("%w (and without a split: %v)", err, errAll)
	}
	var tr, te []int
	for i := range all.N {
		if i%5 == 4 {
			te = append(te, i)
		} else {
			tr = append(tr, i)
		}
	}
	r.train, r.test = all.subset(tr, o.MaxTrain), all.subset(te, o.MaxTest)
	if r.train.N == 0 || r.test.N < 2 {
		return fmt.Errorf("compare: %s has too few images (%d)", o.Data, all.N)
	}
	return nil
}

func (r *runner) runModel(m string) (Row, error) {
	switch m {
	case ModelAE:
		return r.runAE(baselines.AE{Config: r.aeConfig(), Scope: "ae"})
	case ModelDAE:
		return r.runAE(baselines.AE{Config: r.aeConfig(), Scope: "dae", Corrupt: baselines.Corruption{Noise: 0.1, Dropout: 0.1}})
	case ModelVAE:
		return r.runVAE(baselines.VAE{Config: r.aeConfig(), Beta: 1, Sigma: 0.1, Scope: "vae"}, ModelVAE)
	case ModelBVAE:
		return r.runVAE(baselines.VAE{Config: r.aeConfig(), Beta: 4, Sigma: 0.1, Scope: "bvae"}, ModelBVAE)
	case ModelVQVAE:
		return r.runVQ()
	case ModelGAN:
		return r.runGAN()
	case ModelDDPM:
		return r.runDDPM()
	case ModelLDM:
		return r.runLDM()
	}
	return Row{}, fmt.Errorf("unknown model")
}

// aeConfig is the encoder/decoder every autoencoder baseline shares: three
// stride-2 levels of 32/64/128 channels and a 64-value bottleneck.
func (r *runner) aeConfig() baselines.Config {
	return baselines.Config{Size: r.o.Size, Channels: []int{32, 64, 128}, Latent: 64}
}

// optim is the optimiser of every baseline: AdamW with a short warm-up and
// a cosine to a tenth, clipping at 1, no EMA (the runs are too short for an
// EMA of decay 0.999 to catch up).
func (r *runner) optim(lr float64, steps int) train.Config {
	c := train.DefaultConfig()
	c.LR, c.Steps, c.WarmupSteps, c.EMADecay, c.WeightDecay = lr, steps, max(1, steps/20), 0, 0
	return c
}

// batchIdx is the training images of step (a fresh permutation per epoch).
func (r *runner) batchIdx(ord *train.Order, step int) []int {
	idx := make([]int, r.o.Batch)
	for i := range idx {
		idx[i] = ord.Index(step*r.o.Batch + i)
	}
	return idx
}

func (r *runner) imgTensor(x []float32) *tensors.Tensor {
	s := r.o.Size
	return tensors.FromFlatDataAndDimensions(x, len(x)/(3*s*s), 3, s, s)
}

// fit runs steps optimiser steps of tr and writes the loss curve.
func (r *runner) fit(name string, tr *train.Trainer, steps int, batch func(step int) ([]any, error)) (Row, error) {
	start := time.Now()
	err := tr.Loop(r.ctx, steps, func(step int) ([][]any, error) {
		b, err := batch(step)
		return [][]any{b}, err
	}, train.LoopOptions{Progress: func(p train.Progress) {
		if p.Step%50 == 0 || p.Step == p.Steps {
			r.log("  %s step %d/%d loss %.4f (%.1f it/s)", name, p.Step, p.Steps, p.Loss, p.ItPerSec)
		}
	}})
	if err != nil {
		return Row{}, err
	}
	row := Row{Model: name, Params: tr.NumParams(), Steps: steps, TrainSeconds: time.Since(start).Seconds()}
	if n := len(tr.Losses); n > 0 {
		k := min(n, 10)
		s := 0.0
		for _, l := range tr.Losses[n-k:] {
			s += float64(l)
		}
		row.FinalLoss = s / float64(k)
	}
	curve := name + "-loss.png"
	if err := train.WriteLossCurve(r.path(curve), name, "training loss", tr.Losses, max(1, steps/50)); err != nil {
		return row, err
	}
	row.Artifacts = append(row.Artifacts, curve)
	return row, nil
}

// chunks runs fn over n items in batches of o.Batch; in(i0, m) returns the
// inputs of items i0..i0+m−1 padded to a full batch (so that one compiled
// graph serves every chunk). It returns output 0's rows for the n items.
func (r *runner) chunks(rt *baselines.Runtime, name string, fn baselines.GraphFn, n int, in func(i0, m int) []any) ([]float32, error) {
	var out []float32
	for i0 := 0; i0 < n; i0 += r.o.Batch {
		m := min(r.o.Batch, n-i0)
		res, err := rt.Run(name, fn, in(i0, m)...)
		if err != nil {
			return nil, err
		}
		v := baselines.Floats(res[0])
		per := len(v) / r.o.Batch
		out = append(out, v[:m*per]...)
	}
	return out, nil
}

// padImages returns images i0..i0+m−1 of x padded with copies of the last
// one to a full batch.
func (r *runner) padImages(x []float32, i0, m int) *tensors.Tensor {
	per := 3 * r.o.Size * r.o.Size
	out := make([]float32, 0, r.o.Batch*per)
	out = append(out, x[i0*per:(i0+m)*per]...)
	for len(out) < r.o.Batch*per {
		out = append(out, x[(i0+m-1)*per:(i0+m)*per]...)
	}
	return r.imgTensor(out)
}

// padRows is padImages for rows of width per.
func (r *runner) padRows(x []float32, per, i0, m int) *tensors.Tensor {
	out := make([]float32, 0, r.o.Batch*per)
	out = append(out, x[i0*per:(i0+m)*per]...)
	for len(out) < r.o.Batch*per {
		out = append(out, x[(i0+m-1)*per:(i0+m)*per]...)
	}
	return tensors.FromFlatDataAndDimensions(out, r.o.Batch, per)
}

// pixelFeatures average-pools images to 8×8×3 values: a model-free feature
// space beside the AE's.
func pixelFeatures(x []float32, n, size int) [][]float64 {
	const g = 8
	f := size / g
	out := make([][]float64, n)
	for i := range n {
		v := make([]float64, 3*g*g)
		for c := range 3 {
			for y := range size {
				for xx := range size {
					v[(c*g+y/f)*g+xx/f] += float64(x[((i*3+c)*size+y)*size+xx])
				}
			}
		}
		for j := range v {
			v[j] /= float64(f * f)
		}
		out[i] = v
	}
	return out
}

// reference measures the training images against the test images: the
// floor a perfect generator of the training distribution would reach.
func (r *runner) reference() error {
	var err error
	if r.testFeat, err = r.features(r.test.X, r.test.N); err != nil {
		return err
	}
	r.testPix = pixelFeatures(r.test.X, r.test.N, r.o.Size)
	if r.o.Classifier != nil {
		if r.testPred, err = r.classifyImages(r.test.X, r.test.N); err != nil {
			return err
		}
	}
	n := min(r.o.Samples, r.train.N)
	row := Row{Model: "training images (reference)"}
	if _, err := r.distributionMetrics(&row, r.referenceImages(n), n); err != nil {
		return err
	}
	r.report.Reference = row
	return nil
}

// referenceImages returns n training images evenly spaced over the
// training set: the first n would come from the first categories of a folder
// sorted by category and measure a distance between categories, not the
// sampling noise of the metric.
func (r *runner) referenceImages(n int) []float32 {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i * r.train.N / n
	}
	return r.train.gather(idx)
}

// distributionMetrics fills FD, pixel FD, KID and precision/recall of n
// images x against the test set, in the classifier's feature space too when
// the run has one (precision/recall then use it), and returns the
// classifier's prediction for x (nil without a classifier).
func (r *runner) distributionMetrics(row *Row, x []float32, n int) (*classify.Prediction, error) {
	feats, err := r.features(x, n)
	if err != nil {
		return nil, err
	}
	row.Samples = n
	fd, err := eval.FD(r.testFeat, feats)
	if err != nil {
		return nil, err
	}
	fdp, err := eval.FD(r.testPix, pixelFeatures(x, n, r.o.Size))
	if err != nil {
		return nil, err
	}
	kid, err := eval.KID(r.testFeat, feats)
	if err != nil {
		return nil, err
	}
	row.FD, row.FDPixel, row.KID = pf(fd), pf(fdp), pf(kid)
	if r.o.Classifier != nil {
		return r.classifierMetrics(row, x, n)
	}
	p, rc, err := eval.PrecisionRecall(r.testFeat, feats, 3)
	if err != nil {
		return nil, err
	}
	row.Precision, row.Recall = pf(p), pf(rc)
	return nil, nil
}

// classifierMetrics fills FD, KID and precision/recall of n images x in the
// classifier's feature space and returns its prediction for them.
func (r *runner) classifierMetrics(row *Row, x []float32, n int) (*classify.Prediction, error) {
	pred, err := r.classifyImages(x, n)
	if err != nil {
		return nil, err
	}
	fd, err := eval.FD(r.testPred.Features, pred.Features)
	if err != nil {
		return nil, err
	}
	kid, err := eval.KID(r.testPred.Features, pred.Features)
	if err != nil {
		return nil, err
	}
	p, rc, err := eval.PrecisionRecall(r.testPred.Features, pred.Features, 3)
	if err != nil {
		return nil, err
	}
	row.FDClf, row.KIDClf, row.Precision, row.Recall = pf(fd), pf(kid), pf(p), pf(rc)
	return pred, nil
}

// samplesDone records generated samples: metrics, throughput and a grid.
// It returns the classifier's prediction for them (nil without one).
func (r *runner) samplesDone(row *Row, x []float32, n int, seconds float64) (*classify.Prediction, error) {
	row.ImgPerSec = pf(float64(n) / seconds)
	pred, err := r.distributionMetrics(row, x, n)
	if err != nil {
		return nil, err
	}
	name := row.Model + "-samples.png"
	k := min(n, 64)
	if err := writeGrid(r.path(name), x[:k*3*r.o.Size*r.o.Size], k, r.o.Size, 8); err != nil {
		return nil, err
	}
	row.Artifacts = append(row.Artifacts, name)
	// Every sample, 8-bit as the classifier sees them, so that Rescore can
	// measure them again in another classifier's feature space.
	if err := os.MkdirAll(r.path(samplesDir), 0o755); err != nil {
		return nil, err
	}
	if err := writeGrid(r.path(samplesFile(row.Model)), x, n, r.o.Size, samplesCols); err != nil {
		return nil, err
	}
	return pred, nil
}

// samplesDir holds every model's samples as one grid each.
const (
	samplesDir  = "samples"
	samplesCols = 16
)

func samplesFile(model string) string { return filepath.Join(samplesDir, model+".png") }

// reconstructions records PSNR/SSIM over the test set and writes originals
// above reconstructions.
func (r *runner) reconstructions(row *Row, rec []float32) error {
	s := r.o.Size
	p, q, err := eval.ReconstructionQuality(r.test.X, rec, r.test.N, 3, s, s)
	if err != nil {
		return err
	}
	row.PSNR, row.SSIM = pf(p), pf(q)
	k := min(8, r.test.N)
	per := 3 * s * s
	grid := append(append([]float32(nil), r.test.X[:k*per]...), rec[:k*per]...)
	name := row.Model + "-reconstructions.png"
	row.Artifacts = append(row.Artifacts, name)
	return writeGrid(r.path(name), grid, 2*k, s, k)
}

func toRows(x []float32, n int) [][]float64 {
	per := len(x) / n
	out := make([][]float64, n)
	for i := range out {
		v := make([]float64, per)
		for j := range v {
			v[j] = float64(x[i*per+j])
		}
		out[i] = v
	}
	return out
}

func (r *runner) rand(stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(r.o.Seed, stream))
}

func (r *runner) write() error {
	b, err := json.MarshalIndent(r.report, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(r.path("results.json"), b); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(r.path("report.md"), []byte(markdown(r.report)))
}

// nanToZero guards metric values that went NaN in a diverged run.
func nanToZero(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func logf(k int) float64 { return math.Log(float64(k)) }
