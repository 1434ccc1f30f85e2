package vae

import (
	"fmt"
	"strconv"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Every GroupNorm of the encoder and decoder (resnets, mid attention,
// conv_norm_out) uses eps 1e-6 (diffusers' Encoder/Decoder resnet_eps).
const normEps = 1e-6

// Posterior logvar is clamped to this range (DiagonalGaussianDistribution).
const logvarMin, logvarMax = -30.0, 20.0

// Taps collects intermediate outputs by diffusers module name
// ("encoder.down_blocks.1", "decoder.mid_block.attentions.0", "quant_conv"),
// as forward hooks on those modules would see them: NCHW, one per module
// output. Pass nil when no taps are wanted (nothing extra is built).
type Taps map[string]*Node

// module is a position in the model: the variable scope and the diffusers
// module name, which mirror each other, plus where to record taps.
type module struct {
	ctx  *context.Context
	name string
	taps Taps
	act  func(*Node) *Node
	// norms, when set, gives the GroupNorms their statistics and records
	// them (tiled runs); nil normalises each input over itself.
	norms *normPlan
}

func (m module) in(parts ...string) module {
	for _, p := range parts {
		m.ctx = m.ctx.In(p)
		if m.name == "" {
			m.name = p
		} else {
			m.name += "." + p
		}
	}
	return m
}

// tap records the NHWC x as the output of this module, in NCHW.
func (m module) tap(x *Node) *Node {
	if m.taps != nil {
		if x.Rank() == 4 {
			m.taps[m.name] = TransposeAllDims(x, 0, 3, 1, 2)
		} else {
			m.taps[m.name] = x
		}
	}
	return x
}

func root(ctx *context.Context, cfg Config, taps Taps) module {
	act, err := activation(cfg.ActFn)
	if err != nil {
		panic(err)
	}
	return module{ctx: ctx, taps: taps, act: act}
}

// Encode maps images [B, in_channels, H, W] (values in [-1, 1]) to the
// posterior's moments [B, 2·latent_channels, H/f, W/f] (f =
// DownsampleFactor): the mean and logvar concatenated on channels, after
// quant_conv. ctx is the scope holding "encoder" and "quant_conv".
func Encode(ctx *context.Context, cfg Config, image *Node, taps Taps) *Node {
	m := root(ctx, cfg, taps)
	x := TransposeAllDims(image, 0, 2, 3, 1)
	x = encoder(m.in("encoder"), cfg, x)
	if cfg.UseQuantConv {
		q := m.in("quant_conv")
		x = q.tap(nn.Conv2D(q.ctx, x, nn.Conv2DOpts{Out: 2 * cfg.LatentChannels, Kernel: 1}))
	}
	return TransposeAllDims(x, 0, 3, 1, 2)
}

// Decode maps latents z [B, latent_channels, h, w] (unscaled: see
// Config.Unscale) to images [B, out_channels, h·f, w·f].
func Decode(ctx *context.Context, cfg Config, z *Node, taps Taps) *Node {
	m := root(ctx, cfg, taps)
	x := TransposeAllDims(z, 0, 2, 3, 1)
	if cfg.UsePostQuantConv {
		q := m.in("post_quant_conv")
		x = q.tap(nn.Conv2D(q.ctx, x, nn.Conv2DOpts{Out: cfg.LatentChannels, Kernel: 1}))
	}
	x = decoder(m.in("decoder"), cfg, x)
	return TransposeAllDims(x, 0, 3, 1, 2)
}

// Posterior splits moments [B, 2L, h, w] into the diagonal Gaussian's mean
// and logvar (clamped to [-30, 20]) and std = exp(logvar/2), each [B, L, h, w].
func Posterior(moments *Node) (mean, logvar, std *Node) {
	l := moments.Shape().Dim(1) / 2
	mean = Slice(moments, AxisRange(), AxisRange(0, l))
	logvar = ClipScalar(Slice(moments, AxisRange(), AxisRange(l, 2*l)), logvarMin, logvarMax)
	std = Exp(MulScalar(logvar, 0.5))
	return mean, logvar, std
}

// Sample draws from the posterior as mean + std·eps; eps is standard normal
// noise the caller supplies (seeded, e.g. replaying torch's generator).
func Sample(mean, std, eps *Node) *Node {
	return Add(mean, Mul(std, eps))
}

func encoder(m module, cfg Config, x *Node) *Node {
	return encoderHead(m, cfg, encoderTail(m, cfg, x))
}

// encoderTail is the encoder up to the latent resolution: conv_in and every
// down block but the last (downsamplers included). It is local (convolutions
// and GroupNorms only), so EncodeTiled runs it in tiles.
func encoderTail(m module, cfg Config, x *Node) *Node {
	ch := cfg.BlockOutChannels
	x = m.in("conv_in").conv(x, ch[0], 3)
	for i := range len(ch) - 1 {
		b := m.in("down_blocks", strconv.Itoa(i))
		for j := range cfg.LayersPerBlock {
			x = b.in("resnets", strconv.Itoa(j)).resnet(x, ch[i], cfg.NormNumGroups)
		}
		x = b.in("downsamplers", "0").downsample(x)
		x = b.tap(x)
	}
	return x
}

// encoderHead is the rest, at the latent resolution: the last down block,
// the mid block (global attention), conv_norm_out and conv_out.
func encoderHead(m module, cfg Config, x *Node) *Node {
	ch := cfg.BlockOutChannels
	n := len(ch)
	groups := cfg.NormNumGroups
	b := m.in("down_blocks", strconv.Itoa(n-1))
	for j := range cfg.LayersPerBlock {
		x = b.in("resnets", strconv.Itoa(j)).resnet(x, ch[n-1], groups)
	}
	x = b.tap(x)
	x = m.in("mid_block").midBlock(x, cfg)
	x = m.in("conv_norm_out").groupNorm(x, groups)
	// conv_act is nn.SiLU in diffusers whatever act_fn says.
	x = m.in("conv_out").conv(nn.SiLU(x), 2*cfg.LatentChannels, 3)
	return m.tap(x)
}

func decoder(m module, cfg Config, x *Node) *Node {
	return decoderTail(m, cfg, decoderHead(m, cfg, x))
}

// decoderHead is the decoder at the latent resolution: conv_in, the mid
// block (global attention) and the first up block's resnets.
func decoderHead(m module, cfg Config, x *Node) *Node {
	ch := cfg.BlockOutChannels
	n := len(ch)
	x = m.in("conv_in").conv(x, ch[n-1], 3)
	x = m.in("mid_block").midBlock(x, cfg)
	b := m.in("up_blocks", "0")
	for j := range cfg.LayersPerBlock + 1 {
		x = b.in("resnets", strconv.Itoa(j)).resnet(x, ch[n-1], cfg.NormNumGroups)
	}
	return x
}

// decoderTail is the rest: the first up block's upsampler, the other up
// blocks, conv_norm_out and conv_out. It is local (convolutions, GroupNorms,
// upsampling), so DecodeTiled runs it in tiles.
func decoderTail(m module, cfg Config, x *Node) *Node {
	ch := cfg.BlockOutChannels
	n := len(ch)
	groups := cfg.NormNumGroups
	// up_blocks run from the deepest level up: block i has ch[n-1-i] channels.
	for i := range n {
		b := m.in("up_blocks", strconv.Itoa(i))
		out := ch[n-1-i]
		if i > 0 {
			for j := range cfg.LayersPerBlock + 1 {
				x = b.in("resnets", strconv.Itoa(j)).resnet(x, out, groups)
			}
		}
		if i < n-1 {
			u := b.in("upsamplers", "0")
			x = u.tap(u.in("conv").conv(nn.Upsample2x(x), out, 3))
		}
		x = b.tap(x)
	}
	x = m.in("conv_norm_out").groupNorm(x, groups)
	x = m.in("conv_out").conv(nn.SiLU(x), cfg.OutChannels, 3)
	return m.tap(x)
}

// conv is a stride-1 "same" convolution (kernel 3 pads by 1, kernel 1 by 0).
func (m module) conv(x *Node, out, kernel int) *Node {
	return m.tap(nn.Conv2D(m.ctx, x, nn.Conv2DOpts{Out: out, Kernel: kernel, Pad: kernel / 2}))
}

func (m module) groupNorm(x *Node, groups int) *Node {
	if m.norms != nil {
		return m.tap(m.norms.apply(m.ctx, x, groups))
	}
	return m.tap(nn.GroupNorm(m.ctx, x, groups, normEps))
}

// resnet is ResnetBlock2D without a time embedding, output_scale_factor 1.
func (m module) resnet(x *Node, out, groups int) *Node {
	h := m.act(m.in("norm1").groupNorm(x, groups))
	h = m.in("conv1").conv(h, out, 3)
	h = m.act(m.in("norm2").groupNorm(h, groups))
	h = m.in("conv2").conv(h, out, 3)
	if x.Shape().Dim(-1) != out {
		x = m.in("conv_shortcut").conv(x, out, 1)
	}
	return m.tap(Add(x, h))
}

// downsample is Downsample2D with padding 0 as the VAE encoder builds it:
// pad one zero row at the bottom and one column at the right, then a 3×3
// stride-2 convolution without padding, so an H×W input gives ⌊H/2⌋×⌊W/2⌋.
func (m module) downsample(x *Node) *Node {
	x = padBottomRight(x)
	c := x.Shape().Dim(-1)
	return m.tap(nn.Conv2D(m.in("conv").ctx, x, nn.Conv2DOpts{Out: c, Kernel: 3, Stride: 2}))
}

// padBottomRight appends a zero row and a zero column to NHWC x, with
// Concatenate since the pure-Go backend has no Pad.
func padBottomRight(x *Node) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	x = Concatenate([]*Node{x, Zeros(x.Graph(), shapes.Make(x.DType(), b, 1, w, c))}, 1)
	return Concatenate([]*Node{x, Zeros(x.Graph(), shapes.Make(x.DType(), b, h+1, 1, c))}, 2)
}

// midBlock is UNetMidBlock2D: resnet, optional attention, resnet.
func (m module) midBlock(x *Node, cfg Config) *Node {
	c := x.Shape().Dim(-1)
	x = m.in("resnets", "0").resnet(x, c, cfg.NormNumGroups)
	if cfg.MidBlockAddAttention {
		x = m.in("attentions", "0").attention(x, cfg.NormNumGroups)
	}
	x = m.in("resnets", "1").resnet(x, c, cfg.NormNumGroups)
	return m.tap(x)
}

// attention is the mid block's Attention: GroupNorm, one head spanning all
// channels over the H·W positions, to_out, and the residual
// (rescale_output_factor 1).
func (m module) attention(x *Node, groups int) *Node {
	d := x.Shape().Dimensions
	b, c := d[0], d[3]
	h := Reshape(x, b, d[1]*d[2], c)
	h = nn.GroupNorm(m.in("group_norm").ctx, h, groups, normEps)
	q := nn.Linear(m.in("to_q").ctx, h, c, true)
	k := nn.Linear(m.in("to_k").ctx, h, c, true)
	v := nn.Linear(m.in("to_v").ctx, h, c, true)
	h = nn.Attention(q, k, v, 1, false)
	h = nn.Linear(m.in("to_out", "0").ctx, h, c, true)
	return m.tap(Add(x, Reshape(h, d...)))
}

// activation returns diffusers' get_activation for the resnets' act_fn.
func activation(name string) (func(*Node) *Node, error) {
	switch name {
	case "silu", "swish":
		return nn.SiLU, nil
	case "gelu":
		return nn.GELU, nil
	case "relu":
		return func(x *Node) *Node { return Max(x, ZerosLike(x)) }, nil
	case "mish":
		return func(x *Node) *Node { return Mul(x, Tanh(Softplus(x))) }, nil
	}
	return nil, fmt.Errorf("vae config: act_fn %q is not supported (silu, swish, gelu, relu, mish)", name)
}
