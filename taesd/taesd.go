// Package taesd is the tiny autoencoder TAESD (madebyollin/taesd; diffusers'
// AutoencoderTiny, v0.29.2) on GoMLX: a plain convolutional encoder and
// decoder, about 1% of SD's VAE, used as a fast decoder and for live
// previews. Variables are scoped like the diffusers keys
// (decoder.layers.3.conv.0.weight ↔ /decoder/layers/3/conv/0); weights.OpenTAESD
// converts the original taesd_encoder/taesd_decoder files to those names.
package taesd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/pyjson"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// Config holds the fields of a diffusers AutoencoderTiny config.json that the
// computation depends on. Absent fields take the class's defaults (TAESD for
// SD 1.x/2.x).
type Config struct {
	InChannels              int     `json:"in_channels"`
	OutChannels             int     `json:"out_channels"`
	EncoderBlockOutChannels []int   `json:"encoder_block_out_channels"`
	DecoderBlockOutChannels []int   `json:"decoder_block_out_channels"`
	ActFn                   string  `json:"act_fn"`
	UpsampleFn              string  `json:"upsample_fn"`
	LatentChannels          int     `json:"latent_channels"`
	UpsamplingScalingFactor int     `json:"upsampling_scaling_factor"`
	NumEncoderBlocks        []int   `json:"num_encoder_blocks"`
	NumDecoderBlocks        []int   `json:"num_decoder_blocks"`
	ScalingFactor           float64 `json:"scaling_factor"`
}

// DefaultConfig is AutoencoderTiny.__init__'s defaults.
func DefaultConfig() Config {
	return Config{
		InChannels: 3, OutChannels: 3,
		EncoderBlockOutChannels: []int{64, 64, 64, 64},
		DecoderBlockOutChannels: []int{64, 64, 64, 64},
		ActFn:                   "relu", UpsampleFn: "nearest",
		LatentChannels: 4, UpsamplingScalingFactor: 2,
		NumEncoderBlocks: []int{1, 3, 3, 3},
		NumDecoderBlocks: []int{3, 3, 3, 1},
		ScalingFactor:    1.0,
	}
}

// ParseConfig reads an AutoencoderTiny config.json over the defaults.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := json.Unmarshal(pyjson.Sanitize(data), &cfg); err != nil {
		return Config{}, fmt.Errorf("taesd config: %w", err)
	}
	return cfg, cfg.Validate()
}

// Validate reports a config this package cannot build.
func (c Config) Validate() error {
	switch {
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0:
		return fmt.Errorf("taesd config: in_channels %d, out_channels %d and latent_channels %d must be positive", c.InChannels, c.OutChannels, c.LatentChannels)
	case len(c.EncoderBlockOutChannels) == 0 || len(c.EncoderBlockOutChannels) != len(c.NumEncoderBlocks):
		return fmt.Errorf("taesd config: %d encoder_block_out_channels for %d num_encoder_blocks", len(c.EncoderBlockOutChannels), len(c.NumEncoderBlocks))
	case len(c.DecoderBlockOutChannels) == 0 || len(c.DecoderBlockOutChannels) != len(c.NumDecoderBlocks):
		return fmt.Errorf("taesd config: %d decoder_block_out_channels for %d num_decoder_blocks", len(c.DecoderBlockOutChannels), len(c.NumDecoderBlocks))
	case c.UpsampleFn != "nearest" || c.UpsamplingScalingFactor != 2:
		return fmt.Errorf("taesd config: upsample_fn %q ×%d is not supported (nearest ×2)", c.UpsampleFn, c.UpsamplingScalingFactor)
	case c.ScalingFactor == 0:
		return fmt.Errorf("taesd config: scaling_factor is 0")
	}
	if _, err := activation(c.ActFn); err != nil {
		return err
	}
	return nil
}

// DownsampleFactor is the ratio of image to latent size.
func (c Config) DownsampleFactor() int { return 1 << (len(c.EncoderBlockOutChannels) - 1) }

// UpsampleFactor is the decoder's ratio of image to latent size.
func (c Config) UpsampleFactor() int { return 1 << (len(c.DecoderBlockOutChannels) - 1) }

func activation(name string) (func(*Node) *Node, error) {
	switch name {
	case "relu":
		return relu, nil
	case "silu", "swish":
		return nn.SiLU, nil
	case "gelu":
		return nn.GELU, nil
	}
	return nil, fmt.Errorf("taesd config: act_fn %q is not supported (relu, silu, gelu)", name)
}

func relu(x *Node) *Node { return MaxScalar(x, 0) } // a scalar: no zeros tensor is materialised

// Taps collects outputs of the Sequential entries by diffusers name
// ("decoder.layers.4"), NCHW, as forward hooks see them. nil: none.
type Taps map[string]*Node

type layers struct {
	ctx  *context.Context
	name string
	taps Taps
	i    int
	act  func(*Node) *Node
}

// next runs one Sequential entry and records its output.
func (l *layers) next(x *Node, fn func(ctx *context.Context, x *Node) *Node) *Node {
	x = fn(l.ctx.In(strconv.Itoa(l.i)), x)
	if l.taps != nil {
		l.taps[l.name+"."+strconv.Itoa(l.i)] = TransposeAllDims(x, 0, 3, 1, 2)
	}
	l.i++
	return x
}

func conv(out, stride int, bias bool) func(ctx *context.Context, x *Node) *Node {
	return func(ctx *context.Context, x *Node) *Node {
		return nn.Conv2D(ctx, x, nn.Conv2DOpts{Out: out, Kernel: 3, Stride: stride, Pad: 1, NoBias: !bias})
	}
}

// block is AutoencoderTinyBlock: act(conv(act(conv(act(conv(x))))) + skip(x)),
// the fuse always a ReLU.
func (l *layers) block(out int) func(ctx *context.Context, x *Node) *Node {
	return func(ctx *context.Context, x *Node) *Node {
		h := l.act(conv(out, 1, true)(ctx.In("conv").In("0"), x))
		h = l.act(conv(out, 1, true)(ctx.In("conv").In("2"), h))
		h = conv(out, 1, true)(ctx.In("conv").In("4"), h)
		skip := x
		if x.Shape().Dim(-1) != out {
			skip = nn.Conv2D(ctx.In("skip"), x, nn.Conv2DOpts{Out: out, Kernel: 1, NoBias: true})
		}
		return relu(Add(h, skip))
	}
}

// Encode maps images [B, 3, H, W] in [-1, 1] to latents [B, L, H/8, W/8]
// (AutoencoderTiny.encode(x).latents: no scaling).
func Encode(ctx *context.Context, cfg Config, image *Node, taps Taps) *Node {
	act, _ := activation(cfg.ActFn)
	l := &layers{ctx: ctx.In("encoder").In("layers"), name: "encoder.layers", taps: taps, act: act}
	// TAESD works on [0, 1] images.
	x := TransposeAllDims(MulScalar(AddScalar(image, 1), 0.5), 0, 2, 3, 1)
	for i, ch := range cfg.EncoderBlockOutChannels {
		if i == 0 {
			x = l.next(x, conv(ch, 1, true))
		} else {
			x = l.next(x, conv(ch, 2, false))
		}
		for range cfg.NumEncoderBlocks[i] {
			x = l.next(x, l.block(ch))
		}
	}
	x = l.next(x, conv(cfg.LatentChannels, 1, true))
	return TransposeAllDims(x, 0, 3, 1, 2)
}

// Decode maps latents [B, L, h, w] to images [B, 3, 8h, 8w] in about
// [-1, 1] (AutoencoderTiny.decode(z).sample: no clamp).
func Decode(ctx *context.Context, cfg Config, z *Node, taps Taps) *Node {
	act, _ := activation(cfg.ActFn)
	l := &layers{ctx: ctx.In("decoder").In("layers"), name: "decoder.layers", taps: taps, act: act}
	x := TransposeAllDims(z, 0, 2, 3, 1)
	x = MulScalar(Tanh(MulScalar(x, 1.0/3)), 3) // TAESD's Clamp
	ch := cfg.DecoderBlockOutChannels
	x = l.next(x, conv(ch[0], 1, true))
	x = l.next(x, func(_ *context.Context, x *Node) *Node { return act(x) })
	for i, c := range ch {
		last := i == len(ch)-1
		for range cfg.NumDecoderBlocks[i] {
			x = l.next(x, l.block(c))
		}
		if !last {
			x = l.next(x, func(_ *context.Context, x *Node) *Node { return nn.Upsample2x(x) })
			x = l.next(x, conv(c, 1, false))
		} else {
			x = l.next(x, conv(cfg.OutChannels, 1, true))
		}
	}
	x = AddScalar(MulScalar(x, 2), -1)
	return TransposeAllDims(x, 0, 3, 1, 2)
}

// Model is a loaded TAESD: config and weights. A model loaded from a decoder
// file alone decodes only (HasEncoder false).
type Model struct {
	Config Config
	Ctx    *context.Context
	// Backend runs the executors; nil means nn.DefaultBackend().
	Backend backends.Backend

	hasEncoder, hasDecoder bool
	mu                     sync.Mutex
	encode, decode         *context.Exec
}

// New returns a model for cfg with no weights.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Ctx: context.New()}, nil
}

// Load opens path with weights.OpenTAESD and loads it on backend b.
func Load(path string, b backends.Backend) (*Model, error) {
	wm, err := weights.OpenTAESD(path)
	if err != nil {
		return nil, err
	}
	defer wm.Close()
	c := wm.Components[weights.TAESD]
	cfg, err := ParseConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	m.Backend = b
	if err := m.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// HasEncoder reports whether the encoder's weights were loaded.
func (m *Model) HasEncoder() bool { return m.hasEncoder }

// HasDecoder reports whether the decoder's weights were loaded.
func (m *Model) HasDecoder() bool { return m.hasDecoder }

func (m *Model) backend() (backends.Backend, error) {
	if m.Backend == nil {
		b, err := nn.DefaultBackend()
		if err != nil {
			return nil, fmt.Errorf("taesd: %w", err)
		}
		m.Backend = b
	}
	return m.Backend, nil
}

// expected returns the keys (and shapes) of the encoder and of the decoder.
func (m *Model) expected() (enc, dec map[string][]int, err error) {
	b, err := m.backend()
	if err != nil {
		return nil, nil, err
	}
	cfg := m.Config
	s := 2 * cfg.DownsampleFactor()
	if enc, err = nn.ExpectedKeys(b, func(ctx *context.Context, g *Graph) {
		Encode(ctx, cfg, Zeros(g, shapes.Make(nn.DType, 1, cfg.InChannels, s, s)), nil)
	}); err != nil {
		return nil, nil, fmt.Errorf("taesd: building the encoder: %w", err)
	}
	if dec, err = nn.ExpectedKeys(b, func(ctx *context.Context, g *Graph) {
		Decode(ctx, cfg, Zeros(g, shapes.Make(nn.DType, 1, cfg.LatentChannels, 1, 1)), nil)
	}); err != nil {
		return nil, nil, fmt.Errorf("taesd: building the decoder: %w", err)
	}
	return enc, dec, nil
}

// ExpectedKeys returns every weight key of the encoder and the decoder with
// its shape.
func (m *Model) ExpectedKeys() (map[string][]int, error) {
	enc, dec, err := m.expected()
	if err != nil {
		return nil, err
	}
	for k, v := range dec {
		enc[k] = v
	}
	return enc, nil
}

// LoadWeights copies an AutoencoderTiny state dict (diffusers keys). Either
// half may be absent, but a half that is present must be complete and of the
// config's shapes.
func (m *Model) LoadWeights(src nn.Source) error {
	enc, dec, err := m.expected()
	if err != nil {
		return err
	}
	var encKeys, decKeys, other []string
	for _, k := range src.Keys() {
		switch _, inEnc := enc[k]; {
		case inEnc:
			encKeys = append(encKeys, k)
		case dec[k] != nil:
			decKeys = append(decKeys, k)
		default:
			other = append(other, k)
		}
	}
	if len(other) > 0 {
		return fmt.Errorf("taesd weights: %d tensors the config has no place for, e.g. %q", len(other), other[0])
	}
	if len(encKeys) == 0 && len(decKeys) == 0 {
		return fmt.Errorf("taesd weights: no encoder or decoder tensor")
	}
	for _, half := range []struct {
		name string
		want map[string][]int
		have []string
	}{{"encoder", enc, encKeys}, {"decoder", dec, decKeys}} {
		if len(half.have) == 0 {
			continue
		}
		if missing, _ := nn.CompareKeys(half.want, half.have); len(missing) > 0 {
			return fmt.Errorf("taesd weights: the %s lacks %d tensors, e.g. %q", half.name, len(missing), missing[0])
		}
	}
	all := map[string][]int{}
	for k, v := range enc {
		all[k] = v
	}
	for k, v := range dec {
		all[k] = v
	}
	ctx := context.New()
	if err := nn.Load(ctx, checkedSource{src, all}); err != nil {
		return fmt.Errorf("taesd weights: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Ctx = ctx
	m.hasEncoder, m.hasDecoder = len(encKeys) > 0, len(decKeys) > 0
	m.encode, m.decode = nil, nil
	return nil
}

// checkedSource fails on a tensor whose shape is not the config's.
type checkedSource struct {
	nn.Source
	want map[string][]int
}

func (s checkedSource) Float32(key string) ([]float32, []int, error) {
	v, shape, err := s.Source.Float32(key)
	if err != nil {
		return nil, nil, err
	}
	if w := s.want[key]; !equalInts(shape, w) {
		return nil, nil, fmt.Errorf("tensor %s has shape %v, the config needs %v", key, shape, w)
	}
	return v, shape, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// EncodeRun encodes images [B, 3, H, W] (NCHW, [-1, 1]) to latents.
func (m *Model) EncodeRun(image []float32, shape []int) ([]float32, []int, error) {
	if !m.hasEncoder {
		return nil, nil, fmt.Errorf("taesd: no encoder weights were loaded (a decoder-only file); give the taesd_encoder file too")
	}
	if err := check("image", image, shape, m.Config.InChannels); err != nil {
		return nil, nil, err
	}
	f := m.Config.DownsampleFactor()
	if shape[2]%f != 0 || shape[3]%f != 0 {
		return nil, nil, fmt.Errorf("taesd: image %dx%d is not a multiple of %d", shape[3], shape[2], f)
	}
	return m.run(&m.encode, Encode, "encode", image, shape)
}

// DecodeRun decodes latents [B, L, h, w] (the diffusion model's latents:
// TAESD decodes them with scaling_factor 1) to images [B, 3, 8h, 8w].
func (m *Model) DecodeRun(z []float32, shape []int) ([]float32, []int, error) {
	if !m.hasDecoder {
		return nil, nil, fmt.Errorf("taesd: no decoder weights were loaded; give the taesd_decoder file")
	}
	if err := check("latents", z, shape, m.Config.LatentChannels); err != nil {
		return nil, nil, err
	}
	return m.run(&m.decode, Decode, "decode", z, shape)
}

type graphFn func(ctx *context.Context, cfg Config, x *Node, taps Taps) *Node

func (m *Model) run(slot **context.Exec, fn graphFn, what string, x []float32, shape []int) (out []float32, outShape []int, err error) {
	m.mu.Lock()
	e := *slot
	if e == nil {
		b, berr := m.backend()
		if berr != nil {
			m.mu.Unlock()
			return nil, nil, berr
		}
		cfg := m.Config
		if e, err = context.NewExec(b, m.Ctx.Reuse(), func(ctx *context.Context, x *Node) *Node { return fn(ctx, cfg, x, nil) }); err != nil {
			m.mu.Unlock()
			return nil, nil, fmt.Errorf("taesd: %w", err)
		}
		*slot = e
	}
	m.mu.Unlock()
	err = nn.Try(func() {
		res, err := e.Exec(tensors.FromFlatDataAndDimensions(x, shape...))
		if err != nil {
			panic(err)
		}
		out = nn.Values(res[0])
		outShape = res[0].Shape().Dimensions
	})
	if err != nil {
		return nil, nil, fmt.Errorf("taesd %s of %v: %w", what, shape, err)
	}
	return out, outShape, nil
}

func check(what string, x []float32, shape []int, channels int) error {
	if len(shape) != 4 || shape[1] != channels {
		return fmt.Errorf("taesd: %s shape %v, want [B, %d, H, W]", what, shape, channels)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return fmt.Errorf("taesd: %s shape %v has a non-positive dimension", what, shape)
		}
		n *= d
	}
	if n != len(x) {
		return fmt.Errorf("taesd: %s has %d values, shape %v needs %d", what, len(x), shape, n)
	}
	return nil
}
