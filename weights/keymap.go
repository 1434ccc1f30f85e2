package weights

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Key prefixes of the original (CompVis/LDM) single-file layout.
const (
	unetPrefix     = "model.diffusion_model."
	vaePrefix      = "first_stage_model."
	clipPrefix     = "cond_stage_model.transformer." // SD1: transformers' CLIPTextModel inside
	openCLIPPrefix = "cond_stage_model.model."       // SD2: open_clip's text tower
)

// Component names, as the folders of a diffusers pipeline.
const (
	UNet        = "unet"
	VAE         = "vae"
	TextEncoder = "text_encoder"
	Tokenizer   = "tokenizer"
	Scheduler   = "scheduler"
)

// Layout is the part of an architecture that the key names of the original
// layout depend on: original blocks are numbered across levels, diffusers
// blocks per level.
type Layout struct {
	LayersPerBlock   int    // UNet resnets per down block (up blocks have one more)
	UpBlockAttention []bool // per UNet up block, diffusers order: whether it has attentions (its upsampler then sits at index 2, not 1)
	VAELevels        int    // VAE resolution levels: the decoder's original "up" blocks are numbered in reverse
	OpenCLIP         bool   // the text encoder is SD2's OpenCLIP (cond_stage_model.model.*), not CLIP (cond_stage_model.transformer.*)
	TextLayers       int    // OpenCLIP: layers diffusers keeps; resblocks from this index on are ignored (SD2 drops the last of 24)
}

// Part locates a diffusers tensor inside a fused original tensor: rows
// [Index·n/Of, (Index+1)·n/Of) of its first dimension. Of is 1 for a whole
// tensor; OpenCLIP's in_proj (q, k, v stacked) has Of = 3.
type Part struct{ Index, Of int }

// Target is where one original tensor (or a part of it) goes.
type Target struct {
	Component string
	Key       string
	Part      Part
}

var whole = Part{0, 1}

// ToDiffusersKey maps a key of an original single-file checkpoint to the
// diffusers key(s) it becomes. A key that real files carry and loaders skip
// (noise schedule buffers, EMA copies, position_ids, ...) is ignored; a key
// that maps nowhere gives no targets and ignored=false: it is unexpected.
func ToDiffusersKey(orig string, l Layout) (targets []Target, ignored bool) {
	if isIgnoredKey(orig) {
		return nil, true
	}
	one := func(c, k string, ok bool) ([]Target, bool) {
		if !ok {
			return nil, false
		}
		return []Target{{c, k, whole}}, false
	}
	switch {
	case strings.HasPrefix(orig, unetPrefix):
		k, ok := unetToDiffusers(orig[len(unetPrefix):], l.LayersPerBlock)
		return one(UNet, k, ok)
	case strings.HasPrefix(orig, vaePrefix):
		k, ok := vaeToDiffusers(orig[len(vaePrefix):], l.VAELevels)
		return one(VAE, k, ok)
	case strings.HasPrefix(orig, clipPrefix):
		k := orig[len(clipPrefix):]
		if !strings.HasPrefix(k, "text_model.") { // transformers before 4.x had no text_model level
			k = "text_model." + k
		}
		return one(TextEncoder, k, clipKey.MatchString(k))
	case strings.HasPrefix(orig, openCLIPPrefix):
		return openCLIPToDiffusers(orig[len(openCLIPPrefix):], l.TextLayers)
	}
	return nil, false
}

// ToOriginalKey is the inverse of ToDiffusersKey: the original key a
// component's diffusers key is stored under, and which part of it.
func ToOriginalKey(component, key string, l Layout) (orig string, part Part, err error) {
	var ok bool
	part = whole
	switch component {
	case UNet:
		orig, ok = unetToOriginal(key, l)
		orig = unetPrefix + orig
	case VAE:
		orig, ok = vaeToOriginal(key, l.VAELevels)
		orig = vaePrefix + orig
	case TextEncoder:
		if !clipKey.MatchString(key) {
			break
		}
		if !l.OpenCLIP {
			orig, ok = clipPrefix+key, true
			break
		}
		orig, part, ok = openCLIPToOriginal(key)
		orig = openCLIPPrefix + orig
	}
	if !ok {
		return "", whole, fmt.Errorf("%s key %q has no place in the original single-file layout", component, key)
	}
	return orig, part, nil
}

// ignoredKeys are tensors that original checkpoints carry and that no
// diffusers model holds (after stable-diffusion.cpp's unused_tensors and
// diffusers' SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
var (
	ignoredExact = map[string]bool{
		"betas": true, "alphas_cumprod": true, "alphas_cumprod_prev": true,
		"sqrt_alphas_cumprod": true, "sqrt_one_minus_alphas_cumprod": true,
		"log_one_minus_alphas_cumprod": true, "sqrt_recip_alphas_cumprod": true,
		"sqrt_recipm1_alphas_cumprod": true, "posterior_variance": true,
		"posterior_log_variance_clipped": true, "posterior_mean_coef1": true,
		"posterior_mean_coef2": true, "logvar": true, "lvlb_weights": true,
		openCLIPPrefix + "logit_scale": true, openCLIPPrefix + "text_projection": true,
		openCLIPPrefix + "attn_mask": true,
	}
	ignoredPrefixes = []string{"model_ema.", "embedding_manager."}
)

func isIgnoredKey(k string) bool {
	if ignoredExact[k] || strings.HasSuffix(k, ".position_ids") {
		return true
	}
	for _, p := range ignoredPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Leaf names that are the same in both layouts.
var (
	param = `(weight|bias)`
	// A spatial transformer inside a UNet block.
	unetAttnRest = regexp.MustCompile(`^((norm|proj_in|proj_out)\.` + param + `|transformer_blocks\.\d+\.(attn[12]\.(to_[qkv]\.weight|to_out\.0\.` + param + `)|ff\.net\.(0\.proj|2)\.` + param + `|norm[123]\.` + param + `))$`)
	clipKey      = regexp.MustCompile(`^text_model\.(embeddings\.(token|position)_embedding\.weight|final_layer_norm\.` + param + `|encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|layer_norm[12]|mlp\.fc[12])\.` + param + `)$`)
	paramRest    = regexp.MustCompile(`^` + param + `$`)
)

// renames are (original, diffusers) prefix pairs; rename applies the first
// pair whose prefix matches, in either direction, and requires the remainder
// to match rest.
type renames [][2]string

func (rs renames) apply(s string, toDiffusers bool, rest *regexp.Regexp) (string, bool) {
	from, to := 0, 1
	if !toDiffusers {
		from, to = 1, 0
	}
	for _, r := range rs {
		if tail, ok := strings.CutPrefix(s, r[from]); ok && rest.MatchString(tail) {
			return r[to] + tail, true
		}
	}
	return "", false
}

var (
	unetTop = renames{
		{"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
		{"input_blocks.0.0.", "conv_in."}, {"out.0.", "conv_norm_out."}, {"out.2.", "conv_out."},
	}
	unetResnet = renames{
		{"in_layers.0.", "norm1."}, {"in_layers.2.", "conv1."}, {"out_layers.0.", "norm2."},
		{"out_layers.3.", "conv2."}, {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
	}
	vaeTop = renames{
		{"encoder.conv_in.", "encoder.conv_in."}, {"encoder.conv_out.", "encoder.conv_out."},
		{"encoder.norm_out.", "encoder.conv_norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
		{"decoder.conv_out.", "decoder.conv_out."}, {"decoder.norm_out.", "decoder.conv_norm_out."},
		{"quant_conv.", "quant_conv."}, {"post_quant_conv.", "post_quant_conv."},
	}
	vaeResnet = renames{
		{"norm1.", "norm1."}, {"conv1.", "conv1."}, {"norm2.", "norm2."}, {"conv2.", "conv2."},
		{"nin_shortcut.", "conv_shortcut."},
	}
	// The VAE's mid attention: original LDM names and those of old diffusers
	// versions (query/key/value/proj_attn) both become today's names.
	vaeAttn = renames{
		{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."},
	}
	vaeAttnLegacyDiffusers = renames{
		{"query.", "to_q."}, {"key.", "to_k."}, {"value.", "to_v."}, {"proj_attn.", "to_out.0."},
	}
	openCLIPTop = renames{ // whole names: the remainder must be empty
		{"positional_embedding", "text_model.embeddings.position_embedding.weight"},
		{"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
		{"ln_final.weight", "text_model.final_layer_norm.weight"},
		{"ln_final.bias", "text_model.final_layer_norm.bias"},
	}
	openCLIPLayer = renames{
		{"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
		{"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."},
	}
	emptyRest = regexp.MustCompile(`^$`)
)

// cutIndex parses "N.rest" (N a decimal index without sign or leading zeros).
func cutIndex(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 || (i > 1 && s[0] == '0') || i >= len(s) || s[i] != '.' {
		return 0, "", false
	}
	n, _ = strconv.Atoi(s[:i])
	return n, s[i+1:], true
}

// cutPath parses "prefix.N.rest".
func cutPath(s, prefix string) (n int, rest string, ok bool) {
	tail, ok := strings.CutPrefix(s, prefix+".")
	if !ok {
		return 0, "", false
	}
	return cutIndex(tail)
}

func unetToDiffusers(p string, lpb int) (string, bool) {
	if k, ok := unetTop.apply(p, true, paramRest); ok {
		return k, true
	}
	if lpb < 1 {
		return "", false
	}
	per := lpb + 1 // resnets (and attentions) per level, plus the down/upsampler
	if i, r, ok := cutPath(p, "input_blocks"); ok && i > 0 {
		j, rest, ok := cutIndex(r)
		b, l := (i-1)/per, (i-1)%per
		switch {
		case !ok:
		case j == 0 && l == lpb:
			if op, ok := strings.CutPrefix(rest, "op."); ok && paramRest.MatchString(op) {
				return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", b, op), true
			}
		case j == 0:
			if k, ok := unetResnet.apply(rest, true, paramRest); ok {
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", b, l, k), true
			}
		case j == 1 && l < lpb && unetAttnRest.MatchString(rest):
			return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", b, l, rest), true
		}
		return "", false
	}
	if i, r, ok := cutPath(p, "output_blocks"); ok {
		j, rest, ok := cutIndex(r)
		b, l := i/per, i%per
		conv, isConv := strings.CutPrefix(rest, "conv.")
		switch {
		case !ok:
		case j == 0:
			if k, ok := unetResnet.apply(rest, true, paramRest); ok {
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", b, l, k), true
			}
		case (j == 1 || j == 2) && isConv && l == lpb && paramRest.MatchString(conv):
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", b, conv), true
		case j == 1 && unetAttnRest.MatchString(rest):
			return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", b, l, rest), true
		}
		return "", false
	}
	if i, rest, ok := cutPath(p, "middle_block"); ok {
		switch i {
		case 0, 2:
			if k, ok := unetResnet.apply(rest, true, paramRest); ok {
				return fmt.Sprintf("mid_block.resnets.%d.%s", i/2, k), true
			}
		case 1:
			if unetAttnRest.MatchString(rest) {
				return "mid_block.attentions.0." + rest, true
			}
		}
	}
	return "", false
}

func unetToOriginal(k string, l Layout) (string, bool) {
	if p, ok := unetTop.apply(k, false, paramRest); ok {
		return p, true
	}
	lpb := l.LayersPerBlock
	if lpb < 1 {
		return "", false
	}
	per := lpb + 1
	if b, r, ok := cutPath(k, "down_blocks"); ok {
		if n, rest, ok := cutPath(r, "resnets"); ok && n < lpb {
			if p, ok := unetResnet.apply(rest, false, paramRest); ok {
				return fmt.Sprintf("input_blocks.%d.0.%s", 1+b*per+n, p), true
			}
		}
		if n, rest, ok := cutPath(r, "attentions"); ok && n < lpb && unetAttnRest.MatchString(rest) {
			return fmt.Sprintf("input_blocks.%d.1.%s", 1+b*per+n, rest), true
		}
		if rest, ok := strings.CutPrefix(r, "downsamplers.0.conv."); ok && paramRest.MatchString(rest) {
			return fmt.Sprintf("input_blocks.%d.0.op.%s", 1+b*per+lpb, rest), true
		}
		return "", false
	}
	if b, r, ok := cutPath(k, "up_blocks"); ok {
		if n, rest, ok := cutPath(r, "resnets"); ok && n < per {
			if p, ok := unetResnet.apply(rest, false, paramRest); ok {
				return fmt.Sprintf("output_blocks.%d.0.%s", b*per+n, p), true
			}
		}
		if n, rest, ok := cutPath(r, "attentions"); ok && n < per && unetAttnRest.MatchString(rest) {
			return fmt.Sprintf("output_blocks.%d.1.%s", b*per+n, rest), true
		}
		if rest, ok := strings.CutPrefix(r, "upsamplers.0.conv."); ok && paramRest.MatchString(rest) {
			slot := 1
			if b < len(l.UpBlockAttention) && l.UpBlockAttention[b] {
				slot = 2
			}
			return fmt.Sprintf("output_blocks.%d.%d.conv.%s", b*per+lpb, slot, rest), true
		}
		return "", false
	}
	if n, rest, ok := cutPath(k, "mid_block.resnets"); ok && n < 2 {
		if p, ok := unetResnet.apply(rest, false, paramRest); ok {
			return fmt.Sprintf("middle_block.%d.%s", 2*n, p), true
		}
	}
	if rest, ok := strings.CutPrefix(k, "mid_block.attentions.0."); ok && unetAttnRest.MatchString(rest) {
		return "middle_block.1." + rest, true
	}
	return "", false
}

func vaeToDiffusers(p string, levels int) (string, bool) {
	if k, ok := vaeTop.apply(p, true, paramRest); ok {
		return k, true
	}
	side, r, ok := strings.Cut(p, ".")
	if !ok || (side != "encoder" && side != "decoder") {
		return "", false
	}
	if k, ok := vaeMidToDiffusers(r, vaeAttn); ok {
		return side + "." + k, true
	}
	level, r, ok := cutPath(r, map[string]string{"encoder": "down", "decoder": "up"}[side])
	if !ok || level >= levels {
		return "", false
	}
	block := "down_blocks"
	if side == "decoder" {
		block, level = "up_blocks", levels-1-level
	}
	if n, rest, ok := cutPath(r, "block"); ok {
		if k, ok := vaeResnet.apply(rest, true, paramRest); ok {
			return fmt.Sprintf("%s.%s.%d.resnets.%d.%s", side, block, level, n, k), true
		}
	}
	sampler := map[string]string{"encoder": "downsample", "decoder": "upsample"}[side]
	if rest, ok := strings.CutPrefix(r, sampler+".conv."); ok && paramRest.MatchString(rest) {
		return fmt.Sprintf("%s.%s.%d.%ss.0.conv.%s", side, block, level, sampler+"r", rest), true
	}
	return "", false
}

// vaeMidToDiffusers maps "mid.block_1.*", "mid.block_2.*", "mid.attn_1.*".
func vaeMidToDiffusers(r string, attn renames) (string, bool) {
	for i, name := range []string{"mid.block_1.", "mid.block_2."} {
		if rest, ok := strings.CutPrefix(r, name); ok {
			if k, ok := vaeResnet.apply(rest, true, paramRest); ok {
				return fmt.Sprintf("mid_block.resnets.%d.%s", i, k), true
			}
		}
	}
	if rest, ok := strings.CutPrefix(r, "mid.attn_1."); ok {
		if k, ok := attn.apply(rest, true, paramRest); ok {
			return "mid_block.attentions.0." + k, true
		}
	}
	return "", false
}

func vaeToOriginal(k string, levels int) (string, bool) {
	if p, ok := vaeTop.apply(k, false, paramRest); ok {
		return p, true
	}
	side, r, ok := strings.Cut(k, ".")
	if !ok || (side != "encoder" && side != "decoder") {
		return "", false
	}
	for i := range 2 {
		if rest, ok := strings.CutPrefix(r, fmt.Sprintf("mid_block.resnets.%d.", i)); ok {
			if p, ok := vaeResnet.apply(rest, false, paramRest); ok {
				return fmt.Sprintf("%s.mid.block_%d.%s", side, i+1, p), true
			}
		}
	}
	if rest, ok := strings.CutPrefix(r, "mid_block.attentions.0."); ok {
		if p, ok := vaeAttn.apply(rest, false, paramRest); ok {
			return side + ".mid.attn_1." + p, true
		}
	}
	block, level, sampler := "down", 0, "downsample"
	if side == "decoder" {
		block, sampler = "up", "upsample"
	}
	level, r, ok = cutPath(r, block+"_blocks")
	if !ok || level >= levels {
		return "", false
	}
	if side == "decoder" {
		level = levels - 1 - level
	}
	if n, rest, ok := cutPath(r, "resnets"); ok {
		if p, ok := vaeResnet.apply(rest, false, paramRest); ok {
			return fmt.Sprintf("%s.%s.%d.block.%d.%s", side, block, level, n, p), true
		}
	}
	if rest, ok := strings.CutPrefix(r, sampler+"rs.0.conv."); ok && paramRest.MatchString(rest) {
		return fmt.Sprintf("%s.%s.%d.%s.conv.%s", side, block, level, sampler, rest), true
	}
	return "", false
}

func openCLIPToDiffusers(p string, keep int) ([]Target, bool) {
	if k, ok := openCLIPTop.apply(p, true, emptyRest); ok {
		return []Target{{TextEncoder, k, whole}}, false
	}
	n, rest, ok := cutPath(p, "transformer.resblocks")
	if !ok {
		return nil, false
	}
	if n >= keep {
		return nil, true // the penultimate-layer convention: diffusers drops the last layer(s)
	}
	layer := fmt.Sprintf("text_model.encoder.layers.%d.", n)
	if k, ok := openCLIPLayer.apply(rest, true, paramRest); ok {
		return []Target{{TextEncoder, layer + k, whole}}, false
	}
	for _, suffix := range []string{"weight", "bias"} {
		if rest == "attn.in_proj_"+suffix {
			var ts []Target
			for i, qkv := range []string{"q", "k", "v"} {
				ts = append(ts, Target{TextEncoder, layer + "self_attn." + qkv + "_proj." + suffix, Part{i, 3}})
			}
			return ts, false
		}
	}
	return nil, false
}

func openCLIPToOriginal(k string) (string, Part, bool) {
	if p, ok := openCLIPTop.apply(k, false, emptyRest); ok {
		return p, whole, true
	}
	n, rest, ok := cutPath(k, "text_model.encoder.layers")
	if !ok {
		return "", whole, false
	}
	layer := fmt.Sprintf("transformer.resblocks.%d.", n)
	if p, ok := openCLIPLayer.apply(rest, false, paramRest); ok {
		return layer + p, whole, true
	}
	for i, qkv := range []string{"q", "k", "v"} {
		if suffix, ok := strings.CutPrefix(rest, "self_attn."+qkv+"_proj."); ok && paramRest.MatchString(suffix) {
			return layer + "attn.in_proj_" + suffix, Part{i, 3}, true
		}
	}
	return "", whole, false
}

// isVAEAttnMatrix reports whether a diffusers VAE key is a mid-attention
// projection, stored as a 1×1 convolution [C,C,1,1] in original files (and as
// a 1-D convolution [C,C,1] in some) but as a linear [C,C] in diffusers.
func isVAEAttnMatrix(component, key string) bool {
	if component != VAE || !strings.HasSuffix(key, ".weight") {
		return false
	}
	_, r, _ := strings.Cut(key, ".")
	rest, ok := strings.CutPrefix(r, "mid_block.attentions.0.")
	return ok && rest != "group_norm.weight"
}

// diffusersShape converts an original tensor's shape to the shape of the
// diffusers tensor (or part) it becomes.
func diffusersShape(component, key string, orig []int, part Part) ([]int, error) {
	shape := append([]int(nil), orig...)
	if part.Of > 1 {
		if len(shape) == 0 || shape[0]%part.Of != 0 {
			return nil, fmt.Errorf("fused tensor of shape %v cannot be split in %d along its first dimension", orig, part.Of)
		}
		shape[0] /= part.Of
	}
	if isVAEAttnMatrix(component, key) {
		for len(shape) > 2 && shape[len(shape)-1] == 1 {
			shape = shape[:len(shape)-1]
		}
	}
	return shape, nil
}

// originalShape is the shape a diffusers tensor takes in an original file
// (before fusing parts).
func originalShape(component, key string, shape []int) []int {
	out := append([]int(nil), shape...)
	if isVAEAttnMatrix(component, key) && len(out) == 2 {
		out = append(out, 1, 1)
	}
	return out
}
