package vae

import (
	"encoding/json"
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified

	"github.com/ldm-project/ldm/internal/pyjson"
)

// Config holds the fields of a diffusers AutoencoderKL config.json. Absent
// fields take the Python class's defaults (DefaultConfig).
type Config struct {
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	// SampleSize is the training image size; a [h, w] list in the file keeps h.
	SampleSize    int     `json:"sample_size"`
	ScalingFactor float64 `json:"scaling_factor"`
	// ShiftFactor is subtracted before scaling (null in SD 1.x/2.x files → 0).
	ShiftFactor          float64 `json:"shift_factor"`
	UseQuantConv         bool    `json:"use_quant_conv"`
	UsePostQuantConv     bool    `json:"use_post_quant_conv"`
	MidBlockAddAttention bool    `json:"mid_block_add_attention"`
}

// Block types this package implements (the only ones AutoencoderKL
// checkpoints use).
const (
	DownEncoderBlock2D = "DownEncoderBlock2D"
	UpDecoderBlock2D   = "UpDecoderBlock2D"
)

// DefaultConfig is AutoencoderKL.__init__'s defaults in diffusers v0.29.2.
func DefaultConfig() Config {
	return Config{
		InChannels:           3,
		OutChannels:          3,
		DownBlockTypes:       []string{DownEncoderBlock2D},
		UpBlockTypes:         []string{UpDecoderBlock2D},
		BlockOutChannels:     []int{64},
		LayersPerBlock:       1,
		ActFn:                "silu",
		LatentChannels:       4,
		NormNumGroups:        32,
		SampleSize:           32,
		ScalingFactor:        0.18215,
		UseQuantConv:         true,
		UsePostQuantConv:     true,
		MidBlockAddAttention: true,
	}
}

// ParseConfig reads a diffusers AutoencoderKL config.json, applying the
// class's defaults to absent fields, and validates it.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	aux := struct {
		*Config
		SampleSize json.RawMessage `json:"sample_size"`
	}{Config: &cfg}
	if err := json.Unmarshal(pyjson.Sanitize(data), &aux); err != nil {
		return Config{}, fmt.Errorf("vae config: %w", err)
	}
	if len(aux.SampleSize) > 0 && string(aux.SampleSize) != "null" {
		var n int
		if err := json.Unmarshal(aux.SampleSize, &n); err != nil {
			var hw []int
			if err2 := json.Unmarshal(aux.SampleSize, &hw); err2 != nil || len(hw) == 0 {
				return Config{}, fmt.Errorf("vae config: sample_size %s is neither an int nor a list of ints", aux.SampleSize)
			}
			n = hw[0]
		}
		cfg.SampleSize = n
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports a config the model cannot be built from.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("vae config: block_out_channels is empty")
	case len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n:
		return fmt.Errorf("vae config: %d down_block_types and %d up_block_types for %d block_out_channels; they must match",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	case c.InChannels <= 0 || c.OutChannels <= 0 || c.LatentChannels <= 0:
		return fmt.Errorf("vae config: in_channels %d, out_channels %d and latent_channels %d must be positive",
			c.InChannels, c.OutChannels, c.LatentChannels)
	case c.LayersPerBlock <= 0:
		return fmt.Errorf("vae config: layers_per_block %d must be positive", c.LayersPerBlock)
	case c.NormNumGroups <= 0:
		return fmt.Errorf("vae config: norm_num_groups %d must be positive", c.NormNumGroups)
	case c.ScalingFactor == 0:
		return fmt.Errorf("vae config: scaling_factor is 0")
	}
	for i, t := range c.DownBlockTypes {
		if t != DownEncoderBlock2D {
			return fmt.Errorf("vae config: down_block_types[%d] %q is not supported (only %s)", i, t, DownEncoderBlock2D)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != UpDecoderBlock2D {
			return fmt.Errorf("vae config: up_block_types[%d] %q is not supported (only %s)", i, t, UpDecoderBlock2D)
		}
	}
	for _, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return fmt.Errorf("vae config: block_out_channels %v must be positive multiples of norm_num_groups %d",
				c.BlockOutChannels, c.NormNumGroups)
		}
	}
	if _, err := activation(c.ActFn); err != nil {
		return err
	}
	return nil
}

// DownsampleFactor is the ratio of image to latent size: one stride-2
// downsampler per block but the last.
func (c Config) DownsampleFactor() int {
	return 1 << (len(c.BlockOutChannels) - 1)
}

// Scale turns an encoder sample into the latents the diffusion model sees:
// scaling_factor·(z − shift_factor), in float32 like diffusers' pipelines.
func (c Config) Scale(z *Node) *Node {
	return MulScalar(AddScalar(z, -c.ShiftFactor), c.ScalingFactor)
}

// Unscale is the inverse of Scale, applied before Decode:
// latents/scaling_factor + shift_factor.
func (c Config) Unscale(latents *Node) *Node {
	// A true division, as torch does (DivScalar multiplies by the reciprocal).
	return AddScalar(Div(latents, Scalar(latents.Graph(), latents.DType(), c.ScalingFactor)), c.ShiftFactor)
}

// ScaleValues is Scale on plain values (a new slice), rounding as the graph does.
func (c Config) ScaleValues(z []float32) []float32 {
	s, shift := float32(c.ScalingFactor), float32(c.ShiftFactor)
	out := make([]float32, len(z))
	for i, v := range z {
		out[i] = (v - shift) * s
	}
	return out
}

// UnscaleValues is Unscale on plain values (a new slice).
func (c Config) UnscaleValues(latents []float32) []float32 {
	s, shift := float32(c.ScalingFactor), float32(c.ShiftFactor)
	out := make([]float32, len(latents))
	for i, v := range latents {
		out[i] = v/s + shift
	}
	return out
}
