// Package controlnet is diffusers' ControlNetModel on GoMLX graphs: a copy
// of the U-Net's encoder half that also reads a control image (edges, depth,
// a pose, a scribble) through a small convolutional embedding, and returns
// the residuals the U-Net adds to its skip connections and mid block
// (unet.Control). Weights are read under diffusers keys (weights.OpenControlNet
// converts the original layout). The preprocessors that need no model
// (canny, scribble, invert) live here too.
package controlnet

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/pyjson"
	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/weights"
)

// Config is a ControlNetModel config.json: the U-Net encoder's fields (read
// as a unet.Config, whose unused decoder half mirrors the encoder) and the
// conditioning embedding's.
type Config struct {
	UNet                             unet.Config
	ConditioningChannels             int    `json:"conditioning_channels"`
	ConditioningEmbeddingOutChannels []int  `json:"conditioning_embedding_out_channels"`
	ChannelOrder                     string `json:"controlnet_conditioning_channel_order"`
	GlobalPoolConditions             bool   `json:"global_pool_conditions"`
}

// ParseConfig reads a ControlNetModel config.json, with the class defaults
// (diffusers v0.29.2) for absent fields.
func ParseConfig(data []byte) (Config, error) {
	c := Config{ConditioningChannels: 3, ConditioningEmbeddingOutChannels: []int{16, 32, 96, 256}, ChannelOrder: "rgb"}
	var raw map[string]any
	if err := json.Unmarshal(pyjson.Sanitize(data), &raw); err != nil {
		return Config{}, fmt.Errorf("controlnet config: %w", err)
	}
	if err := json.Unmarshal(pyjson.Sanitize(data), &c); err != nil {
		return Config{}, fmt.Errorf("controlnet config: %w", err)
	}
	if cls, _ := raw["_class_name"].(string); cls != "" && cls != "ControlNetModel" {
		return Config{}, fmt.Errorf("controlnet config: _class_name is %q, not ControlNetModel", cls)
	}
	// The encoder as a U-Net config: its up blocks mirror the down blocks
	// (they are never built).
	down := unet.DefaultConfig().DownBlockTypes
	if d, ok := raw["down_block_types"].([]any); ok {
		down = nil
		for _, v := range d {
			s, _ := v.(string)
			down = append(down, s)
		}
	}
	var up []string
	for _, d := range slices.Backward(down) {
		up = append(up, strings.Replace(d, "Down", "Up", 1))
	}
	raw["up_block_types"] = up
	if _, ok := raw["out_channels"]; !ok {
		raw["out_channels"] = raw["in_channels"]
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return Config{}, fmt.Errorf("controlnet config: %w", err)
	}
	if c.UNet, err = unet.ParseConfig(b); err != nil {
		return Config{}, fmt.Errorf("controlnet %w", err)
	}
	switch {
	case c.ConditioningChannels <= 0:
		return Config{}, fmt.Errorf("controlnet config: conditioning_channels must be positive, got %d", c.ConditioningChannels)
	case len(c.ConditioningEmbeddingOutChannels) == 0 || slices.ContainsFunc(c.ConditioningEmbeddingOutChannels, func(n int) bool { return n <= 0 }):
		return Config{}, fmt.Errorf("controlnet config: conditioning_embedding_out_channels %v must be positive channel counts", c.ConditioningEmbeddingOutChannels)
	case c.ChannelOrder != "rgb" && c.ChannelOrder != "bgr":
		return Config{}, fmt.Errorf("controlnet config: controlnet_conditioning_channel_order %q: want rgb or bgr", c.ChannelOrder)
	}
	return c, nil
}

// ImageFactor is how much larger than the latents the control image is:
// the conditioning embedding halves it once per channel step.
func (c Config) ImageFactor() int { return 1 << (len(c.ConditioningEmbeddingOutChannels) - 1) }

// Model is a ControlNetModel: its config and the context holding its weights
// under diffusers keys.
type Model struct {
	Config Config
	Ctx    *context.Context

	enc   *unet.Model // the encoder half's architecture; its variables live in Ctx
	mu    sync.Mutex
	execs map[backends.Backend]*context.Exec
}

// New validates cfg and returns a model without weights (see LoadWeights).
func New(cfg Config) (*Model, error) {
	enc, err := unet.New(cfg.UNet)
	if err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Ctx: context.New(), enc: enc, execs: map[backends.Backend]*context.Exec{}}, nil
}

// Open reads a ControlNet from a diffusers folder or a single file (see
// weights.OpenControlNet; unetConfig is the base model's U-Net config, which
// a single file needs).
func Open(path string, unetConfig []byte) (*Model, error) {
	wm, err := weights.OpenControlNet(path, unetConfig)
	if err != nil {
		return nil, err
	}
	defer wm.Close()
	c := wm.Components[weights.ControlNet]
	cfg, err := ParseConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.LoadWeights(c.Source); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Embed is ControlNetConditioningEmbedding: conv_in and SiLU, then per step
// of conditioning_embedding_out_channels a 3×3 convolution and a strided one
// (each followed by SiLU), and conv_out to the U-Net's first block width.
// cond is NCHW [B,conditioning_channels,H,W] in [0,1]; the result is NCHW
// [B,block_out_channels[0],H/ImageFactor,W/ImageFactor].
func (m *Model) Embed(ctx *context.Context, cond *Node) *Node {
	c := m.Config
	ectx := ctx.In("controlnet_cond_embedding")
	ch := c.ConditioningEmbeddingOutChannels
	x := TransposeAllDims(cond, 0, 2, 3, 1)
	x = nn.SiLU(nn.Conv2D(ectx.In("conv_in"), x, nn.Conv2DOpts{Out: ch[0], Kernel: 3, Pad: 1}))
	for i := 0; i < len(ch)-1; i++ {
		x = nn.SiLU(nn.Conv2D(ectx.In("blocks").In(strconv.Itoa(2*i)), x, nn.Conv2DOpts{Out: ch[i], Kernel: 3, Pad: 1}))
		x = nn.SiLU(nn.Conv2D(ectx.In("blocks").In(strconv.Itoa(2*i+1)), x, nn.Conv2DOpts{Out: ch[i+1], Kernel: 3, Pad: 1, Stride: 2}))
	}
	x = nn.Conv2D(ectx.In("conv_out"), x, nn.Conv2DOpts{Out: c.UNet.BlockOutChannels[0], Kernel: 3, Pad: 1})
	return TransposeAllDims(x, 0, 3, 1, 2)
}

// Apply is ControlNetModel.forward at conditioning scale 1 (see Scales):
// sample, timesteps and encoderHiddenStates as for unet.Model.Apply, cond
// the control image NCHW in [0,1] at ImageFactor times the latent size
// (RGB; a "bgr" model gets its channels flipped here). The residuals are
// NCHW, one per U-Net skip connection and one for the mid block.
func (m *Model) Apply(ctx *context.Context, sample, timesteps, encoderHiddenStates, cond *Node) *unet.Control {
	c := m.Config
	dims, cd := sample.Shape().Dimensions, cond.Shape().Dimensions
	f := c.ImageFactor()
	if len(cd) != 4 || cd[0] != dims[0] || cd[1] != c.ConditioningChannels || cd[2] != dims[2]*f || cd[3] != dims[3]*f {
		panic(fmt.Errorf("controlnet: the control image must be [%d,%d,%d,%d] for a sample %v, got %v",
			dims[0], c.ConditioningChannels, dims[2]*f, dims[3]*f, dims, cd))
	}
	if c.ChannelOrder == "bgr" {
		cond = Reverse(cond, 1)
	}
	skips, mid := m.enc.ApplyDown(ctx, sample, timesteps, encoderHiddenStates, m.Embed(ctx, cond))
	out := &unet.Control{}
	for i, s := range skips {
		out.Down = append(out.Down, m.zeroConv(ctx.In("controlnet_down_blocks").In(strconv.Itoa(i)), s))
	}
	out.Mid = m.zeroConv(ctx.In("controlnet_mid_block"), mid)
	if c.GlobalPoolConditions {
		for i, d := range out.Down {
			out.Down[i] = ReduceAndKeep(d, ReduceMean, 2, 3)
		}
		out.Mid = ReduceAndKeep(out.Mid, ReduceMean, 2, 3)
	}
	return out
}

// zeroConv is a 1×1 convolution (zero-initialised in training) on NCHW x.
func (m *Model) zeroConv(ctx *context.Context, x *Node) *Node {
	y := nn.Conv2D(ctx, TransposeAllDims(x, 0, 2, 3, 1), nn.Conv2DOpts{Out: x.Shape().Dim(1), Kernel: 1})
	return TransposeAllDims(y, 0, 3, 1, 2)
}

// Scales are the per-residual conditioning scales (down residuals, then the
// mid one): scale for each, or with guessMode diffusers' logspace(-1, 0)
// ramp from the shallowest to the mid block.
func Scales(n int, scale float64, guessMode bool) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale
		if guessMode && n > 1 {
			s[i] = scale * math.Pow(10, -1+float64(i)/float64(n-1))
		}
	}
	return s
}

// LoadWeights copies src (diffusers keys) into the model's context and
// checks it against the config: missing, unexpected and misshapen weights
// are named in the error.
func (m *Model) LoadWeights(src nn.Source) error {
	if err := nn.Load(m.Ctx, src); err != nil {
		return fmt.Errorf("controlnet: loading weights: %w", err)
	}
	expected, err := m.ExpectedKeys()
	if err != nil {
		return err
	}
	if problems := nn.WeightMismatch(m.Ctx, expected, src.Keys()); problems != "" {
		return fmt.Errorf("controlnet: the weights do not match the config (wrong config.json, or not a ControlNet for this U-Net): %s", problems)
	}
	return nil
}

var (
	keysBackend     backends.Backend
	keysBackendErr  error
	keysBackendOnce sync.Once
)

// ExpectedKeys returns every weight key the model reads and its shape.
func (m *Model) ExpectedKeys() (map[string][]int, error) {
	keysBackendOnce.Do(func() { keysBackend, keysBackendErr = nn.NewBackend("go") })
	if keysBackendErr != nil {
		return nil, fmt.Errorf("controlnet: %w", keysBackendErr)
	}
	c := m.Config.UNet
	f := c.DownFactor()
	cross := c.CrossAttentionDim[0]
	keys, err := nn.ExpectedKeys(keysBackend, func(ctx *context.Context, g *Graph) {
		sample := Parameter(g, "sample", shapes.Make(nn.DType, 1, c.InChannels, f, f))
		t := Parameter(g, "timesteps", shapes.Make(nn.DType, 1))
		ehs := Parameter(g, "encoder_hidden_states", shapes.Make(nn.DType, 1, 1, cross))
		k := m.Config.ImageFactor()
		cond := Parameter(g, "cond", shapes.Make(nn.DType, 1, m.Config.ConditioningChannels, f*k, f*k))
		m.Apply(ctx, sample, t, ehs, cond)
	})
	if err != nil {
		return nil, fmt.Errorf("controlnet: building the graph: %w", err)
	}
	return keys, nil
}

// Residuals are a ControlNet's outputs on the host, NCHW: one per U-Net
// skip connection, then the mid block's.
type Residuals struct {
	Values [][]float32
	Shapes [][]int
}

// Run evaluates the ControlNet on host data: sample NCHW [B,C,H,W], one
// timestep per sample or one for all, encoder hidden states [B,T,D] and the
// control image cond NCHW [B,conditioning_channels,H·f,W·f] in [0,1]. The
// residuals are at scale 1. One graph is compiled per backend and input
// shape and reused.
func (m *Model) Run(backend backends.Backend, sample []float32, sampleShape []int, timesteps []float32,
	ehs []float32, ehsShape []int, cond []float32, condShape []int) (*Residuals, error) {
	for _, x := range []struct {
		name string
		v    []float32
		s    []int
		rank int
	}{{"sample", sample, sampleShape, 4}, {"encoder_hidden_states", ehs, ehsShape, 3}, {"control image", cond, condShape, 4}} {
		if len(x.s) != x.rank || prod(x.s) != len(x.v) {
			return nil, fmt.Errorf("controlnet: %s shape %v does not hold %d values", x.name, x.s, len(x.v))
		}
	}
	m.mu.Lock()
	e := m.execs[backend]
	if e == nil {
		err := nn.Try(func() {
			e = context.MustNewExec(backend, m.Ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
				c := m.Apply(ctx, in[0], in[1], in[2], in[3])
				return append(slices.Clone(c.Down), c.Mid)
			})
		})
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("controlnet: %w", err)
		}
		m.execs[backend] = e
	}
	m.mu.Unlock()
	r := &Residuals{}
	err := nn.Try(func() {
		res := e.MustExec(
			tensors.FromFlatDataAndDimensions(sample, sampleShape...),
			tensors.FromFlatDataAndDimensions(timesteps, len(timesteps)),
			tensors.FromFlatDataAndDimensions(ehs, ehsShape...),
			tensors.FromFlatDataAndDimensions(cond, condShape...))
		for _, t := range res {
			r.Values = append(r.Values, nn.Values(t))
			r.Shapes = append(r.Shapes, t.Shape().Dimensions)
			t.FinalizeAll()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("controlnet: %w", err)
	}
	return r, nil
}

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
