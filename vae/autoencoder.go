package vae

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// AutoencoderKL is a VAE: its config and the context holding its weights
// under diffusers keys.
type AutoencoderKL struct {
	Config Config
	// Ctx holds the variables; LoadWeights replaces it. Without loaded
	// weights the variables are created by the context's initializer on the
	// first run (training from scratch).
	Ctx *context.Context
	// Backend runs the convenience executors; nil means nn.DefaultBackend().
	Backend backends.Backend

	mu     sync.Mutex
	loaded bool
	encode *context.Exec
	decode *context.Exec
	tiled  map[string]*context.Exec // DecodeTiled's and EncodeTiled's stages
}

// New returns a model for cfg with no weights loaded.
func New(cfg Config) (*AutoencoderKL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &AutoencoderKL{Config: cfg, Ctx: context.New()}, nil
}

func (m *AutoencoderKL) backend() (backends.Backend, error) {
	if m.Backend != nil {
		return m.Backend, nil
	}
	b, err := nn.DefaultBackend()
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	m.Backend = b
	return b, nil
}

// ExpectedKeys returns every weight key the model reads, with its shape
// (PyTorch layout), by building the encoder and decoder graphs on an empty
// context.
func (m *AutoencoderKL) ExpectedKeys() (map[string][]int, error) {
	b, err := m.backend()
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	// The smallest image every downsampler accepts; nothing is executed.
	s := 2 * cfg.DownsampleFactor()
	keys, err := nn.ExpectedKeys(b, func(ctx *context.Context, g *Graph) {
		Encode(ctx, cfg, Zeros(g, shapeOf(1, cfg.InChannels, s, s)), nil)
		Decode(ctx, cfg, Zeros(g, shapeOf(1, cfg.LatentChannels, 1, 1)), nil)
	})
	if err != nil {
		return nil, fmt.Errorf("vae: building the graph for config %+v: %w", cfg, err)
	}
	return keys, nil
}

// LoadWeights copies a diffusers AutoencoderKL state dict into a fresh
// context. It fails, naming the keys, when weights are missing, unexpected
// or of the wrong shape. Pre-0.14 attention names (query, key, value,
// proj_attn), which diffusers still converts when loading, are accepted.
func (m *AutoencoderKL) LoadWeights(src nn.Source) error {
	want, err := m.ExpectedKeys()
	if err != nil {
		return err
	}
	rs := renamedSource{src: src, from: map[string]string{}}
	var have []string
	for _, k := range src.Keys() {
		nk := modernAttentionKey(k)
		rs.from[nk] = k
		have = append(have, nk)
	}
	missing, unexpected := nn.CompareKeys(want, have)
	if len(missing) > 0 || len(unexpected) > 0 {
		return fmt.Errorf("vae weights do not match the config: %d missing %s, %d unexpected %s",
			len(missing), listKeys(missing), len(unexpected), listKeys(unexpected))
	}
	rs.want = want
	ctx := context.New()
	if err := nn.Load(ctx, rs); err != nil {
		return fmt.Errorf("vae weights: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Ctx, m.loaded = ctx, true
	m.encode, m.decode, m.tiled = nil, nil, nil
	return nil
}

// deprecatedAttention maps the attention parameter names of diffusers < 0.14
// VAEs to today's (ModelMixin._convert_deprecated_attention_blocks).
var deprecatedAttention = map[string]string{
	"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0",
}

func modernAttentionKey(k string) string {
	parts := strings.Split(k, ".")
	if len(parts) < 3 || !strings.Contains(k, "mid_block.attentions.") {
		return k
	}
	if nw, ok := deprecatedAttention[parts[len(parts)-2]]; ok {
		return strings.Join(append(parts[:len(parts)-2:len(parts)-2], nw, parts[len(parts)-1]), ".")
	}
	return k
}

// renamedSource serves src under modern key names and checks shapes. A
// weight whose shape differs only by trailing 1s (attention projections
// stored as 1×1 convolutions, as in original LDM checkpoints) is reshaped.
type renamedSource struct {
	src  nn.Source
	from map[string]string
	want map[string][]int
}

func (r renamedSource) Keys() []string {
	keys := make([]string, 0, len(r.from))
	for k := range r.from {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (r renamedSource) Float32(key string) ([]float32, []int, error) {
	data, shape, err := r.src.Float32(r.from[key])
	if err != nil {
		return nil, nil, err
	}
	if shape, err = r.fit(key, shape); err != nil {
		return nil, nil, err
	}
	return data, shape, nil
}

// fit checks a stored shape against the config's, accepting a difference
// in trailing 1s only, and returns the config's shape.
func (r renamedSource) fit(key string, shape []int) ([]int, error) {
	want := r.want[key]
	if !slices.Equal(shape, want) && !slices.Equal(trimOnes(shape), trimOnes(want)) {
		return nil, fmt.Errorf("weight %s has shape %v, the config needs %v", r.from[key], shape, want)
	}
	return want, nil
}

// Float32Shape passes nn.IntoSource through when the underlying source has
// it and the shape fits (otherwise Float32 reports the mismatch).
func (r renamedSource) Float32Shape(key string) ([]int, bool) {
	into, ok := r.src.(nn.IntoSource)
	if !ok {
		return nil, false
	}
	shape, ok := into.Float32Shape(r.from[key])
	if !ok {
		return nil, false
	}
	shape, err := r.fit(key, shape)
	return shape, err == nil
}

// Float32Into converts straight into dst (after Float32Shape said yes).
func (r renamedSource) Float32Into(key string, dst []float32) error {
	into, ok := r.src.(nn.IntoSource)
	if !ok {
		return fmt.Errorf("weight %s: the source cannot convert in place", r.from[key])
	}
	return into.Float32Into(r.from[key], dst)
}

// StoredHalf and HalfInto pass nn.HalfSource through (16-bit weights),
// with the shape fitted as Float32Shape does.
func (r renamedSource) StoredHalf(key string) (string, []int, bool) {
	h, ok := r.src.(nn.HalfSource)
	if !ok {
		return "", nil, false
	}
	dt, shape, ok := h.StoredHalf(r.from[key])
	if !ok {
		return "", nil, false
	}
	shape, err := r.fit(key, shape)
	return dt, shape, err == nil
}

func (r renamedSource) HalfInto(key string, dst []byte) error {
	return r.src.(nn.HalfSource).HalfInto(r.from[key], dst) // only after StoredHalf said yes
}

func trimOnes(s []int) []int {
	for len(s) > 0 && s[len(s)-1] == 1 {
		s = s[:len(s)-1]
	}
	return s
}

// listKeys shows up to 8 keys.
func listKeys(keys []string) string {
	if len(keys) == 0 {
		return "[]"
	}
	if len(keys) > 8 {
		return fmt.Sprintf("[%s … and %d more]", strings.Join(keys[:8], " "), len(keys)-8)
	}
	return "[" + strings.Join(keys, " ") + "]"
}

// EncodeRun encodes images of shape [B, in_channels, H, W] (NCHW, values in
// [-1, 1]) and returns the moments [B, 2·latent_channels, H/f, W/f]. The
// compiled graph is cached per input shape.
func (m *AutoencoderKL) EncodeRun(image []float32, shape []int) ([]float32, []int, error) {
	if err := checkInput("image", image, shape, m.Config.InChannels); err != nil {
		return nil, nil, err
	}
	if f := m.Config.DownsampleFactor(); shape[2] < f || shape[3] < f {
		return nil, nil, fmt.Errorf("vae: image %dx%d is smaller than the downsampling factor %d", shape[3], shape[2], f)
	}
	e, err := m.exec(&m.encode, Encode)
	if err != nil {
		return nil, nil, err
	}
	return run(e, "encode", image, shape)
}

// DecodeRun decodes latents of shape [B, latent_channels, h, w] (unscaled)
// into images [B, out_channels, h·f, w·f], NCHW, nominally in [-1, 1].
func (m *AutoencoderKL) DecodeRun(z []float32, shape []int) ([]float32, []int, error) {
	if err := checkInput("latents", z, shape, m.Config.LatentChannels); err != nil {
		return nil, nil, err
	}
	e, err := m.exec(&m.decode, Decode)
	if err != nil {
		return nil, nil, err
	}
	return run(e, "decode", z, shape)
}

type graphFn func(ctx *context.Context, cfg Config, x *Node, taps Taps) *Node

func (m *AutoencoderKL) exec(slot **context.Exec, fn graphFn) (*context.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if *slot != nil {
		return *slot, nil
	}
	b, err := m.backend()
	if err != nil {
		return nil, err
	}
	ctx := m.Ctx
	if m.loaded {
		ctx = ctx.Reuse()
	}
	cfg := m.Config
	e, err := context.NewExec(b, ctx, func(ctx *context.Context, x *Node) *Node { return fn(ctx, cfg, x, nil) })
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	*slot = e
	return e, nil
}

func run(e *context.Exec, what string, x []float32, shape []int) (out []float32, outShape []int, err error) {
	err = nn.Try(func() {
		res, err := e.Exec(tensors.FromFlatDataAndDimensions(x, shape...))
		if err != nil {
			panic(err)
		}
		out = nn.Values(res[0])
		outShape = res[0].Shape().Dimensions
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vae %s of %v: %w", what, shape, err)
	}
	return out, outShape, nil
}

func checkInput(what string, x []float32, shape []int, channels int) error {
	if len(shape) != 4 || shape[1] != channels {
		return fmt.Errorf("vae: %s shape %v, want [B, %d, H, W]", what, shape, channels)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return fmt.Errorf("vae: %s shape %v has a non-positive dimension", what, shape)
		}
		n *= d
	}
	if n != len(x) {
		return fmt.Errorf("vae: %s has %d values, shape %v needs %d", what, len(x), shape, n)
	}
	return nil
}

// PosteriorSample is Posterior and Sample on plain values: moments
// [B, 2L, h, w] and eps [B, L, h, w] give mean + std·eps [B, L, h, w].
func PosteriorSample(moments []float32, shape []int, eps []float32) ([]float32, []int, error) {
	if len(shape) != 4 || shape[1]%2 != 0 {
		return nil, nil, fmt.Errorf("vae: moments shape %v, want [B, 2·latent_channels, h, w]", shape)
	}
	b, l, hw := shape[0], shape[1]/2, shape[2]*shape[3]
	if len(moments) != b*2*l*hw || len(eps) != b*l*hw {
		return nil, nil, fmt.Errorf("vae: %d moments and %d eps values for moments shape %v", len(moments), len(eps), shape)
	}
	out := make([]float32, b*l*hw)
	for n := range b {
		for c := range l {
			for i := range hw {
				mean := moments[(n*2*l+c)*hw+i]
				logvar := min(max(float64(moments[(n*2*l+l+c)*hw+i]), logvarMin), logvarMax)
				std := float32(math.Exp(0.5 * float64(float32(logvar))))
				o := (n*l+c)*hw + i
				out[o] = mean + float32(std*eps[o]) // no FMA: torch rounds the product
			}
		}
	}
	return out, []int{b, l, shape[2], shape[3]}, nil
}

func shapeOf(dims ...int) shapes.Shape { return shapes.Make(nn.DType, dims...) }
