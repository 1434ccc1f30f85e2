// Package unet is diffusers' UNet2DConditionModel (the Stable Diffusion 1.x /
// 2.x noise predictor) on GoMLX graphs: sinusoidal time embedding, ResNet
// blocks, spatial transformers with self- and cross-attention, and the
// down/up samplers with skip connections. Its variables are named by the
// diffusers state-dict keys, so a diffusers checkpoint loads by direct copy.
package unet

import (
	"fmt"
	"math"
	"strconv"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Option modifies one Apply call.
type Option func(*applyOptions)

type applyOptions struct {
	taps    map[string]*Node
	control *Control
}

// Control is what a ControlNet adds to the U-Net (diffusers'
// down_block_additional_residuals and mid_block_additional_residual): Down
// holds one NCHW residual per skip connection, in the order the down path
// stores them (conv_in's output first), Mid one for the mid block's output.
type Control struct {
	Down []*Node
	Mid  *Node
}

// WithControl adds a ControlNet's residuals; nil adds nothing.
func WithControl(c *Control) Option {
	return func(o *applyOptions) { o.control = c }
}

// WithTaps makes Apply store intermediate outputs in taps, keyed by the
// diffusers module name whose forward hook would see them: "time_proj",
// "time_embedding", "conv_in", "down_blocks.<i>", "mid_block",
// "up_blocks.<i>", "conv_norm_out". Feature maps are NCHW like the model's
// output; vectors are [B,C].
func WithTaps(taps map[string]*Node) Option {
	return func(o *applyOptions) { o.taps = taps }
}

// Apply builds the U-Net forward pass on graph nodes. sample is NCHW
// [B,in_channels,H,W] of any size the down path can halve (CheckSize);
// timesteps is float32 (or integer) of shape [B], [1] or scalar (one value for
// the whole batch); encoderHiddenStates is [B,T,cross_attention_dim]. It
// returns the prediction, NCHW [B,out_channels,H,W]. The variables are read
// from (or, building a fresh model, created in) ctx.
func (m *Model) Apply(ctx *context.Context, sample, timesteps, encoderHiddenStates *Node, opts ...Option) *Node {
	var o applyOptions
	for _, f := range opts {
		f(&o)
	}
	tap := o.tapper()
	c, p := m.Config, m.plan
	ehs := encoderHiddenStates
	x, temb, skips := m.down(ctx, sample, timesteps, ehs, nil, tap)
	if ctl := o.control; ctl != nil {
		if len(ctl.Down) != len(skips) || ctl.Mid == nil {
			panic(fmt.Errorf("unet: a ControlNet gives %d down residuals (mid: %v); this U-Net has %d skip connections and needs a mid residual", len(ctl.Down), ctl.Mid != nil, len(skips)))
		}
		for i := range skips {
			skips[i] = Add(skips[i], TransposeAllDims(ctl.Down[i], 0, 2, 3, 1))
		}
		x = Add(x, TransposeAllDims(ctl.Mid, 0, 2, 3, 1))
	}
	eps := c.NormEps
	// diffusers (UNet2DConditionModel.forward): when a side is not a
	// multiple of the overall factor, each upsampler resizes to its skip
	// connection's size instead of doubling.
	dims, f := sample.Shape().Dimensions, c.DownFactor()
	toSkip := dims[2]%f != 0 || dims[3]%f != 0

	for i, blk := range p.up {
		bctx := ctx.In("up_blocks").In(strconv.Itoa(i))
		for j, r := range blk.resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			x = Concatenate([]*Node{x, skip}, -1)
			x = resnet(bctx.In("resnets").In(strconv.Itoa(j)), x, temb, r.out, p.groups, eps, 1)
			if blk.attn != nil {
				x = transformer(bctx.In("attentions").In(strconv.Itoa(j)), x, ehs, blk.attn, p.groups)
			}
		}
		if blk.sampler {
			out := x.Shape().Dim(-1)
			up := nn.Upsample2x(x)
			if next := skips[len(skips)-1].Shape().Dimensions; toSkip {
				up = upsampleNearest(x, next[1], next[2])
			}
			x = nn.Conv2D(bctx.In("upsamplers").In("0").In("conv"), up,
				nn.Conv2DOpts{Out: out, Kernel: 3, Pad: 1})
		}
		tap("up_blocks."+strconv.Itoa(i), x)
	}

	x = nn.GroupNorm(ctx.In("conv_norm_out"), x, p.groups, eps)
	tap("conv_norm_out", x)
	x = nn.Conv2D(ctx.In("conv_out"), nn.SiLU(x), nn.Conv2DOpts{Out: c.OutChannels, Kernel: c.ConvOutKernel, Pad: c.ConvOutKernel / 2})
	return TransposeAllDims(x, 0, 3, 1, 2)
}

func (o applyOptions) tapper() func(string, *Node) {
	return func(name string, x *Node) {
		if o.taps == nil {
			return
		}
		if x.Rank() == 4 {
			x = TransposeAllDims(x, 0, 3, 1, 2)
		}
		o.taps[name] = x
	}
}

// ApplyDown is the first half of Apply, as ControlNetModel runs it on its
// own copy of these modules: the time embedding, conv_in (plus hint, an
// NCHW [B,block_out_channels[0],H,W] tensor added to its output, when not
// nil), the down blocks and the mid block. It returns the skip connections
// and the mid block's output, NCHW.
func (m *Model) ApplyDown(ctx *context.Context, sample, timesteps, encoderHiddenStates, hint *Node) (skips []*Node, mid *Node) {
	x, _, skips := m.down(ctx, sample, timesteps, encoderHiddenStates, hint, func(string, *Node) {})
	for i, s := range skips {
		skips[i] = TransposeAllDims(s, 0, 3, 1, 2)
	}
	return skips, TransposeAllDims(x, 0, 3, 1, 2)
}

// down runs the time embedding, conv_in, the down blocks and the mid block
// on NCHW sample; it returns the NHWC mid output, the time embedding and
// the NHWC skip connections.
func (m *Model) down(ctx *context.Context, sample, timesteps, ehs, hint *Node, tap func(string, *Node)) (x, temb *Node, skips []*Node) {
	c, p := m.Config, m.plan
	dims := sample.Shape().Dimensions
	if len(dims) != 4 || dims[1] != c.InChannels {
		panic(fmt.Errorf("unet: sample must be [B,%d,H,W], got %v", c.InChannels, dims))
	}
	b := dims[0]
	if err := c.CheckSize(dims[2], dims[3]); err != nil {
		panic(err)
	}
	if ehs.Rank() != 3 || ehs.Shape().Dim(0) != b {
		panic(fmt.Errorf("unet: encoder_hidden_states must be [%d,T,D], got %v", b, ehs.Shape().Dimensions))
	}
	eps := c.NormEps

	x = TransposeAllDims(sample, 0, 2, 3, 1) // NHWC from here on
	if c.CenterInputSample {
		x = AddScalar(MulScalar(x, 2), -1)
	}
	t := timestepEmbedding(timesteps, b, p.c0, c.FlipSinToCos, c.FreqShift)
	tap("time_proj", t)
	temb = nn.Linear(ctx.In("time_embedding").In("linear_1"), t, p.timeEmbedDim, true)
	temb = nn.Linear(ctx.In("time_embedding").In("linear_2"), nn.SiLU(temb), p.timeEmbedDim, true)
	tap("time_embedding", temb)

	x = nn.Conv2D(ctx.In("conv_in"), x, nn.Conv2DOpts{Out: p.c0, Kernel: c.ConvInKernel, Pad: c.ConvInKernel / 2})
	if hint != nil {
		x = Add(x, TransposeAllDims(hint, 0, 2, 3, 1))
	}
	tap("conv_in", x)

	skips = []*Node{x}
	for i, blk := range p.down {
		bctx := ctx.In("down_blocks").In(strconv.Itoa(i))
		for j, r := range blk.resnets {
			x = resnet(bctx.In("resnets").In(strconv.Itoa(j)), x, temb, r.out, p.groups, eps, 1)
			if blk.attn != nil {
				x = transformer(bctx.In("attentions").In(strconv.Itoa(j)), x, ehs, blk.attn, p.groups)
			}
			skips = append(skips, x)
		}
		if blk.sampler {
			out := x.Shape().Dim(-1)
			x = nn.Conv2D(bctx.In("downsamplers").In("0").In("conv"), x,
				nn.Conv2DOpts{Out: out, Kernel: 3, Stride: 2, Pad: c.DownsamplePadding})
			skips = append(skips, x)
		}
		tap("down_blocks."+strconv.Itoa(i), x)
	}

	if p.mid != nil {
		mctx := ctx.In("mid_block")
		ch := x.Shape().Dim(-1)
		x = resnet(mctx.In("resnets").In("0"), x, temb, ch, p.groups, eps, c.MidBlockScaleFactor)
		x = transformer(mctx.In("attentions").In("0"), x, ehs, p.mid.attn, p.groups)
		x = resnet(mctx.In("resnets").In("1"), x, temb, ch, p.groups, eps, c.MidBlockScaleFactor)
		tap("mid_block", x)
	}
	return x, temb, skips
}

// upsampleNearest resizes NHWC x to h×w by nearest neighbour as PyTorch's
// F.interpolate(size=…, mode="nearest"): output index i reads input index
// min(floor(i·(in/out)), in−1), the scale computed in float32.
func upsampleNearest(x *Node, h, w int) *Node {
	dims := x.Shape().Dimensions
	if h == 2*dims[1] && w == 2*dims[2] {
		return nn.Upsample2x(x)
	}
	g := x.Graph()
	along := func(x *Node, axis, out int) *Node {
		idx := nearestIndices(x.Shape().Dim(axis), out)
		perm := []int{0, 1, 2, 3}
		perm[0], perm[axis] = axis, 0
		y := TransposeAllDims(x, perm...)
		y = Gather(y, Reshape(Const(g, idx), out, 1))
		return TransposeAllDims(y, perm...)
	}
	return along(along(x, 1, h), 2, w)
}

// nearestIndices are the input indices PyTorch's nearest interpolation reads
// for each of out outputs from in inputs (legacy "nearest", no scale given).
func nearestIndices(in, out int) []int32 {
	idx := make([]int32, out)
	scale := float32(in) / float32(out)
	for i := range idx {
		idx[i] = int32(min(int(math.Floor(float64(float32(i)*scale))), in-1))
	}
	return idx
}

// timestepEmbedding is diffusers' Timesteps module (get_timestep_embedding
// with max_period 10000): [B, dim] sinusoids of the timesteps, broadcast to
// the batch when one value is given.
func timestepEmbedding(t *Node, batch, dim int, flipSinToCos bool, shift float64) *Node {
	g := t.Graph()
	if t.DType() != nn.DType {
		t = ConvertDType(t, nn.DType)
	}
	n := t.Shape().Size()
	t = Reshape(t, n)
	switch {
	case n == 1 && batch > 1:
		t = BroadcastToDims(t, batch)
	case n != batch:
		panic(fmt.Errorf("unet: %d timesteps for a batch of %d: give one per sample or a single one", n, batch))
	}
	half := dim / 2
	args := Mul(InsertAxes(t, -1), Const(g, [][]float32{timestepFrequencies(half, shift)}))
	sin, cos := Sin(args), Cos(args)
	parts := []*Node{sin, cos}
	if flipSinToCos {
		parts = []*Node{cos, sin}
	}
	if dim%2 == 1 {
		parts = append(parts, Zeros(g, shapes.Make(nn.DType, batch, 1)))
	}
	return Concatenate(parts, -1)
}

// timestepFrequencies returns exp(-ln(10000)·i/(half-shift)) for i < half,
// rounded at each step to float32 as torch computes them, so that the
// sinusoids of timesteps near 1000 agree to float32 precision.
func timestepFrequencies(half int, shift float64) []float32 {
	f := make([]float32, half)
	logPeriod := float32(-math.Log(10000))
	den := float32(float64(half) - shift)
	for i := range f {
		e := logPeriod * float32(i) / den
		f[i] = float32(math.Exp(float64(e)))
	}
	return f
}

// resnet is ResnetBlock2D with the default time-embedding handling (added
// after conv1), on NHWC x and the [B,temb] time embedding.
func resnet(ctx *context.Context, x, temb *Node, out, groups int, eps, outScale float64) *Node {
	b := x.Shape().Dim(0)
	h := nn.SiLU(nn.GroupNorm(ctx.In("norm1"), x, groups, eps))
	h = nn.Conv2D(ctx.In("conv1"), h, nn.Conv2DOpts{Out: out, Kernel: 3, Pad: 1})
	tp := nn.Linear(ctx.In("time_emb_proj"), nn.SiLU(temb), out, true)
	h = Add(h, Reshape(tp, b, 1, 1, out))
	h = nn.SiLU(nn.GroupNorm(ctx.In("norm2"), h, groups, eps))
	h = nn.Conv2D(ctx.In("conv2"), h, nn.Conv2DOpts{Out: out, Kernel: 3, Pad: 1})
	if x.Shape().Dim(-1) != out {
		x = nn.Conv2D(ctx.In("conv_shortcut"), x, nn.Conv2DOpts{Out: out, Kernel: 1})
	}
	y := Add(x, h)
	if outScale != 1 {
		y = DivScalar(y, outScale)
	}
	return y
}

// transformer is Transformer2DModel on continuous NHWC input: GroupNorm
// (eps 1e-6, fixed in diffusers), proj_in, the BasicTransformerBlocks,
// proj_out and the residual. proj_in/out are 1×1 convolutions or, with
// use_linear_projection, linear layers: the same per-pixel map in NHWC.
func transformer(ctx *context.Context, x, ehs *Node, a *attnPlan, groups int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	if d := ehs.Shape().Dim(-1); d != a.crossDim {
		panic(fmt.Errorf("unet: encoder_hidden_states have %d features, the config's cross_attention_dim is %d", d, a.crossDim))
	}
	inner := a.heads * (c / a.heads)
	proj := func(name string, v *Node, out int) *Node {
		if a.linear {
			return nn.Linear(ctx.In(name), v, out, true)
		}
		return nn.Conv2D(ctx.In(name), v, nn.Conv2DOpts{Out: out, Kernel: 1})
	}
	y := proj("proj_in", nn.GroupNorm(ctx.In("norm"), x, groups, 1e-6), inner)
	y = Reshape(y, b, h*w, inner)
	for l := 0; l < a.layers; l++ {
		y = basicTransformerBlock(ctx.In("transformer_blocks").In(strconv.Itoa(l)), y, ehs, a)
	}
	y = proj("proj_out", Reshape(y, b, h, w, inner), c)
	return Add(y, x)
}

// basicTransformerBlock is diffusers' BasicTransformerBlock with pre-LayerNorm
// residuals: self-attention (cross-attention on the text when
// only_cross_attention), cross-attention, GEGLU feed-forward.
func basicTransformerBlock(ctx *context.Context, x, ehs *Node, a *attnPlan) *Node {
	n := nn.LayerNorm(ctx.In("norm1"), x, 1e-5)
	kv := n
	if a.onlyCross {
		kv = ehs
	}
	x = Add(x, attention(ctx.In("attn1"), n, kv, a.heads))
	x = Add(x, attention(ctx.In("attn2"), nn.LayerNorm(ctx.In("norm2"), x, 1e-5), ehs, a.heads))
	return Add(x, feedForward(ctx.In("ff"), nn.LayerNorm(ctx.In("norm3"), x, 1e-5)))
}

// attention is diffusers' Attention: bias-free q/k/v projections, scaled
// dot-product attention over heads, and the output projection to_out.0.
func attention(ctx *context.Context, x, kv *Node, heads int) *Node {
	c := x.Shape().Dim(-1)
	q := nn.Linear(ctx.In("to_q"), x, c, false)
	k := nn.Linear(ctx.In("to_k"), kv, c, false)
	v := nn.Linear(ctx.In("to_v"), kv, c, false)
	return nn.Linear(ctx.In("to_out").In("0"), nn.Attention(q, k, v, heads, false), c, true)
}

// feedForward is FeedForward with GEGLU (mult 4): net.0.proj gives the value
// and the gate halves, net.2 projects back.
func feedForward(ctx *context.Context, x *Node) *Node {
	c := x.Shape().Dim(-1)
	inner := 4 * c
	h := nn.Linear(ctx.In("net").In("0").In("proj"), x, 2*inner, true)
	value := SliceAxis(h, -1, AxisRange(0, inner))
	gate := SliceAxis(h, -1, AxisRange(inner, 2*inner))
	return nn.Linear(ctx.In("net").In("2"), Mul(value, nn.GELU(gate)), c, true)
}
