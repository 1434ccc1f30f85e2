package unet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// Config is the subset of diffusers' UNet2DConditionModel config.json that
// Stable Diffusion 1.x/2.x U-Nets use. Absent fields take the defaults of the
// Python class (diffusers v0.29.2); fields this port does not implement are
// parsed only to be rejected by Validate with an error naming them.
type Config struct {
	SampleSize        int      `json:"sample_size"`
	InChannels        int      `json:"in_channels"`
	OutChannels       int      `json:"out_channels"`
	CenterInputSample bool     `json:"center_input_sample"`
	FlipSinToCos      bool     `json:"flip_sin_to_cos"`
	FreqShift         float64  `json:"freq_shift"`
	DownBlockTypes    []string `json:"down_block_types"`
	// MidBlockType is nil for a U-Net without a mid block (config null).
	MidBlockType        *string  `json:"mid_block_type"`
	UpBlockTypes        []string `json:"up_block_types"`
	OnlyCrossAttention  BoolList `json:"only_cross_attention"`
	BlockOutChannels    []int    `json:"block_out_channels"`
	LayersPerBlock      IntList  `json:"layers_per_block"`
	DownsamplePadding   int      `json:"downsample_padding"`
	MidBlockScaleFactor float64  `json:"mid_block_scale_factor"`
	ActFn               string   `json:"act_fn"`
	// NormNumGroups is nil when the config says null (unsupported).
	NormNumGroups             *int    `json:"norm_num_groups"`
	NormEps                   float64 `json:"norm_eps"`
	CrossAttentionDim         IntList `json:"cross_attention_dim"`
	TransformerLayersPerBlock IntList `json:"transformer_layers_per_block"`
	// AttentionHeadDim is, for historical reasons, the number of attention
	// heads of each block (diffusers issue 2011): head size = channels / it.
	AttentionHeadDim IntList `json:"attention_head_dim"`
	// NumAttentionHeads, when set, takes precedence over AttentionHeadDim.
	// (diffusers v0.29.2 itself still refuses it; later configs may carry it.)
	NumAttentionHeads    IntList `json:"num_attention_heads"`
	UseLinearProjection  bool    `json:"use_linear_projection"`
	UpcastAttention      bool    `json:"upcast_attention"` // a no-op in float32
	ResnetTimeScaleShift string  `json:"resnet_time_scale_shift"`
	TimeEmbeddingType    string  `json:"time_embedding_type"`
	TimeEmbeddingDim     *int    `json:"time_embedding_dim"`
	ConvInKernel         int     `json:"conv_in_kernel"`
	ConvOutKernel        int     `json:"conv_out_kernel"`
	AttentionType        string  `json:"attention_type"`
	Dropout              float64 `json:"dropout"` // inference ignores it

	// Features of other model families (SDXL, Kandinsky, LCM, …): Validate
	// rejects any non-default value.
	DualCrossAttention               bool            `json:"dual_cross_attention"`
	ClassEmbedType                   *string         `json:"class_embed_type"`
	NumClassEmbeds                   *int            `json:"num_class_embeds"`
	ClassEmbeddingsConcat            bool            `json:"class_embeddings_concat"`
	AdditionEmbedType                *string         `json:"addition_embed_type"`
	EncoderHidDim                    *int            `json:"encoder_hid_dim"`
	EncoderHidDimType                *string         `json:"encoder_hid_dim_type"`
	TimeCondProjDim                  *int            `json:"time_cond_proj_dim"`
	TimeEmbeddingActFn               *string         `json:"time_embedding_act_fn"`
	TimestepPostAct                  *string         `json:"timestep_post_act"`
	CrossAttentionNorm               *string         `json:"cross_attention_norm"`
	ReverseTransformerLayersPerBlock json.RawMessage `json:"reverse_transformer_layers_per_block"`
}

// DefaultConfig returns the defaults of diffusers' UNet2DConditionModel
// constructor, which are the SD 1.x U-Net except cross_attention_dim (1280
// there, 768 in SD 1.x configs).
func DefaultConfig() Config {
	mid := "UNetMidBlock2DCrossAttn"
	groups := 32
	return Config{
		InChannels:                4,
		OutChannels:               4,
		FlipSinToCos:              true,
		DownBlockTypes:            []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:              &mid,
		UpBlockTypes:              []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		OnlyCrossAttention:        BoolList{false},
		BlockOutChannels:          []int{320, 640, 1280, 1280},
		LayersPerBlock:            IntList{2},
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ActFn:                     "silu",
		NormNumGroups:             &groups,
		NormEps:                   1e-5,
		CrossAttentionDim:         IntList{1280},
		TransformerLayersPerBlock: IntList{1},
		AttentionHeadDim:          IntList{8},
		ResnetTimeScaleShift:      "default",
		TimeEmbeddingType:         "positional",
		ConvInKernel:              3,
		ConvOutKernel:             3,
		AttentionType:             "default",
	}
}

// ParseConfig reads a config.json (Python's NaN/Infinity tolerated), applies
// the class defaults to absent fields and validates the result.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(pyjson.Sanitize(data), &c); err != nil {
		return Config{}, fmt.Errorf("unet config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks that the config describes a U-Net this package can build,
// naming the offending field otherwise.
func (c Config) Validate() error {
	_, err := c.plan()
	return err
}

// IntList is a config value that is either one integer (the same for every
// block) or a list with one entry per block.
type IntList []int

// UnmarshalJSON accepts an integer, a list of integers or null.
func (l *IntList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var v []int
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("want an integer or a list of integers: %w", err)
		}
		*l = v
		return nil
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want an integer or a list of integers: %w", err)
	}
	*l = IntList{v}
	return nil
}

// MarshalJSON writes one entry as a scalar, as diffusers writes a value
// shared by every block: diffusers refuses a list shorter than the blocks.
func (l IntList) MarshalJSON() ([]byte, error) { return marshalPerBlock([]int(l)) }

// MarshalJSON writes one entry as a scalar (see IntList.MarshalJSON).
func (l BoolList) MarshalJSON() ([]byte, error) { return marshalPerBlock([]bool(l)) }

func marshalPerBlock[T any](v []T) ([]byte, error) {
	switch len(v) {
	case 0:
		return []byte("null"), nil
	case 1:
		return json.Marshal(v[0])
	}
	return json.Marshal(v)
}

// BoolList is a config value that is either one bool or one per block.
type BoolList []bool

// UnmarshalJSON accepts a bool, a list of bools or null.
func (l *BoolList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var v []bool
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("want a bool or a list of bools: %w", err)
		}
		*l = v
		return nil
	}
	var v bool
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want a bool or a list of bools: %w", err)
	}
	*l = BoolList{v}
	return nil
}

// perBlock expands a one-or-per-block value to n entries.
func perBlock[T any](field string, v []T, n int) ([]T, error) {
	switch len(v) {
	case n:
		return v, nil
	case 1:
		out := make([]T, n)
		for i := range out {
			out[i] = v[0]
		}
		return out, nil
	case 0:
		return nil, fmt.Errorf("unet config: %s is null", field)
	}
	return nil, fmt.Errorf("unet config: %s has %d entries, want 1 or one per block (%d)", field, len(v), n)
}

// The shape of the network, derived once from a Config: what Apply builds and
// FLOPs counts.
type plan struct {
	c0           int // conv_in output channels
	timeEmbedDim int // time_embedding output
	groups       int
	down, up     []blockPlan
	mid          *blockPlan
}

type blockPlan struct {
	resnets []resnetPlan
	attn    *attnPlan // nil for DownBlock2D / UpBlock2D
	sampler bool      // downsampler (down blocks) or upsampler (up blocks)
}

// resnetPlan is one ResnetBlock2D; skip is the channel count concatenated
// from the down path before it (up blocks only).
type resnetPlan struct{ in, skip, out int }

type attnPlan struct {
	heads, layers, crossDim int
	onlyCross, linear       bool
}

func stripUNetRes(s string) string { return strings.TrimPrefix(s, "UNetRes") }

func (c Config) plan() (*plan, error) {
	bad := func(format string, a ...any) error { return fmt.Errorf("unet config: "+format, a...) }
	switch {
	case c.DualCrossAttention:
		return nil, bad("dual_cross_attention is not supported (Versatile Diffusion)")
	case c.ClassEmbedType != nil || c.NumClassEmbeds != nil || c.ClassEmbeddingsConcat:
		return nil, bad("class_embed_type/num_class_embeds are not supported (class-conditioned U-Nets are out of scope)")
	case c.AdditionEmbedType != nil:
		return nil, bad("addition_embed_type %q is not supported (SDXL-style added conditioning is out of scope)", *c.AdditionEmbedType)
	case c.EncoderHidDim != nil || c.EncoderHidDimType != nil:
		return nil, bad("encoder_hid_dim/encoder_hid_dim_type are not supported")
	case c.TimeCondProjDim != nil:
		return nil, bad("time_cond_proj_dim is not supported (LCM-style guidance embedding)")
	case c.TimeEmbeddingActFn != nil:
		return nil, bad("time_embedding_act_fn is not supported")
	case c.TimestepPostAct != nil:
		return nil, bad("timestep_post_act is not supported")
	case c.CrossAttentionNorm != nil:
		return nil, bad("cross_attention_norm is not supported")
	case len(c.ReverseTransformerLayersPerBlock) > 0 && string(c.ReverseTransformerLayersPerBlock) != "null":
		return nil, bad("reverse_transformer_layers_per_block is not supported (asymmetric SDXL-style U-Nets)")
	case c.TimeEmbeddingType != "positional":
		return nil, bad("time_embedding_type %q is not supported, only \"positional\"", c.TimeEmbeddingType)
	case c.ActFn != "silu" && c.ActFn != "swish":
		return nil, bad("act_fn %q is not supported, only \"silu\"", c.ActFn)
	case c.ResnetTimeScaleShift != "default":
		return nil, bad("resnet_time_scale_shift %q is not supported, only \"default\"", c.ResnetTimeScaleShift)
	case c.AttentionType != "default":
		return nil, bad("attention_type %q is not supported, only \"default\"", c.AttentionType)
	case c.NormNumGroups == nil || *c.NormNumGroups <= 0:
		return nil, bad("norm_num_groups must be a positive integer")
	case c.NormEps <= 0:
		return nil, bad("norm_eps must be positive, got %g", c.NormEps)
	case c.InChannels <= 0 || c.OutChannels <= 0:
		return nil, bad("in_channels and out_channels must be positive, got %d and %d", c.InChannels, c.OutChannels)
	case c.ConvInKernel <= 0 || c.ConvInKernel%2 == 0:
		return nil, bad("conv_in_kernel must be odd and positive, got %d", c.ConvInKernel)
	case c.ConvOutKernel <= 0 || c.ConvOutKernel%2 == 0:
		return nil, bad("conv_out_kernel must be odd and positive, got %d", c.ConvOutKernel)
	case c.DownsamplePadding <= 0:
		return nil, bad("downsample_padding %d is not supported, only ≥ 1", c.DownsamplePadding)
	case c.MidBlockScaleFactor == 0:
		return nil, bad("mid_block_scale_factor must not be 0")
	case len(c.BlockOutChannels) == 0:
		return nil, bad("block_out_channels is empty")
	}
	n := len(c.BlockOutChannels)
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return nil, bad("down_block_types (%d), up_block_types (%d) and block_out_channels (%d) must have the same length",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 {
			return nil, bad("block_out_channels[%d] = %d must be positive", i, ch)
		}
	}
	headsField, headsList := "attention_head_dim", c.AttentionHeadDim
	if c.NumAttentionHeads != nil {
		headsField, headsList = "num_attention_heads", c.NumAttentionHeads
	}
	heads, err := perBlock(headsField, headsList, n)
	if err != nil {
		return nil, err
	}
	layers, err := perBlock("layers_per_block", c.LayersPerBlock, n)
	if err != nil {
		return nil, err
	}
	tlayers, err := perBlock("transformer_layers_per_block", c.TransformerLayersPerBlock, n)
	if err != nil {
		return nil, err
	}
	cross, err := perBlock("cross_attention_dim", c.CrossAttentionDim, n)
	if err != nil {
		return nil, err
	}
	only, err := perBlock("only_cross_attention", c.OnlyCrossAttention, n)
	if err != nil {
		return nil, err
	}
	groups := *c.NormNumGroups
	checkGroups := func(ch int, where string) error {
		if ch%groups != 0 {
			return bad("norm_num_groups %d does not divide the %d channels of %s", groups, ch, where)
		}
		return nil
	}
	attn := func(i int, kind string) (*attnPlan, error) {
		switch {
		case heads[i] <= 0:
			return nil, bad("%s[%d] = %d must be positive", headsField, i, heads[i])
		case c.BlockOutChannels[i] < heads[i]:
			return nil, bad("%s[%d] = %d heads exceed the %d channels of the block", headsField, i, heads[i], c.BlockOutChannels[i])
		case tlayers[i] <= 0:
			return nil, bad("transformer_layers_per_block[%d] = %d must be positive", i, tlayers[i])
		case cross[i] <= 0:
			return nil, bad("cross_attention_dim[%d] = %d must be positive", i, cross[i])
		}
		return &attnPlan{heads: heads[i], layers: tlayers[i], crossDim: cross[i], onlyCross: only[i] && kind != "mid", linear: c.UseLinearProjection}, nil
	}

	p := &plan{c0: c.BlockOutChannels[0], groups: groups}
	p.timeEmbedDim = 4 * p.c0
	if c.TimeEmbeddingDim != nil {
		p.timeEmbedDim = *c.TimeEmbeddingDim
	}
	if p.timeEmbedDim <= 0 {
		return nil, bad("time_embedding_dim must be positive")
	}
	if err := checkGroups(p.c0, "conv_norm_out"); err != nil {
		return nil, err
	}
	skips := []int{p.c0} // channels of the tensors the down path stores
	ch := p.c0
	for i, t := range c.DownBlockTypes {
		if layers[i] <= 0 {
			return nil, bad("layers_per_block[%d] = %d must be positive", i, layers[i])
		}
		var b blockPlan
		switch stripUNetRes(t) {
		case "CrossAttnDownBlock2D":
			if b.attn, err = attn(i, "down"); err != nil {
				return nil, err
			}
		case "DownBlock2D":
		default:
			return nil, bad("down_block_types[%d] %q is not supported (want CrossAttnDownBlock2D or DownBlock2D)", i, t)
		}
		out := c.BlockOutChannels[i]
		for j := 0; j < layers[i]; j++ {
			b.resnets = append(b.resnets, resnetPlan{in: ch, out: out})
			for _, x := range []int{ch, out} {
				if err := checkGroups(x, fmt.Sprintf("down_blocks.%d.resnets.%d", i, j)); err != nil {
					return nil, err
				}
			}
			ch = out
			skips = append(skips, ch)
		}
		if i < n-1 {
			b.sampler = true
			skips = append(skips, ch)
		}
		p.down = append(p.down, b)
	}
	if c.MidBlockType != nil {
		if *c.MidBlockType != "UNetMidBlock2DCrossAttn" {
			return nil, bad("mid_block_type %q is not supported (want UNetMidBlock2DCrossAttn or null)", *c.MidBlockType)
		}
		a, err := attn(n-1, "mid")
		if err != nil {
			return nil, err
		}
		p.mid = &blockPlan{attn: a, resnets: []resnetPlan{{in: ch, out: ch}, {in: ch, out: ch}}}
	}
	for i, t := range c.UpBlockTypes {
		r := n - 1 - i // the down block this up block mirrors
		var b blockPlan
		switch stripUNetRes(t) {
		case "CrossAttnUpBlock2D":
			if b.attn, err = attn(r, "up"); err != nil {
				return nil, err
			}
		case "UpBlock2D":
		default:
			return nil, bad("up_block_types[%d] %q is not supported (want CrossAttnUpBlock2D or UpBlock2D)", i, t)
		}
		out := c.BlockOutChannels[r]
		for j := 0; j < layers[r]+1; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			b.resnets = append(b.resnets, resnetPlan{in: ch, skip: skip, out: out})
			for _, x := range []int{ch + skip, out} {
				if err := checkGroups(x, fmt.Sprintf("up_blocks.%d.resnets.%d", i, j)); err != nil {
					return nil, err
				}
			}
			ch = out
		}
		b.sampler = i < n-1
		p.up = append(p.up, b)
	}
	return p, nil
}

// DownFactor is the ratio between the input and the smallest feature map.
// A sample whose sides are multiples of it upsamples by doubling; other
// sizes resize each upsampler's output to its skip connection, as diffusers.
func (c Config) DownFactor() int {
	return 1 << max(len(c.BlockOutChannels)-1, 0)
}

// CheckSize reports whether an h×w sample can run. Any positive size can:
// the stride-2 downsamplers pad by at least 1 (ParseConfig refuses 0), so
// they halve an odd side by rounding up, as diffusers' do.
func (c Config) CheckSize(h, w int) error {
	if h < 1 || w < 1 {
		return fmt.Errorf("unet: sample height and width must be positive, got %d×%d", h, w)
	}
	return nil
}
