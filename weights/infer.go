package weights

import (
	"fmt"
	"strings"
)

// InferConfig returns the diffusers config fields of a component (unet, vae
// or text_encoder) that its tensor shapes determine. What shapes cannot tell
// (attention head counts, norm groups, sample size, activation, prediction
// type) is left out; see OpenOptions.ConfigFrom and Preset for those.
func InferConfig(component string, src Source) (map[string]any, error) {
	if src == nil {
		return nil, fmt.Errorf("%s: no tensors", component)
	}
	s := shapes{component: component, src: src, keys: src.Keys()}
	switch component {
	case UNet:
		return s.unet()
	case VAE:
		return s.vae()
	case TextEncoder:
		return s.textEncoder()
	}
	return nil, fmt.Errorf("cannot infer the config of component %q", component)
}

type shapes struct {
	component string
	src       Source
	keys      []string
	err       error // the first failure; later lookups return zeros
}

// dim returns dimension i of a tensor that must exist with the given rank.
func (s *shapes) dim(key string, rank, i int) int {
	if s.err != nil {
		return 0
	}
	_, shape, ok := s.src.Info(key)
	switch {
	case !ok:
		s.err = fmt.Errorf("%s: no tensor %s, so the config cannot be inferred", s.component, key)
	case len(shape) != rank:
		s.err = fmt.Errorf("%s: tensor %s has shape %v, want rank %d", s.component, key, shape, rank)
	default:
		return shape[i]
	}
	return 0
}

// count returns how many blocks "prefix.N." there are, requiring N = 0…n-1.
func (s *shapes) count(prefix string) int {
	seen := map[int]bool{}
	for _, k := range s.keys {
		if r, ok := strings.CutPrefix(k, prefix+"."); ok {
			if i, _, ok := cutIndex(r); ok {
				seen[i] = true
			}
		}
	}
	for i := range len(seen) {
		if !seen[i] && s.err == nil {
			s.err = fmt.Errorf("%s: %s.%d is missing but higher indices exist", s.component, prefix, i)
		}
	}
	return len(seen)
}

func (s *shapes) has(prefix string) bool {
	for _, k := range s.keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// first returns the shape of the first key with the suffix, or nil.
func (s *shapes) first(suffix string) []int {
	for _, k := range s.keys {
		if strings.HasSuffix(k, suffix) {
			_, shape, _ := s.src.Info(k)
			return shape
		}
	}
	return nil
}

func (s *shapes) unet() (map[string]any, error) {
	f := map[string]any{
		"in_channels":     s.dim("conv_in.weight", 4, 1),
		"conv_in_kernel":  s.dim("conv_in.weight", 4, 2),
		"out_channels":    s.dim("conv_out.weight", 4, 0),
		"conv_out_kernel": s.dim("conv_out.weight", 4, 2),
	}
	levels := s.count("down_blocks")
	if up := s.count("up_blocks"); s.err == nil && up != levels {
		return nil, fmt.Errorf("unet: %d down blocks but %d up blocks", levels, up)
	}
	if levels == 0 && s.err == nil {
		s.err = fmt.Errorf("unet: no down_blocks")
	}
	var channels, tlayers []int
	var down, up []string
	for b := range levels {
		channels = append(channels, s.dim(fmt.Sprintf("down_blocks.%d.resnets.0.conv1.weight", b), 4, 0))
		block, n := "DownBlock2D", 1
		if s.has(fmt.Sprintf("down_blocks.%d.attentions.0.", b)) {
			block, n = "CrossAttnDownBlock2D", s.count(fmt.Sprintf("down_blocks.%d.attentions.0.transformer_blocks", b))
		}
		down, tlayers = append(down, block), append(tlayers, n)
		block = "UpBlock2D"
		if s.has(fmt.Sprintf("up_blocks.%d.attentions.0.", b)) {
			block = "CrossAttnUpBlock2D"
		}
		up = append(up, block)
	}
	f["block_out_channels"], f["down_block_types"], f["up_block_types"] = channels, down, up
	f["layers_per_block"] = s.count("down_blocks.0.resnets")
	f["transformer_layers_per_block"] = tlayers
	if same(tlayers) {
		f["transformer_layers_per_block"] = tlayers[0]
	}
	switch {
	case s.has("mid_block.attentions.0."):
		f["mid_block_type"] = "UNetMidBlock2DCrossAttn"
	case s.has("mid_block.resnets.0."):
		f["mid_block_type"] = "UNetMidBlock2D"
	default:
		f["mid_block_type"] = nil
	}
	if k := s.first(".attn2.to_k.weight"); len(k) == 2 {
		f["cross_attention_dim"] = k[1]
	}
	if p := s.first(".proj_in.weight"); p != nil {
		f["use_linear_projection"] = len(p) == 2 // SD2 projects with linear layers, SD1 with 1×1 convolutions
	}
	if s.err != nil {
		return nil, s.err
	}
	return f, nil
}

func same(xs []int) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return len(xs) > 0
}

func (s *shapes) vae() (map[string]any, error) {
	f := map[string]any{
		"in_channels":         s.dim("encoder.conv_in.weight", 4, 1),
		"out_channels":        s.dim("decoder.conv_out.weight", 4, 0),
		"latent_channels":     s.dim("decoder.conv_in.weight", 4, 1),
		"use_quant_conv":      s.has("quant_conv."),
		"use_post_quant_conv": s.has("post_quant_conv."),
	}
	levels := s.count("encoder.down_blocks")
	if up := s.count("decoder.up_blocks"); s.err == nil && up != levels {
		return nil, fmt.Errorf("vae: %d encoder levels but %d decoder levels", levels, up)
	}
	if levels == 0 && s.err == nil {
		s.err = fmt.Errorf("vae: no encoder.down_blocks")
	}
	var channels []int
	var down, up []string
	for b := range levels {
		channels = append(channels, s.dim(fmt.Sprintf("encoder.down_blocks.%d.resnets.0.conv1.weight", b), 4, 0))
		down, up = append(down, "DownEncoderBlock2D"), append(up, "UpDecoderBlock2D")
	}
	f["block_out_channels"], f["down_block_types"], f["up_block_types"] = channels, down, up
	f["layers_per_block"] = s.count("encoder.down_blocks.0.resnets")
	if s.err != nil {
		return nil, s.err
	}
	return f, nil
}

func (s *shapes) textEncoder() (map[string]any, error) {
	f := map[string]any{
		"vocab_size":              s.dim("text_model.embeddings.token_embedding.weight", 2, 0),
		"hidden_size":             s.dim("text_model.embeddings.token_embedding.weight", 2, 1),
		"max_position_embeddings": s.dim("text_model.embeddings.position_embedding.weight", 2, 0),
		"intermediate_size":       s.dim("text_model.encoder.layers.0.mlp.fc1.weight", 2, 0),
		"num_hidden_layers":       s.count("text_model.encoder.layers"),
	}
	if s.err != nil {
		return nil, s.err
	}
	return f, nil
}
