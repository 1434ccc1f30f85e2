package train

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

// LDMRun describes a latent-diffusion training run; it is stored in every
// checkpoint so that --resume needs only the folder.
type LDMRun struct {
	Data  string `json:"data"`
	Size  int    `json:"size"`
	Batch int    `json:"batch"`
	Seed  uint64 `json:"seed"`
	// VAE is the frozen autoencoder: a diffusers vae folder or a checkpoint
	// of `ldm train vae` (its EMA weights).
	VAE string `json:"vae"`
	// Tokenizer is a CLIP tokenizer folder; empty trains a BPE of
	// TokenizerMerges merges on the captions into <out>/tokenizer.
	Tokenizer       string `json:"tokenizer"`
	TokenizerMerges int    `json:"tokenizer_merges"`
	MaxLength       int    `json:"max_length"`
	// ScalingFactor is 1/std of the training latents, measured at the start.
	ScalingFactor  float64 `json:"scaling_factor"`
	Prediction     string  `json:"prediction"` // epsilon or v_prediction
	CaptionDropout float64 `json:"caption_dropout"`
	// ArticleProb prefixes a caption with the English indefinite article
	// ("a red apple", "an apple") with this probability, so that prompts
	// written as phrases match tag-style captions.
	ArticleProb float64 `json:"article_prob,omitempty"`
	// TagDropout drops each comma-separated tag of a caption after the
	// first KeepTags with this probability (kohya's caption_tag_dropout_rate
	// and keep_tokens), so that the model also learns the short prompts
	// people type ("red apple") and not only the full tag lists it is
	// trained on ("red apple, apple, food and drink, food fruit, twitter
	// style").
	TagDropout     float64            `json:"tag_dropout,omitempty"`
	KeepTags       int                `json:"keep_tags,omitempty"`
	TrainText      bool               `json:"train_text"`
	UNet           unet.Config        `json:"unet"`
	Text           textenc.CLIPConfig `json:"text"`
	Scheduler      scheduler.Config   `json:"scheduler"`
	SchedulerClass string             `json:"scheduler_class"`
	Train          Config             `json:"train"`
	// Base, when set, fine-tunes a loaded diffusers model (its tokenizer,
	// text encoder, U-Net, VAE and scheduler) instead of training new ones.
	Base string `json:"base,omitempty"`
	// LoRARank > 0 trains rank-r adapters on the U-Net's attention
	// projections (LoRAAlpha, default the rank) instead of the full U-Net.
	LoRARank  int     `json:"lora_rank,omitempty"`
	LoRAAlpha float64 `json:"lora_alpha,omitempty"`
	// Prompts are the sample grid's prompts, kept for --resume.
	Prompts []string `json:"prompts,omitempty"`
}

// SmallUNetConfig is the default model's U-Net on 16×16×4 latents: three
// levels of 32/64/64 channels, one ResNet each, cross-attention on the two
// lower levels and the mid block, context width crossDim.
func SmallUNetConfig(crossDim int) unet.Config {
	c := unet.DefaultConfig()
	c.SampleSize = 16
	c.BlockOutChannels = []int{32, 64, 64}
	c.DownBlockTypes = []string{"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"}
	c.UpBlockTypes = []string{"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}
	c.LayersPerBlock = unet.IntList{1}
	c.CrossAttentionDim = unet.IntList{crossDim}
	c.AttentionHeadDim = unet.IntList{4}
	g := 16
	c.NormNumGroups = &g
	return c
}

// SmallTextConfig is the default model's CLIP text encoder.
func SmallTextConfig(vocab, hidden, layers, maxLen int) textenc.CLIPConfig {
	c := textenc.DefaultCLIPConfig()
	c.VocabSize = vocab
	c.HiddenSize = hidden
	c.IntermediateSize = 4 * hidden
	c.NumHiddenLayers = layers
	c.NumAttentionHeads = 4
	c.MaxPositionEmbeddings = maxLen
	c.ProjectionDim = hidden
	return c
}

// SDSchedulerConfig is Stable Diffusion 1.x's training noise schedule
// (scaled_linear 0.00085…0.012 over 1000 steps) for class.
func SDSchedulerConfig(class, prediction string) (scheduler.Config, error) {
	c, err := scheduler.DefaultConfig(class)
	if err != nil {
		return c, err
	}
	c.NumTrainTimesteps, c.BetaStart, c.BetaEnd, c.BetaSchedule = 1000, 0.00085, 0.012, "scaled_linear"
	c.PredictionType, c.StepsOffset, c.TimestepSpacing = prediction, 1, "leading"
	return c, nil
}

// LDMTrainer is a latent-diffusion run ready to Loop.
type LDMTrainer struct {
	*Trainer
	Run       LDMRun
	Data      *Dataset
	Tokenizer *textenc.CLIPTokenizer
	UNet      *unet.Model
	Text      *textenc.CLIPTextModel
	VAEModel  *vae.AutoencoderKL
	Schedule  *scheduler.Schedule

	// LoRA holds the adapters of a LoRA run (nil: the U-Net itself trains).
	LoRA *LoRA

	cache string // latents cache file
	// mean and std of every training image's posterior, [N][L·h·w].
	mean, std [][]float32
	latent    []int // L, h, w
	ord       Order
	emptyIDs  []int32
}

// NewLDMTrainer prepares a run: tokenizer (trained on the captions when
// none is given), the frozen VAE's posteriors of every training image, and a
// fresh U-Net and text encoder — or, with resume set to a checkpoint, the run
// stored there.
func NewLDMTrainer(backend backends.Backend, run LDMRun, out, resume string) (*LDMTrainer, error) {
	if resume != "" {
		// Paths given with --resume win: the run's files may have moved.
		vaePath, data := run.VAE, run.Data
		if err := ReadCheckpointExtra(resume, &run); err != nil {
			return nil, err
		}
		if vaePath != "" {
			run.VAE = vaePath
		}
		if data != "" {
			run.Data = data
		}
		if _, err := os.Stat(run.Tokenizer); err != nil && run.Base == "" {
			run.Tokenizer = filepath.Join(filepath.Dir(resume), "tokenizer")
		}
	}
	ds, _, err := LoadTrainingData(run.Data, run.Size, 0)
	if err != nil {
		return nil, err
	}
	var base *weights.Model
	if run.Base != "" {
		if base, err = weights.OpenModel(run.Base, weights.OpenOptions{}); err != nil {
			return nil, err
		}
		defer base.Close()
		if err := run.fromBase(base, resume == ""); err != nil {
			return nil, err
		}
	}
	if run.Tokenizer == "" {
		caps := make([]string, len(ds.Examples))
		for i, e := range ds.Examples {
			caps[i] = e.Caption
		}
		vocab, merges, err := textenc.TrainBPE(caps, textenc.BPETrainOptions{Merges: run.TokenizerMerges, MinFrequency: 2})
		if err != nil {
			return nil, err
		}
		run.Tokenizer = filepath.Join(out, "tokenizer")
		if err := textenc.WriteCLIPTokenizer(run.Tokenizer, vocab, merges, run.MaxLength); err != nil {
			return nil, err
		}
	}
	var topts []textenc.TokenizerOption
	if run.MaxLength > 0 {
		topts = append(topts, textenc.WithMaxLength(run.MaxLength))
	}
	tok, err := textenc.LoadCLIPTokenizer(run.Tokenizer, topts...)
	if err != nil {
		return nil, err
	}
	run.MaxLength = tok.MaxLength()
	if resume == "" && base == nil {
		run.Text.VocabSize = tok.VocabSize()
		run.Text.BOSTokenID, run.Text.EOSTokenID, run.Text.PadTokenID = tok.BOS(), tok.EOS(), tok.EOS()
	}
	vm, err := LoadVAE(backend, run.VAE)
	if err != nil {
		return nil, err
	}
	sched, err := scheduler.NewSchedule(run.Scheduler)
	if err != nil {
		return nil, err
	}
	u, err := unet.New(run.UNet)
	if err != nil {
		return nil, err
	}
	text, err := textenc.NewCLIPTextModel(run.Text)
	if err != nil {
		return nil, err
	}
	ctx := context.New()
	if base != nil {
		if err := LoadComponent(ctx, UNetScope, base.Components[weights.UNet].Source); err != nil {
			return nil, err
		}
		if err := LoadComponent(ctx, TextScope, base.Components[weights.TextEncoder].Source); err != nil {
			return nil, err
		}
	} else {
		ue, err := u.ExpectedKeys()
		if err != nil {
			return nil, err
		}
		te, err := text.ExpectedKeys()
		if err != nil {
			return nil, err
		}
		if err := InitComponent(ctx, UNetScope, ue, run.Seed); err != nil {
			return nil, err
		}
		if err := InitComponent(ctx, TextScope, te, run.Seed+1); err != nil {
			return nil, err
		}
	}
	trainable := []string{UNetScope}
	if run.TrainText {
		trainable = append(trainable, TextScope)
	}
	loss := LDMLoss(u, text)
	var lora *LoRA
	if run.LoRARank > 0 {
		if run.LoRAAlpha == 0 {
			run.LoRAAlpha = float64(run.LoRARank)
		}
		if lora, err = AddLoRA(ctx, UNetScope, run.LoRARank, run.LoRAAlpha, run.Seed); err != nil {
			return nil, err
		}
		trainable, loss = []string{LoRAScope}, lora.Wrap(loss)
	}
	tr, err := New(backend, ctx, run.Train, trainable, loss)
	if err != nil {
		return nil, err
	}
	t := &LDMTrainer{Trainer: tr, LoRA: lora, Data: ds, Tokenizer: tok, UNet: u, Text: text, VAEModel: vm, Schedule: sched,
		ord: Order{N: len(ds.Examples), Seed: run.Seed}}
	t.cache = filepath.Join(out, "latents.safetensors")
	t.Run = run
	if run.ScalingFactor == 0 { // a fresh run measures it; a resumed one has it
		if err := t.ensureLatents(); err != nil {
			return nil, err
		}
		t.Run.ScalingFactor = t.latentScale(run.Seed)
	}
	run = t.Run
	empty, _ := tok.Encode("", tok.PadID(), run.MaxLength)
	t.emptyIDs = toInt32(empty)
	if resume != "" {
		if err := tr.Resume(resume, nil); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// fromBase takes the components' configs and the tokenizer from a loaded
// model; fresh runs also take its VAE and scaling factor.
func (run *LDMRun) fromBase(m *weights.Model, fresh bool) error {
	for _, c := range []string{weights.UNet, weights.TextEncoder, weights.VAE, weights.Tokenizer} {
		if m.Components[c] == nil {
			return fmt.Errorf("%s: no %s to fine-tune", run.Base, c)
		}
	}
	var err error
	if run.UNet, err = unet.ParseConfig(m.Components[weights.UNet].Config); err != nil {
		return err
	}
	if run.Text, err = textenc.ParseCLIPConfig(m.Components[weights.TextEncoder].Config); err != nil {
		return err
	}
	run.Tokenizer = m.Components[weights.Tokenizer].Dir
	if !fresh {
		return nil
	}
	run.VAE = run.Base
	vcfg, err := vae.ParseConfig(m.Components[weights.VAE].Config)
	if err != nil {
		return err
	}
	run.ScalingFactor = vcfg.ScalingFactor
	if sc := m.Components[weights.Scheduler]; sc != nil {
		if run.SchedulerClass, run.Scheduler, err = scheduler.ParseConfig("", sc.Config); err != nil {
			return err
		}
	}
	if run.Prediction == "" {
		run.Prediction = run.Scheduler.PredictionType
	}
	return nil
}

// LoadVAE loads a diffusers vae folder, or the EMA weights of a checkpoint
// written by `ldm train vae`.
func LoadVAE(backend backends.Backend, path string) (*vae.AutoencoderKL, error) {
	if strings.HasSuffix(path, ".safetensors") {
		var run VAERun
		if err := ReadCheckpointExtra(path, &run); err != nil {
			return nil, err
		}
		f, err := weights.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ctx := context.New()
		if err := loadFile(ctx, f, ""); err != nil {
			return nil, err
		}
		return VAEFromContext(backend, ctx, run.VAE)
	}
	m, err := weights.OpenModel(path, weights.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	c := m.Components[weights.VAE]
	if c == nil {
		return nil, fmt.Errorf("%s: no VAE", path)
	}
	cfg, err := vae.ParseConfig(c.Config)
	if err != nil {
		return nil, err
	}
	v, err := vae.New(cfg)
	if err != nil {
		return nil, err
	}
	v.Backend = backend
	return v, v.LoadWeights(c.Source)
}

// encodeAll stores the posterior mean and std of every training image.
func (t *LDMTrainer) encodeAll() error {
	n := len(t.Data.Examples)
	const chunk = 32
	for lo := 0; lo < n; lo += chunk {
		idx := make([]int, min(chunk, n-lo))
		for i := range idx {
			idx[i] = lo + i
		}
		moments, shape, err := t.VAEModel.EncodeRun(t.Data.NCHW(idx), []int{len(idx), 3, t.Data.Size, t.Data.Size})
		if err != nil {
			return err
		}
		l, hw := shape[1]/2, shape[2]*shape[3]
		t.latent = []int{l, shape[2], shape[3]}
		for b := range idx {
			m := moments[b*2*l*hw : (b*2*l+l)*hw]
			lv := moments[(b*2*l+l)*hw : (b*2*l+2*l)*hw]
			s := make([]float32, len(lv))
			for i, v := range lv {
				s[i] = float32(math.Exp(0.5 * math.Max(-30, math.Min(20, float64(v)))))
			}
			t.mean = append(t.mean, append([]float32(nil), m...))
			t.std = append(t.std, s)
		}
	}
	return nil
}

// ensureLatents encodes the training set once (or reads the cache).
func (t *LDMTrainer) ensureLatents() error {
	if t.mean != nil || t.loadLatents(t.cache, t.Run.VAE) {
		return nil
	}
	if err := t.encodeAll(); err != nil {
		return err
	}
	return t.saveLatents(t.cache, t.Run.VAE)
}

// saveLatents caches the posteriors (encoding the data set is the slowest
// part of starting or resuming a run on the pure-Go backend), keyed by the
// VAE and the examples' ContentKey: any edited, added or removed image
// invalidates it.
func (t *LDMTrainer) saveLatents(path, vaePath string) error {
	n, per := len(t.mean), len(t.mean[0])
	flat := func(x [][]float32) []float32 {
		out := make([]float32, 0, n*per)
		for _, r := range x {
			out = append(out, r...)
		}
		return out
	}
	shape := append([]int{n}, t.latent...)
	return weights.WriteFile(path, []weights.WriteTensor{
		{Name: "mean", DType: weights.F32, Shape: shape, Float32: flat(t.mean)},
		{Name: "std", DType: weights.F32, Shape: shape, Float32: flat(t.std)},
	}, map[string]string{"vae": vaePath, "data": t.Data.ContentKey()})
}

// loadLatents reads the cache written by saveLatents if it was made from the
// same VAE and data.
func (t *LDMTrainer) loadLatents(path, vaePath string) bool {
	f, err := weights.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if f.Metadata["vae"] != vaePath || f.Metadata["data"] != t.Data.ContentKey() {
		return false
	}
	mean, shape, err1 := f.Float32("mean")
	std, _, err2 := f.Float32("std")
	if err1 != nil || err2 != nil || len(shape) != 4 || shape[0] != len(t.Data.Examples) {
		return false
	}
	per := shape[1] * shape[2] * shape[3]
	t.latent = shape[1:]
	for i := range shape[0] {
		t.mean = append(t.mean, mean[i*per:(i+1)*per])
		t.std = append(t.std, std[i*per:(i+1)*per])
	}
	return true
}

// latentScale is 1/std of posterior samples of the training set, as the
// LDM paper sets scale_factor (its footnote: "component-wise variance").
func (t *LDMTrainer) latentScale(seed uint64) float64 {
	r := StepRand(seed, -1, 0)
	var s, ss, n float64
	for i := range t.mean {
		for j, m := range t.mean[i] {
			v := float64(m) + float64(t.std[i][j])*r.NormFloat64()
			s += v
			ss += v * v
			n++
		}
	}
	mean := s / n
	return 1 / math.Sqrt(ss/n-mean*mean)
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}

// Batch returns the micro-batches of step: noisy latents, timesteps, token
// ids (empty captions with probability CaptionDropout) and targets, all
// functions of (seed, step).
func (t *LDMTrainer) Batch(step int) ([][]any, error) {
	if err := t.ensureLatents(); err != nil {
		return nil, err
	}
	r := t.Run
	l, h, w := t.latent[0], t.latent[1], t.latent[2]
	per := l * h * w
	out := make([][]any, r.Train.Accum)
	for m := range out {
		rnd := StepRand(r.Seed, step, m)
		x0 := make([]float32, 0, r.Batch*per)
		ids := make([]int32, 0, r.Batch*r.MaxLength)
		ts := make([]int, r.Batch)
		tf := make([]float32, r.Batch)
		for b := range r.Batch {
			i := t.ord.Index((step*r.Train.Accum+m)*r.Batch + b)
			for j := range per {
				x0 = append(x0, float32(r.ScalingFactor*(float64(t.mean[i][j])+float64(t.std[i][j])*rnd.NormFloat64())))
			}
			caption := t.Data.Examples[i].Caption
			if rnd.Float64() < r.CaptionDropout {
				ids = append(ids, t.emptyIDs...)
			} else {
				if r.TagDropout > 0 {
					caption = DropTags(caption, r.KeepTags, r.TagDropout, rnd)
				}
				if r.ArticleProb > 0 && rnd.Float64() < r.ArticleProb {
					caption = WithArticle(caption)
				}
				e, _ := t.Tokenizer.Encode(caption, t.Tokenizer.PadID(), r.MaxLength)
				ids = append(ids, toInt32(e)...)
			}
			ts[b] = rnd.IntN(r.Scheduler.NumTrainTimesteps)
			tf[b] = float32(ts[b])
		}
		noise := Normal(rnd, len(x0))
		noisy, err := t.Schedule.AddNoiseBatch(x0, noise, ts)
		if err != nil {
			return nil, err
		}
		target := noise
		if r.Prediction == "v_prediction" {
			if target, err = t.Schedule.VelocityBatch(x0, noise, ts); err != nil {
				return nil, err
			}
		}
		out[m] = []any{
			tensors.FromFlatDataAndDimensions(noisy, r.Batch, l, h, w),
			tensors.FromFlatDataAndDimensions(tf, r.Batch),
			tensors.FromFlatDataAndDimensions(ids, r.Batch, r.MaxLength),
			tensors.FromFlatDataAndDimensions(target, r.Batch, l, h, w),
		}
	}
	return out, nil
}

// DropTags drops each comma-separated tag of caption after the first keep
// with probability p, drawing from rnd once per such tag. The kept tags stay
// in order, joined by ", ".
func DropTags(caption string, keep int, p float64, rnd *rand.Rand) string {
	tags := strings.Split(caption, ",")
	out := make([]string, 0, len(tags))
	for i, tag := range tags {
		tag = strings.TrimSpace(tag)
		if i >= keep && rnd.Float64() < p {
			continue
		}
		if tag != "" {
			out = append(out, tag)
		}
	}
	return strings.Join(out, ", ")
}

// WithArticle prefixes caption with "a" or "an" (by its first letter: an
// before a vowel), unless it already starts with an article.
func WithArticle(caption string) string {
	lower := strings.ToLower(caption)
	for _, a := range []string{"a ", "an ", "the "} {
		if strings.HasPrefix(lower, a) {
			return caption
		}
	}
	if lower != "" && strings.ContainsRune("aeiou", rune(lower[0])) {
		return "an " + caption
	}
	return "a " + caption
}

// Export writes the EMA weights as a diffusers pipeline folder: model_index.json,
// scheduler/, tokenizer/, text_encoder/, unet/ and vae/ (the frozen VAE with
// the run's scaling factor).
func (t *LDMTrainer) Export(dir string) error {
	r := t.Run
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	index := map[string]any{
		"_class_name":             "StableDiffusionPipeline",
		"_diffusers_version":      "0.29.2",
		"scheduler":               []string{"diffusers", r.SchedulerClass},
		"text_encoder":            []string{"transformers", "CLIPTextModel"},
		"tokenizer":               []string{"transformers", "CLIPTokenizer"},
		"unet":                    []string{"diffusers", "UNet2DConditionModel"},
		"vae":                     []string{"diffusers", "AutoencoderKL"},
		"safety_checker":          []any{nil, nil},
		"feature_extractor":       []any{nil, nil},
		"requires_safety_checker": false,
	}
	ij, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "model_index.json"), ij); err != nil {
		return err
	}
	sj, err := ConfigJSON(r.SchedulerClass, r.Scheduler)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "scheduler"), 0o755); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "scheduler", "scheduler_config.json"), sj); err != nil {
		return err
	}
	if err := copyTokenizer(r.Tokenizer, filepath.Join(dir, "tokenizer")); err != nil {
		return err
	}
	tj, err := ConfigJSON("", r.Text)
	if err != nil {
		return err
	}
	tj, err = addJSON(tj, map[string]any{"architectures": []string{"CLIPTextModel"}, "model_type": "clip_text_model", "torch_dtype": "float32"})
	if err != nil {
		return err
	}
	if err := exportComponent(t.Ctx, TextScope, filepath.Join(dir, "text_encoder"), "model.safetensors", tj); err != nil {
		return err
	}
	ucfg := r.UNet
	// sample_size is the latent side the model was trained at: diffusers
	// draws sample_size × vae factor pixels by default.
	ucfg.SampleSize = r.Size / t.VAEModel.Config.DownsampleFactor()
	uj, err := ConfigJSON("UNet2DConditionModel", ucfg)
	if err != nil {
		return err
	}
	if err := exportComponent(t.Ctx, UNetScope, filepath.Join(dir, "unet"), "diffusion_pytorch_model.safetensors", uj); err != nil {
		return err
	}
	vcfg := t.VAEModel.Config
	vcfg.ScalingFactor = r.ScalingFactor
	vctx := context.New()
	src, err := vaeSource(t.VAEModel)
	if err != nil {
		return err
	}
	if err := LoadComponent(vctx, VAEScope, src); err != nil {
		return err
	}
	return ExportVAE(vctx, vcfg, filepath.Join(dir, "vae"))
}

// vaeSource reads a loaded VAE's variables back as a source.
func vaeSource(m *vae.AutoencoderKL) (nn.MapSource, error) {
	ctx := context.New()
	for v := range m.Ctx.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return nil, err
		}
		setVar(ctx, "vae."+keyOf(v), t)
	}
	return ComponentSource(ctx, VAEScope, false)
}

func addJSON(b []byte, extra map[string]any) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range extra {
		m[k] = v
	}
	return json.MarshalIndent(m, "", "  ")
}

func copyTokenizer(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			if os.IsNotExist(err) && name != "vocab.json" && name != "merges.txt" {
				continue
			}
			return err
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(to, name), b); err != nil {
			return err
		}
	}
	return nil
}
