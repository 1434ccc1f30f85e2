package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // init and mask images
	_ "image/png"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ldm-project/ldm/ldm"
	"github.com/ldm-project/ldm/models"
)

func init() { subcommands = append(subcommands, newGenerateCmd) }

// modelFlags are the flags that pick and load a model (generate, batch).
type modelFlags struct {
	path string
	load ldm.LoadOptions
}

func (m *modelFlags) register(f *pflag.FlagSet) {
	f.StringVar(&m.path, "model", os.Getenv("LDM_MODEL"), "model: a diffusers folder or a single .safetensors file (env LDM_MODEL); default: the embedded emoji model")
	f.StringVar(&m.load.ConfigFrom, "config-from", "", "single file: take configs, tokenizer and scheduler from this diffusers folder")
	f.StringVar(&m.load.Tokenizer, "tokenizer", "", "tokenizer folder (vocab.json + merges.txt); default: the model's, else the Hugging Face cache's")
	f.StringVar(&m.load.Embeddings, "embeddings", "", "folder of textual-inversion embeddings (*.safetensors; the file name is the trigger word)")
	f.StringVar(&m.load.PredictionType, "prediction-type", "", `override the scheduler's prediction type ("epsilon", "v_prediction")`)
	f.StringVar(&m.load.Variant, "variant", "", `diffusers folder: prefer *.<variant>.safetensors weights (e.g. "fp16")`)
	f.StringVar(&m.load.WeightsDType, "weights-dtype", "", `keep weights in "f32" or "f16" (half the memory, computed in float32); default $LDM_WEIGHTS_DTYPE, else f32`)
	f.StringVar(&m.load.LoRADir, "lora-dir", os.Getenv("LDM_LORA_DIR"), "folder of LoRA files that <lora:name:weight> prompt tags name (env LDM_LORA_DIR)")
	registerVAEFlags(f, &m.load)
}

// open loads the model, logging what it skipped.
func (m *modelFlags) open(cmd *cobra.Command) (*ldm.Pipeline, time.Duration, error) {
	if m.path == "" {
		path, err := defaultModel()
		if err != nil {
			return nil, 0, err
		}
		m.path = path
		if m.load.Name == "" {
			m.load.Name = models.Name
		}
	}
	if v, _ := cmd.Flags().GetString("backend"); v != "" {
		m.load.Backend = v
	}
	start := time.Now()
	p, err := ldm.Load(m.path, m.load)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range p.SkippedEmbeddings {
		fmt.Fprintln(cmd.ErrOrStderr(), "embedding skipped:", s)
	}
	return p, time.Since(start), nil
}

// requestFlags are the flags that fill an ldm.Request. Numeric flags default
// to zero, which Request.Defaults fills: the defaults live there only.
type requestFlags struct {
	req                  ldm.Request
	initImage, maskImage string
	format               string
	quality              int
	output               string
	loras                []string
	control              controlFlags
	hires                hiresFlags
	outpaint             outpaintFlags
	previewPath          string
}

// flagOfField maps Request JSON field names (FieldError.Field) to flags.
// A flag bound to a Request field is found by the field's address, so
// register is the one declaration of both directions; the others are the
// inputs the command reads itself.
var flagOfField = func() map[string]string {
	m := map[string]string{"prompt": "the PROMPT argument", "mask": "--mask", "loras": "--lora", "controlnets": "--control-net"}
	var r requestFlags
	fs := pflag.NewFlagSet("fields", pflag.ContinueOnError)
	r.register(fs)
	rv := reflect.ValueOf(&r.req).Elem()
	byAddr := map[uintptr]string{}
	for i := range rv.NumField() {
		if name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			byAddr[rv.Field(i).Addr().Pointer()] = name
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		v := reflect.ValueOf(f.Value)
		if o, ok := f.Value.(optionalInt); ok {
			v = reflect.ValueOf(o.p)
		}
		if v.Kind() == reflect.Pointer {
			if name, ok := byAddr[v.Pointer()]; ok {
				m[name] = "--" + f.Name
			}
		}
	})
	return m
}()

// flagHints add what to do for the errors whose fix is another flag: the
// hint applies to a field's errors whose message starts with msg.
var flagHints = []struct{ field, msg, hint string }{
	{"strength", "is only meaningful", " (it sets how much of --init-image to repaint)"},
	{"mask", "needs an init image", " (pass --init-image with the picture to inpaint)"},
}

func flagHint(fe *ldm.FieldError) string {
	for _, h := range flagHints {
		if h.field == fe.Field && strings.HasPrefix(fe.Msg, h.msg) {
			return h.hint
		}
	}
	return ""
}

// flagError rewrites a request FieldError in terms of the command's flags.
func flagError(err error) error {
	var fe *ldm.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name, ok := flagOfField[fe.Field]
	if !ok {
		return err
	}
	return fmt.Errorf("%s: %s%s", name, fe.Msg, flagHint(fe))
}

// libraryDefaults is what Request.Defaults fills into a blank img2img +
// inpainting request: the help texts quote it, so that they follow the
// library's defaults instead of restating them.
func libraryDefaults() ldm.Request {
	d := ldm.Blank()
	d.InitImage, d.Mask = image.NewGray(image.Rect(0, 0, 1, 1)), image.NewGray(image.Rect(0, 0, 1, 1))
	d.Defaults(0)
	return d
}

// optionalInt is an int flag that stays nil unless given, for Request
// fields where unset and 0 differ (MaskBlur).
type optionalInt struct{ p **int }

func (o optionalInt) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.Itoa(**o.p)
}

func (o optionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*o.p = &n
	return nil
}

func (o optionalInt) Type() string { return "int" }

func (r *requestFlags) register(f *pflag.FlagSet) {
	q := &r.req
	d := libraryDefaults()
	f.StringVar(&q.NegativePrompt, "negative", "", "negative prompt: what the image should not show")
	f.IntVarP(&q.Width, "width", "W", 0, "image width in pixels, a multiple of the model's VAE factor: 8 for SD, 4 for the embedded model (default: the model's size)")
	f.IntVarP(&q.Height, "height", "H", 0, "image height in pixels, a multiple of the model's VAE factor (default: the model's size)")
	f.IntVar(&q.Steps, "steps", 0, fmt.Sprintf("denoising steps (default %d)", d.Steps))
	f.Float64Var(&q.GuidanceScale, "cfg", 0, fmt.Sprintf("classifier-free guidance scale; 1 skips the unconditional pass (default %g; alias --guidance)", d.GuidanceScale))
	f.StringVar(&q.Sampler, "sampler", "", fmt.Sprintf(`sampler: AUTOMATIC1111 ("Euler a", "DPM++ 2M Karras"), ComfyUI ("dpmpp_2m") or diffusers class name (default %s)`, d.Sampler))
	f.StringVar(&q.Schedule, "schedule", "", `sigma schedule: Automatic (the sampler's default), Uniform, Karras, Exponential, Polyexponential, SGM Uniform, KL Optimal, Align Your Steps, Simple, Normal, DDIM, Beta, Linear Quadratic, Trailing (or their ComfyUI names)`)
	f.Int64Var(&q.Seed, "seed", ldm.Blank().Seed, "seed; -1 picks a random one (reported). Image i of a batch gets seed+i")
	f.IntVar(&q.BatchSize, "batch-size", 0, fmt.Sprintf("images per model batch (default %d)", d.BatchSize))
	f.IntVar(&q.BatchCount, "batch-count", 0, fmt.Sprintf("batches run one after another (default %d)", d.BatchCount))
	f.IntVar(&q.ClipSkip, "clip-skip", 0, "CLIP layers to skip, AUTOMATIC1111 style: 1 = last layer, 2 = penultimate")
	f.Float64Var(&q.Eta, "eta", 0, "DDIM eta: 0 deterministic, 1 as DDPM")
	f.StringVar(&q.Noise, "noise", "", fmt.Sprintf(`noise generator: "philox" (stable across versions and backends) or "torch" (same images as diffusers/ComfyUI on CPU) (default %s)`, d.Noise))
	f.StringVar(&r.initImage, "init-image", "", "img2img: start from this image (PNG or JPEG)")
	f.Float64Var(&q.Strength, "strength", 0, fmt.Sprintf("img2img: how much of --init-image to repaint, (0, 1] (default %g)", d.Strength))
	f.StringVar(&r.maskImage, "mask", "", "inpaint: white where --init-image is repainted, black where it is kept")
	f.Var(optionalInt{&q.MaskBlur}, "mask-blur", fmt.Sprintf("inpaint: blur of the mask edge in pixels, 0: none (default %d)", *d.MaskBlur))
	f.BoolVar(&q.MaskInvert, "mask-invert", false, "inpaint: repaint the mask's black part instead of its white part")
	f.StringVar(&q.InpaintingFill, "inpainting-fill", "", "inpaint: what the masked area starts from: original (default), fill (the colours around it), latent_noise, latent_nothing")
	f.BoolVar(&q.InpaintFullRes, "inpaint-full-res", false, "inpaint only the mask's region at the full output size, then paste it back (A1111's \"Only masked\")")
	f.IntVar(&q.InpaintFullResPadding, "inpaint-full-res-padding", 32, "pixels around the mask that --inpaint-full-res includes")
	f.StringVar(&r.format, "format", "", "image format: png, jpeg or webp (lossless) (default: from -o's extension, else png)")
	f.IntVar(&r.quality, "quality", 0, fmt.Sprintf("JPEG quality 1-100 (default %d)", ldm.DefaultJPEGQuality))
	f.StringArrayVar(&r.loras, "lora", nil, "apply a LoRA file (kohya or diffusers/PEFT .safetensors) at a weight: FILE[:WEIGHT], weight 1 by default; repeatable")
	r.control.register(f)
	r.hires.register(f)
	r.outpaint.register(f)
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "guidance" {
			name = "cfg"
		}
		if name == "denoising-strength" {
			name = "strength"
		}
		return pflag.NormalizedName(name)
	})
}

// request returns the request the flags describe, with the init image and
// mask read, checked as far as possible before a model is loaded.
func (r *requestFlags) request() (ldm.Request, error) {
	req, err := r.build()
	if err != nil {
		return req, err
	}
	return req, flagError(precheck(req))
}

// build returns the request with the init image and mask read, unchecked.
func (r *requestFlags) build() (ldm.Request, error) {
	req := r.req
	var err error
	for _, l := range r.loras {
		spec, err := parseLoRAFlag(l)
		if err != nil {
			return req, err
		}
		req.LoRAs = append(req.LoRAs, spec)
	}
	if req.ControlNets, err = r.control.units(); err != nil {
		return req, err
	}
	if r.initImage != "" {
		if req.InitImage, err = readImage(r.initImage); err != nil {
			return req, fmt.Errorf("--init-image: %w", err)
		}
	}
	if r.maskImage != "" {
		if req.Mask, err = readImage(r.maskImage); err != nil {
			return req, fmt.Errorf("--mask: %w", err)
		}
	}
	r.hires.apply(&req)
	return req, r.outpaint.apply(&req)
}

// parseLoRAFlag reads --lora FILE[:WEIGHT]. The weight is what follows
// the last colon when it is a number, so paths with colons still work.
func parseLoRAFlag(s string) (ldm.LoRASpec, error) {
	spec := ldm.LoRASpec{Path: s, Weight: 1}
	if i := strings.LastIndex(s, ":"); i >= 0 {
		if w, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			spec.Path, spec.Weight = s[:i], w
		}
	}
	if spec.Path == "" {
		return spec, fmt.Errorf("--lora %q: give a file, FILE or FILE:WEIGHT", s)
	}
	if _, err := os.Stat(spec.Path); err != nil {
		return spec, fmt.Errorf("--lora: %w", err)
	}
	return spec, nil
}

// precheck runs the model-independent checks before the model is loaded;
// Generate checks the rest (the size against the model's factor).
func precheck(req ldm.Request) error {
	req.Defaults(0) // 0: width and height stay the model's, unknown yet
	return req.Check(ldm.DefaultLimits)
}

func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (PNG or JPEG expected)", path, err)
	}
	return img, nil
}

// outputFormat settles the image format from --format, --quality and the
// output file's extension (ext == "" for a folder).
func (r *requestFlags) outputFormat(flags *pflag.FlagSet, ext string) (ldm.Format, error) {
	var f ldm.Format
	var err error
	if r.format != "" {
		if f, err = ldm.ParseFormat(r.format); err != nil {
			return "", fmt.Errorf("--format: %w", err)
		}
	}
	if ext != "" {
		byExt, _ := ldm.ParseFormat(ext)
		if f != "" && f != byExt {
			return "", fmt.Errorf("--format %s contradicts the output file's extension %s", r.format, ext)
		}
		f = byExt
	}
	if f == "" {
		f = ldm.PNG
	}
	if flags.Changed("quality") {
		if f != ldm.JPEG {
			return "", errors.New("--quality applies to JPEG output only: add --format jpeg or write to a .jpg file")
		}
		if r.quality < 1 || r.quality > 100 {
			return "", fmt.Errorf("--quality %d: want 1 to 100", r.quality)
		}
	}
	return f, nil
}

func newGenerateCmd() *cobra.Command {
	var (
		rf    requestFlags
		model modelFlags
	)
	cmd := &cobra.Command{
		Use:   "generate PROMPT",
		Short: "Generate images from a prompt (txt2img), an init image (img2img) or an init image and a mask (inpainting)",
		Long: `generate renders one request and writes each image with its AUTOMATIC1111-style parameters
(PNG "parameters" chunk, or JPEG EXIF UserComment; read them back with "ldm png-info").

-o names a file (out.png; several images become out-1.png, out-2.png, ...) or a folder, where
images get the next free numbers: 00001-<seed>.png, 00002-<seed>.png, ... Files are written atomically.
Words of the prompt may be weighted as in AUTOMATIC1111: (word), (word:1.3), [word]; BREAK starts a new chunk.
LoRAs apply with --lora FILE[:WEIGHT], or with <lora:name:weight> in the prompt (name: a file of --lora-dir).`,
		Example: `  ldm generate --model sd15.safetensors --config-from sd15-diffusers "a red apple" -o apple.png
  ldm generate --model tiny "a fox" --init-image fox.png --strength 0.6 --seed 7 -o out/
  ldm generate --model tiny "a cat" --init-image room.png --mask hole.png --sampler "DPM++ 2M Karras"
  ldm generate "dog face" --lora run/lora.safetensors:0.8 -o dog.png
  ldm generate --lora-dir loras "dog face <lora:animals:0.8>" -o dog.png`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rf.req.Prompt = strings.Join(args, " ")
			return runGenerate(cmd, &rf, &model)
		},
	}
	f := cmd.Flags()
	rf.register(f)
	model.register(f)
	f.StringVarP(&rf.output, "output", "o", ".", "output file (.png, .jpg) or folder")
	f.StringVar(&rf.previewPath, "preview-path", "", "write the live preview of each step to this PNG (see --preview)")
	return cmd
}

func runGenerate(cmd *cobra.Command, rf *requestFlags, model *modelFlags) error {
	req, err := rf.request()
	if err != nil {
		return err
	}
	out, err := newOutputTarget(rf.output)
	if err != nil {
		return err
	}
	format, err := rf.outputFormat(cmd.Flags(), out.ext)
	if err != nil {
		return err
	}
	p, loadTime, err := model.open(cmd)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newStepBar(cmd.ErrOrStderr())
	start := time.Now()
	opts := ldm.Options{Progress: bar.update}
	if rf.previewPath != "" {
		opts.PreviewEvery = 1
		opts.Progress = func(pr ldm.Progress) {
			bar.update(pr)
			if pr.Preview != nil {
				if err := writePreview(rf.previewPath, pr.Preview); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "preview:", err)
				}
			}
		}
	}
	// Each image is saved as it finishes, so that an interrupt (or a crash)
	// keeps the ones done; a failed save stops the run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := max(req.BatchSize, 1) * max(req.BatchCount, 1)
	saved := 0
	var saveErr error
	opts.OnImage = func(r ldm.Result) {
		if saveErr != nil {
			return
		}
		name, err := out.name(saved, total, r, format)
		if err == nil {
			err = r.Save(name, format, rf.quality)
		}
		if err != nil {
			saveErr = err
			cancel()
			return
		}
		saved++
		fmt.Fprintf(cmd.OutOrStdout(), "%s\tseed %d\n", name, r.Seed)
	}
	results, err := p.Generate(ctx, req, opts)
	bar.finish()
	if saveErr != nil {
		return saveErr
	}
	interrupted := errors.Is(err, context.Canceled)
	if err != nil && !interrupted {
		return flagError(err)
	}
	if interrupted {
		if saved == 0 {
			return errors.New("interrupted")
		}
		return fmt.Errorf("interrupted: the %d image(s) finished before it are saved", saved)
	}
	genTime := time.Since(start)
	fmt.Fprintf(cmd.ErrOrStderr(), "%d image(s) in %s (model load %s; %s)\n", len(results), seconds(time.Since(start)+loadTime), seconds(loadTime), bar.timing(genTime))
	return nil
}

// outputTarget is -o: one file, or a folder of numbered files.
type outputTarget struct {
	path string
	ext  string // the file's extension; "" for a folder
}

func newOutputTarget(path string) (*outputTarget, error) {
	if path == "" {
		return nil, errors.New("-o: empty output path")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return &outputTarget{path: path}, writable(path)
	}
	ext := filepath.Ext(path)
	if _, ok := ldm.FormatOf(path); ok && !strings.HasSuffix(path, string(os.PathSeparator)) {
		dir := filepath.Dir(path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("-o: %w", err)
		}
		return &outputTarget{path: path, ext: ext}, writable(dir)
	}
	if ext != "" && !strings.HasSuffix(path, string(os.PathSeparator)) {
		return nil, fmt.Errorf("-o %s: unknown image extension %s: use .png, .jpg or .webp, or name a folder", path, ext)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("-o: %w", err)
	}
	return &outputTarget{path: path}, writable(path)
}

// writable checks that files can be created in dir, before minutes of
// generation rather than after (the images are written atomically there).
func writable(dir string) error {
	f, err := os.CreateTemp(dir, ".ldm-write-check-*")
	if err != nil {
		return fmt.Errorf("-o: %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

var numbered = regexp.MustCompile(`^(\d{5,})-`)

// name gives image i of total its file: the -o file (stem-1, stem-2, …
// when there are several), or the next free number of the folder,
// NNNNN-<seed>.ext, as AUTOMATIC1111 numbers its outputs.
func (o *outputTarget) name(i, total int, r ldm.Result, f ldm.Format) (string, error) {
	if o.ext != "" {
		if total == 1 {
			return o.path, nil
		}
		return fmt.Sprintf("%s-%d%s", strings.TrimSuffix(o.path, o.ext), i+1, o.ext), nil
	}
	entries, err := os.ReadDir(o.path)
	if err != nil {
		return "", err
	}
	next := 1
	for _, e := range entries {
		if m := numbered.FindStringSubmatch(e.Name()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= next {
				next = n + 1
			}
		}
	}
	return filepath.Join(o.path, fmt.Sprintf("%05d-%d%s", next, r.Seed, f.Ext())), nil
}

// stepBar draws generation progress on stderr: a redrawn bar on a terminal,
// one plain line per step otherwise (logs, CI). It also keeps the step
// timings for the summary line.
type stepBar struct {
	w       io.Writer
	tty     bool
	prefix  string
	quiet   bool // no per-step lines when not on a terminal
	drawn   bool
	start   time.Time
	first   time.Duration // until the first step ended (includes compiling)
	last    time.Duration // until the last step ended
	steps   int
	lastLen int
}

func newStepBar(w io.Writer) *stepBar {
	return &stepBar{w: w, tty: isTerminal(w), start: time.Now()}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (b *stepBar) update(pr ldm.Progress) {
	since := time.Since(b.start)
	b.steps++
	if b.steps == 1 {
		b.first = since
	}
	b.last = since
	img := ""
	if pr.Images > 1 {
		img = fmt.Sprintf(" batch %d/%d", pr.Image, pr.Images)
	}
	if !b.tty {
		if b.quiet {
			return
		}
		fmt.Fprintf(b.w, "%sstep %d/%d%s, elapsed %s, ETA %s\n", b.prefix, pr.Step, pr.Total, img, seconds(pr.Elapsed), seconds(pr.ETA))
		return
	}
	const width = 30
	n := width * pr.Step / max(pr.Total, 1)
	line := fmt.Sprintf("\r%s[%s%s] %d/%d%s  %s elapsed  ETA %s", b.prefix, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		pr.Step, pr.Total, img, clock(pr.Elapsed), clock(pr.ETA))
	pad := max(b.lastLen-len(line), 0)
	fmt.Fprint(b.w, line+strings.Repeat(" ", pad))
	b.lastLen = len(line)
	b.drawn = true
}

// finish ends the bar's line on a terminal.
func (b *stepBar) finish() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn, b.lastLen = false, 0
	}
}

// timing describes where the generation time went.
func (b *stepBar) timing(total time.Duration) string {
	switch b.steps {
	case 0:
		return "no step"
	case 1:
		return fmt.Sprintf("1 step in %s including compilation and text encoding, then decode and save %s", seconds(b.first), seconds(total-b.last))
	}
	per := (b.last - b.first) / time.Duration(b.steps-1)
	return fmt.Sprintf("%d steps: the first %s including compilation and text encoding, then %s per step; decode %s",
		b.steps, seconds(b.first), seconds(per), seconds(total-b.last))
}

func seconds(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
