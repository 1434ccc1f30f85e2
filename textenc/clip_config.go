package textenc

import (
	"encoding/json"
	"fmt"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// CLIPConfig is transformers' CLIPTextConfig: the JSON tags are its
// config.json field names and DefaultCLIPConfig holds its defaults.
type CLIPConfig struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	BOSTokenID            int     `json:"bos_token_id"`
	EOSTokenID            int     `json:"eos_token_id"`
	PadTokenID            int     `json:"pad_token_id"`
	// ProjectionDim sizes CLIPTextModelWithProjection's text_projection; the
	// plain CLIPTextModel does not use it.
	ProjectionDim int `json:"projection_dim"`
}

// DefaultCLIPConfig returns CLIPTextConfig's defaults (the text tower of
// openai/clip-vit-base-patch32). The bos/eos/pad ids are those of
// transformers ≥ 4.31 (huggingface/transformers#24773); older configs such as
// Stable Diffusion 1.x's spell out bos 0, eos 2, which selects the legacy
// pooling rule (see CLIPTextModel.Forward).
func DefaultCLIPConfig() CLIPConfig {
	return CLIPConfig{
		VocabSize:             49408,
		HiddenSize:            512,
		IntermediateSize:      2048,
		NumHiddenLayers:       12,
		NumAttentionHeads:     8,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		BOSTokenID:            49406,
		EOSTokenID:            49407,
		PadTokenID:            1,
		ProjectionDim:         512,
	}
}

// SD15CLIPConfig is the text encoder of Stable Diffusion 1.x (CLIP ViT-L/14's
// text tower), as in runwayml/stable-diffusion-v1-5's text_encoder/config.json.
func SD15CLIPConfig() CLIPConfig {
	c := DefaultCLIPConfig()
	c.HiddenSize = 768
	c.IntermediateSize = 3072
	c.NumAttentionHeads = 12
	c.ProjectionDim = 768
	c.BOSTokenID, c.EOSTokenID = 0, 2
	return c
}

// ParseCLIPConfig reads a config.json holding either a CLIPTextConfig or a
// full CLIPConfig (whose text tower is the "text_config" object, or
// "text_config_dict" in old files). Absent fields take CLIPTextConfig's
// defaults. Python's NaN/Infinity literals are accepted.
func ParseCLIPConfig(data []byte) (CLIPConfig, error) {
	data = pyjson.Sanitize(data)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return CLIPConfig{}, fmt.Errorf("clip config: %w", err)
	}
	c := DefaultCLIPConfig()
	text := data
	for _, k := range []string{"text_config", "text_config_dict"} {
		if raw, ok := top[k]; ok && string(raw) != "null" {
			text = raw
			// CLIPModel's own projection_dim sizes the text projection.
			if p, ok := top["projection_dim"]; ok {
				if err := json.Unmarshal(p, &c.ProjectionDim); err != nil {
					return CLIPConfig{}, fmt.Errorf("clip config: projection_dim: %w", err)
				}
			}
			break
		}
	}
	if err := json.Unmarshal(text, &c); err != nil {
		return CLIPConfig{}, fmt.Errorf("clip config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return CLIPConfig{}, err
	}
	return c, nil
}

// Validate reports a config the model cannot be built from.
func (c CLIPConfig) Validate() error {
	switch {
	case c.VocabSize <= 0, c.HiddenSize <= 0, c.IntermediateSize <= 0,
		c.NumHiddenLayers <= 0, c.NumAttentionHeads <= 0, c.MaxPositionEmbeddings <= 0:
		return fmt.Errorf("clip config: sizes must be positive: vocab %d, hidden %d, intermediate %d, layers %d, heads %d, positions %d",
			c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.MaxPositionEmbeddings)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("clip config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case !(c.LayerNormEps > 0):
		return fmt.Errorf("clip config: layer_norm_eps %g must be positive", c.LayerNormEps)
	}
	if _, ok := activations[c.HiddenAct]; !ok {
		return fmt.Errorf("clip config: unsupported hidden_act %q (want quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu or silu)", c.HiddenAct)
	}
	return nil
}

// ClipSkipFromA1111 converts AUTOMATIC1111's "Clip skip" setting (1 = last
// layer, 2 = penultimate, …; it takes hidden_states[-n]) into diffusers'
// clip_skip (0 or absent = last layer, 1 = penultimate; it takes
// hidden_states[-(n+1)]). Both apply the final layer norm afterwards, so
// A1111's "Clip skip 2" is diffusers' clip_skip=1. Values below 1 mean no skip.
func ClipSkipFromA1111(a1111 int) int {
	return max(a1111-1, 0)
}
