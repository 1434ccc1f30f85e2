package ldm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/rng"
	"github.com/ldm-project/ldm/scheduler"
	"github.com/ldm-project/ldm/textenc"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/vae"
	"github.com/ldm-project/ldm/weights"
)

// Pipeline is a loaded text-to-image model: tokenizer, text encoder, U-Net,
// VAE and the model's own scheduler config. Compiled graphs are cached per
// shape inside the components, so repeated requests of one size reuse them.
// Generate calls are serialised: one generation runs at a time.
type Pipeline struct {
	Name string // model name written into the metadata
	Hash string // A1111-style short hash of the weights file

	Backend         backends.Backend
	Tokenizer       *textenc.CLIPTokenizer
	Text            *textenc.CLIPTextModel
	UNet            *unet.Model
	VAE             *vae.AutoencoderKL
	SchedulerConfig []byte

	// Embeddings are the textual-inversion embeddings by lower-case trigger
	// word; SkippedEmbeddings says which files of the folder were not
	// loaded, and why.
	Embeddings        map[string]*Embedding
	SkippedEmbeddings []string

	// LoRADir is the folder where <lora:name:weight> prompt tags and
	// LoRASpec.Name are looked up (AUTOMATIC1111's models/Lora).
	LoRADir string
	// ControlNetDir is the folder where ControlNetUnit.Model names a
	// ControlNet (the ControlNet extension's models folder).
	ControlNetDir string

	mu      sync.Mutex
	lora    loraState    // guarded by mu; lora.dir by prep
	control controlState // guarded by mu

	weightsOnce  sync.Once // EstimateMemory's weights, counted once
	weightsBytes int64
	vaes         vaeState   // guarded by mu (see vae.go)
	prep         sync.Mutex // Prepare's LoRA look-ups run beside a generation
}

// LoadOptions tunes Load.
type LoadOptions struct {
	// Backend is "", "auto", "go" or "xla" (see nn.NewBackend).
	Backend string
	// Engine, when set, is the backend to load into instead of a new one
	// named by Backend: pipelines that share one backend share its buffer
	// pool, and a caller may wrap it (a test counts compilations).
	Engine backends.Backend
	// ConfigFrom, PredictionType and Variant are passed to weights.OpenModel.
	ConfigFrom, PredictionType, Variant string
	// WeightsDType keeps the weights in float32 ("f32") or 16 bits ("f16":
	// half the memory; weights.OpenOptions.WeightsDType). "" is
	// $LDM_WEIGHTS_DTYPE, else f32.
	WeightsDType string
	// Name overrides the model name shown in metadata.
	Name string
	// Tokenizer is a tokenizer folder (vocab.json + merges.txt, or
	// tokenizer.json). Without it the model's own is used, then the
	// family's tokenizer in the Hugging Face cache (a single file has none).
	Tokenizer string
	// Embeddings is a folder of textual-inversion embeddings (*.safetensors);
	// each file's name is its trigger word.
	Embeddings string
	// LoRADir sets Pipeline.LoRADir.
	LoRADir string
	// VAE replaces the checkpoint's VAE (see SetVAE); TAESD is a TAESD for
	// previews; VAEDir is the folder of VAEs a request may name; Preview is
	// PreviewApprox, PreviewTAESD or "taesd:PATH"; VAETiling chooses tiling.
	VAE, TAESD, VAEDir, Preview string
	VAETiling                   VAETiling
}

// Load opens a diffusers folder or a single-file checkpoint and loads every
// component's weights.
func Load(path string, o LoadOptions) (*Pipeline, error) {
	b := o.Engine
	if b == nil {
		var err error
		if b, err = nn.NewBackend(o.Backend); err != nil {
			return nil, err
		}
	}
	m, err := weights.OpenModel(path, weights.OpenOptions{ConfigFrom: o.ConfigFrom, PredictionType: o.PredictionType, Variant: o.Variant, WeightsDType: o.WeightsDType})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	p := &Pipeline{Backend: b, Name: o.Name, LoRADir: o.LoRADir}
	if p.Name == "" {
		p.Name = strings.TrimSuffix(filepath.Base(filepath.Clean(path)), filepath.Ext(path))
	}
	comp := func(name string) (*weights.Component, error) {
		c, ok := m.Components[name]
		if !ok || c == nil {
			return nil, fmt.Errorf("%s: the model has no %s component", path, name)
		}
		return c, nil
	}
	c, err := comp(weights.TextEncoder)
	if err != nil {
		return nil, err
	}
	tcfg, err := textenc.ParseCLIPConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("text encoder config: %w", err)
	}
	tokDir, err := findTokenizer(m, o.Tokenizer, tcfg.HiddenSize)
	if err != nil {
		return nil, err
	}
	if p.Tokenizer, err = textenc.LoadCLIPTokenizer(tokDir); err != nil {
		return nil, err
	}
	if p.Text, err = textenc.NewCLIPTextModel(tcfg); err != nil {
		return nil, err
	}
	if err := p.Text.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	if o.Embeddings != "" {
		if err := p.loadEmbeddings(o.Embeddings, tcfg.HiddenSize); err != nil {
			return nil, err
		}
	}
	if c, err = comp(weights.UNet); err != nil {
		return nil, err
	}
	ucfg, err := unet.ParseConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("unet config: %w", err)
	}
	if p.UNet, err = unet.New(ucfg); err != nil {
		return nil, err
	}
	if err := p.UNet.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	if c, err = comp(weights.VAE); err != nil {
		return nil, err
	}
	vcfg, err := vae.ParseConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("vae config: %w", err)
	}
	if p.VAE, err = vae.New(vcfg); err != nil {
		return nil, err
	}
	p.VAE.Backend = b
	if err := p.VAE.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	if c, ok := m.Components[weights.Scheduler]; ok && c != nil {
		p.SchedulerConfig = c.Config
	}
	if err := nn.MaterializeWeights(b, p.Text.Ctx, p.UNet.Ctx, p.VAE.Ctx); err != nil {
		return nil, err
	}
	p.Hash = shortHash(path)
	if err := p.initVAE(o); err != nil {
		return nil, err
	}
	return p, nil
}

// shortHash is AUTOMATIC1111's "Model hash": the first 10 hex digits of the
// SHA-256 of the weights file (the U-Net's file for a diffusers folder).
// Hashing a 2 GB checkpoint takes ≈ 5 s, so the result is kept, as
// AUTOMATIC1111 does, in <cache>/hashes.json keyed by the file's absolute
// path, size and modification time; a cache that cannot be read or written
// only costs the hashing.
func shortHash(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		for _, f := range []string{"unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors"} {
			if _, err := os.Stat(filepath.Join(path, f)); err == nil {
				path = filepath.Join(path, f)
				break
			}
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	st, err := os.Stat(abs)
	if err != nil || st.IsDir() {
		return ""
	}
	key := hashKey{Size: st.Size(), MTime: st.ModTime().UnixNano()}
	cacheFile := filepath.Join(fsutil.CacheDir(), "hashes.json")
	cache := readHashCache(cacheFile)
	if e, ok := cache[abs]; ok && e.hashKey == key && len(e.SHA256) == 64 {
		return e.SHA256[:10]
	}
	f, err := os.Open(abs)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	sum := hex.EncodeToString(h.Sum(nil))
	cache = readHashCache(cacheFile) // another process may have added entries meanwhile
	cache[abs] = hashEntry{hashKey: key, SHA256: sum}
	if data, err := json.MarshalIndent(cache, "", "  "); err == nil && os.MkdirAll(filepath.Dir(cacheFile), 0o755) == nil {
		_ = fsutil.WriteFileAtomic(cacheFile, append(data, '\n'))
	}
	return sum[:10]
}

type hashKey struct {
	Size  int64 `json:"size"`
	MTime int64 `json:"mtime_ns"`
}

type hashEntry struct {
	hashKey
	SHA256 string `json:"sha256"`
}

// readHashCache reads the hash cache; a missing or unreadable one is empty.
func readHashCache(path string) map[string]hashEntry {
	m := map[string]hashEntry{}
	if data, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(data, &m) != nil {
			return map[string]hashEntry{}
		}
	}
	return m
}

// PreferredBatchJobs is how many waiting requests a server should batch
// together on this pipeline's backend: 4 on an accelerator (XLA), where a
// batch of one leaves the device idle, 1 on the pure-Go CPU backend, where
// the load test measured no throughput gain and longer latency
// (docs/PERFORMANCE.md).
func (p *Pipeline) PreferredBatchJobs() int {
	if nn.IsGo(p.Backend) {
		return 1
	}
	return 4
}

// Factor is the VAE's spatial downsampling factor (8 for SD).
func (p *Pipeline) Factor() int { return p.VAE.Config.DownsampleFactor() }

// SampleSize is the model's native image size in pixels.
func (p *Pipeline) SampleSize() int {
	if s := p.UNet.Config.SampleSize; s > 0 {
		return s * p.Factor()
	}
	return 512
}

// Progress is reported after every denoising step.
type Progress struct {
	Image, Images int // which image batch of how many (1-based)
	Step, Total   int
	Elapsed, ETA  time.Duration
	// Preview is a cheap RGB view of the current latents (set every
	// PreviewEvery steps when asked for).
	Preview image.Image
}

// Options are per-call settings that are not part of the request.
type Options struct {
	Progress func(Progress)
	// PreviewEvery asks for a preview every n steps (0: never).
	PreviewEvery int
	// Interpolate, if set, blends the request with a second prompt and seed.
	Interpolate *Interpolation
	// OnImage, if set, receives each image as soon as it is decoded, before
	// the next batch runs: a command saves it then, so that an interrupt or
	// a crash loses none of the finished images.
	OnImage func(Result)

	// onStep and onPrompt let tests observe the loop (latents after each
	// step, the prompt embeddings).
	onStep   func(i int, x []float32)
	onPrompt func(c *conditioning)
	// inpaintEps replaces the masked image's posterior draw (golden
	// references draw it from a generator of their own).
	inpaintEps []float32
}

// Result is one generated image.
type Result struct {
	Image    *image.RGBA
	Seed     int64
	Infotext Infotext
	latents  []float32 // a hires fix's first pass: the image's latents
}

// Generate runs a request: txt2img, or img2img / inpainting when an init
// image is given. Image i of the request gets seed Seed+i. It is Prepare
// and Run of one task under DefaultLimits; the results of batches that
// finished come with an error that stops the later ones.
func (p *Pipeline) Generate(ctx context.Context, req Request, o Options) ([]Result, error) {
	pl, err := p.Prepare(req, DefaultLimits)
	if err != nil {
		return nil, err
	}
	r := p.Run(ctx, []Task{{Plan: pl, Opts: o}})[0]
	return r.Results, r.Err
}

// drawEach fills one latent per generator, in batch order.
func drawEach(gens []rng.Source, per int) []float32 {
	out := make([]float32, len(gens)*per)
	for i, g := range gens {
		g.Normal(out[i*per : (i+1)*per])
	}
	return out
}

// noiseFrom returns the scheduler's noise source: each image's share of a
// step's noise comes from that image's generator.
func noiseFrom(gens []rng.Source) scheduler.Noise {
	return scheduler.NoiseFunc(func(dst []float32) {
		per := len(dst) / len(gens)
		for i, g := range gens {
			g.Normal(dst[i*per : (i+1)*per])
		}
	})
}

// conditioning holds the text embeddings of one batch: [uncond; cond] rows
// when guidance is on, cond only otherwise.
type conditioning struct {
	embeds   []float32
	shape    []int // [rows, T, D]
	cfg      bool
	guidance float64
}

// predict runs the U-Net with classifier-free guidance as one batch of two:
// eps = u + g·(c − u). Guidance ≤ 1 runs the conditional pass only. ctl are
// ControlNet residuals for every U-Net row (none: the plain U-Net).
func (p *Pipeline) predict(x []float32, shape []int, t float64, cond *conditioning, ctl [][]float32, ctlShapes [][]int) ([]float32, error) {
	in := x
	inShape := append([]int(nil), shape...)
	inShape[1] = len(x) / (shape[0] * shape[2] * shape[3])
	if cond.cfg {
		in = append(append(make([]float32, 0, 2*len(x)), x...), x...)
		inShape[0] *= 2
	}
	ts := make([]float32, inShape[0])
	for i := range ts {
		ts[i] = float32(t)
	}
	out, err := p.UNet.RunWithControl(p.Backend, in, inShape, ts, cond.embeds, cond.shape, ctl, ctlShapes)
	if err != nil {
		return nil, err
	}
	if !cond.cfg {
		return out, nil
	}
	n := len(out) / 2
	u, c := out[:n], out[n:]
	eps := make([]float32, n)
	gf := float32(cond.guidance)
	for i := range eps {
		eps[i] = u[i] + gf*(c[i]-u[i])
	}
	return eps, nil
}

// promptEmbeds are one image's text embeddings, [T, D] each: the prompt's
// and, with guidance, the negative prompt's.
type promptEmbeds struct {
	pos, neg []float32
	T, D     int
}

// encodePlan encodes the plan's tokenized prompts the AUTOMATIC1111 way
// (75-token chunks, emphasis weights, BREAK); a prompt of at most 75 tokens
// without emphasis gives exactly diffusers' prompt embeddings.
func (p *Pipeline) encodePlan(pl *Plan) (*promptEmbeds, error) {
	skip := textenc.ClipSkipFromA1111(pl.req.ClipSkip)
	e := &promptEmbeds{}
	var err error
	if e.pos, e.T, e.D, err = p.encodeChunks(pl.pos, skip); err != nil {
		return nil, err
	}
	if pl.neg != nil {
		if e.neg, _, _, err = p.encodeChunks(pl.neg, skip); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// batchConditioning stacks the members' embeddings, one row per image:
// every negative row, then every positive row when guidance is on.
func batchConditioning(ms []*member, cfg bool) *conditioning {
	c := &conditioning{cfg: cfg, guidance: ms[0].task.Plan.req.GuidanceScale}
	rows := 0
	if cfg {
		for _, m := range ms {
			for range m.n {
				c.embeds = append(c.embeds, m.embeds.neg...)
			}
		}
	}
	for _, m := range ms {
		for range m.n {
			c.embeds = append(c.embeds, m.embeds.pos...)
			rows++
		}
	}
	if cfg {
		rows *= 2
	}
	c.shape = []int{rows, ms[0].embeds.T, ms[0].embeds.D}
	return c
}

// promptChunks tokenizes a prompt into 75-token chunks (LoRA tags removed,
// emphasis parsed); 20 is AUTOMATIC1111's comma back-track
// (comma_padding_backtrack): a chunk ends at a comma that close to the end.
func (p *Pipeline) promptChunks(text string) []Chunk {
	comma, _ := p.Tokenizer.ID(",</w>")
	n := p.Tokenizer.MaxLength() - 2
	return chunkTokens(ParseAttention(stripLoRATags(text)), p.tokenize, comma, n, 20)
}

// encodeChunks encodes each chunk as BOS + ids + EOS padded to the window,
// applies emphasis weights with AUTOMATIC1111's mean restoration, and
// concatenates the chunks along the sequence axis: [T·chunks, D]. Positions
// of textual-inversion embeddings get their vectors as input embeddings.
func (p *Pipeline) encodeChunks(chunks []Chunk, clipSkip int) ([]float32, int, int, error) {
	L := p.Tokenizer.MaxLength()
	ids := make([]int32, 0, L*len(chunks))
	var vecs [][]float32
	for ci, ch := range chunks {
		seq := append(append([]int{p.Tokenizer.BOS()}, ch.IDs...), p.Tokenizer.EOS())
		padded, _ := p.Tokenizer.Pad(seq, p.Tokenizer.PadID(), L)
		for _, id := range padded {
			ids = append(ids, int32(id))
		}
		if ch.Vecs != nil {
			if vecs == nil {
				vecs = make([][]float32, L*len(chunks))
			}
			for i, v := range ch.Vecs {
				if 1+i < L { // +1: BOS
					vecs[ci*L+1+i] = v
				}
			}
		}
	}
	var hidden []float32
	var err error
	if vecs != nil {
		hidden, _, err = p.Text.EncodeWithVectors(p.Backend, ids, vecs, len(chunks), L, clipSkip)
	} else {
		hidden, _, err = p.Text.Encode(p.Backend, ids, len(chunks), L, clipSkip)
	}
	if err != nil {
		return nil, 0, 0, err
	}
	D := len(hidden) / (len(chunks) * L)
	for ci, ch := range chunks {
		weighted := false
		for _, w := range ch.Weights {
			if w != 1 {
				weighted = true
			}
		}
		if !weighted {
			continue
		}
		z := hidden[ci*L*D : (ci+1)*L*D]
		var before, after float64
		for _, v := range z {
			before += float64(v)
		}
		for ti, w := range ch.Weights {
			row := z[(ti+1)*D : (ti+2)*D] // +1: BOS
			for j := range row {
				row[j] *= float32(w)
			}
		}
		for _, v := range z {
			after += float64(v)
		}
		if after != 0 {
			k := float32(before / after)
			for j := range z {
				z[j] *= k
			}
		}
	}
	return hidden, L * len(chunks), D, nil
}

// ImageValues converts decoded NCHW values in [-1,1] to [0,1] floats in
// NHWC order, as diffusers' image output (clamp(x/2+0.5, 0, 1)).
func ImageValues(x []float32, c, h, w int) []float32 {
	out := make([]float32, len(x))
	for ch := 0; ch < c; ch++ {
		for i := 0; i < h*w; i++ {
			v := x[ch*h*w+i]/2 + 0.5
			out[i*c+ch] = float32(math.Min(1, math.Max(0, float64(v))))
		}
	}
	return out
}

func toRGBA(x []float32, c, h, w int) *image.RGBA {
	v := ImageValues(x, c, h, w)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < h*w; i++ {
		for ch := 0; ch < 3; ch++ {
			src := ch
			if c == 1 {
				src = 0
			}
			img.Pix[4*i+ch] = uint8(math.RoundToEven(float64(v[i*c+src]) * 255))
		}
		img.Pix[4*i+3] = 255
	}
	return img
}

// infotext records every parameter that reproduces the image.
func (p *Pipeline) infotext(req Request, seed int64) Infotext {
	it := Infotext{Prompt: req.Prompt + loraFieldTags(req.LoRAs), NegativePrompt: req.NegativePrompt}
	add := func(k, v string) { it.Params = append(it.Params, KV{k, v}) }
	add("Steps", fmt.Sprint(req.Steps))
	sampler, schedule := scheduler.InfotextNames(req.Sampler, req.Schedule)
	add("Sampler", sampler)
	if schedule != "" {
		add("Schedule type", schedule)
	}
	add("CFG scale", fmt.Sprint(req.GuidanceScale))
	add("Seed", fmt.Sprint(seed))
	add("Size", fmt.Sprintf("%dx%d", req.Width, req.Height))
	if p.Hash != "" {
		add("Model hash", p.Hash)
	}
	add("Model", p.Name)
	if p.vaes.name != "" {
		if p.vaes.hash != "" {
			add("VAE hash", p.vaes.hash)
		}
		add("VAE", p.vaes.name)
	}
	if req.InitImage != nil {
		add("Denoising strength", fmt.Sprint(req.Strength))
	}
	hiresInfotext(add, req)
	if req.Mask != nil {
		add("Mask blur", fmt.Sprint(req.maskBlur()))
	}
	if req.ClipSkip > 1 {
		add("Clip skip", fmt.Sprint(req.ClipSkip))
	}
	if req.Eta != 0 {
		add("Eta", fmt.Sprint(req.Eta))
	}
	if req.Noise == "torch" {
		add("RNG", "CPU")
	} else {
		add("RNG", "Philox")
	}
	if h := p.loraHashes(); h != "" {
		add("Lora hashes", h)
	}
	for i, v := range controlNetInfotext(req.ControlNets) {
		add(fmt.Sprintf("ControlNet %d", i), v)
	}
	if h := p.tiHashes(req); h != "" {
		add("TI hashes", h)
	}
	add("Version", "ldm")
	return it
}

// loraFieldTags writes the LoRAs given beside the prompt (--lora, an API's
// loras field) as the <lora:name:weight> tags A1111 records every LoRA as,
// so that the infotext's prompt reproduces the image in A1111 (and here).
func loraFieldTags(specs []LoRASpec) string {
	var b strings.Builder
	for _, s := range specs {
		name := s.Name
		if s.Path != "" {
			name = strings.TrimSuffix(filepath.Base(s.Path), filepath.Ext(s.Path))
		}
		fmt.Fprintf(&b, " <lora:%s:%s", name, strconv.FormatFloat(s.Weight, 'g', -1, 64))
		if s.UNetWeight != nil {
			b.WriteString(":" + strconv.FormatFloat(*s.UNetWeight, 'g', -1, 64))
		}
		b.WriteString(">")
	}
	return b.String()
}
