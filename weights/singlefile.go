package weights

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// openCLIPKeptLayers is how many of OpenCLIP ViT-H's 24 layers diffusers'
// SD2 text encoder keeps: SD2 conditions on the penultimate layer, so
// diffusers drops resblocks.23 (SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
const openCLIPKeptLayers = 23

func openSingleFile(path string, opts OpenOptions) (*Model, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Path: path, Format: FormatSingleFile, Components: map[string]*Component{}, closers: []io.Closer{f}}
	if err := m.mapSingleFile(f, opts); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Model) mapSingleFile(f *File, opts OpenOptions) error {
	// Standalone VAE files (vae-ft-mse-840000-ema-pruned.safetensors and
	// the like) are the first_stage_model of a checkpoint without its prefix.
	names, prefix := f.Names(), ""
	if isBareVAE(names) {
		prefix = vaePrefix
		for i := range names {
			names[i] = prefix + names[i]
		}
	}
	if !hasOriginalKeys(names) {
		return fmt.Errorf("%s: not an original Stable Diffusion checkpoint: no model.diffusion_model.*, first_stage_model.* or cond_stage_model.* tensors (for a diffusers component's weights, open its folder)", f.Path)
	}
	var ref map[string]*Component
	textLayers := 0
	if opts.ConfigFrom != "" {
		var err error
		if ref, err = referenceConfigs(opts.ConfigFrom); err != nil {
			return err
		}
		if c := ref[TextEncoder]; c != nil {
			var tc struct {
				Layers int `json:"num_hidden_layers"`
			}
			_ = json.Unmarshal(c.Config, &tc)
			textLayers = tc.Layers
		}
	}
	layout := layoutFromOriginal(names, textLayers)

	sources := map[string]*fileSource{}
	unexpected := map[string][]string{}
	for _, name := range names {
		stored := name[len(prefix):]
		targets, ignored := ToDiffusersKey(name, layout)
		ignored = ignored || isIgnoredKey(stored)
		if ignored {
			m.Ignored = append(m.Ignored, stored)
			continue
		}
		if len(targets) == 0 {
			c := componentOfOriginal(name)
			unexpected[c] = append(unexpected[c], stored)
			continue
		}
		t, _ := f.Info(stored)
		for _, tg := range targets {
			shape, err := diffusersShape(tg.Component, tg.Key, t.Shape, tg.Part)
			if err != nil {
				return fmt.Errorf("%s: tensor %q: %w", f.Path, stored, err)
			}
			src := sources[tg.Component]
			if src == nil {
				src = newFileSource()
				sources[tg.Component] = src
			}
			if !src.add(tg.Key, tensorRef{file: f, name: t.Name, part: tg.Part, dtype: t.DType, shape: shape}) {
				unexpected[tg.Component] = append(unexpected[tg.Component], stored) // a second tensor for the same key
			}
		}
	}
	for comp, src := range sources {
		src.finish()
		m.Components[comp] = &Component{Name: comp, Source: src, Unexpected: unexpected[comp]}
		delete(unexpected, comp)
	}
	for _, keys := range unexpected { // keys of components that have no tensor at all
		m.Unexpected = append(m.Unexpected, keys...)
	}
	sort.Strings(m.Unexpected)
	if len(m.Components) == 0 {
		return fmt.Errorf("%s: no tensor maps to a diffusers key (%d unexpected, first %q)", f.Path, len(m.Unexpected), m.Unexpected[0])
	}
	return m.configureSingleFile(f.Path, layout, ref, opts)
}

// isBareVAE recognises an original-layout VAE saved on its own.
func isBareVAE(names []string) bool {
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	return has["encoder.conv_in.weight"] && has["decoder.conv_in.weight"] && has["encoder.down.0.block.0.conv1.weight"]
}

func hasOriginalKeys(names []string) bool {
	for _, n := range names {
		if componentOfOriginal(n) != "" {
			return true
		}
	}
	return false
}

// componentOfOriginal says which component an original key belongs to by its
// prefix, or "" for none.
func componentOfOriginal(name string) string {
	switch {
	case strings.HasPrefix(name, unetPrefix):
		return UNet
	case strings.HasPrefix(name, vaePrefix):
		return VAE
	case strings.HasPrefix(name, clipPrefix), strings.HasPrefix(name, openCLIPPrefix):
		return TextEncoder
	}
	return ""
}

// OriginalLayout reads the key layout from the key names of an original
// single file, for ToDiffusersKey. OpenCLIP keeps min(layers, 23) layers, as
// diffusers does.
func OriginalLayout(names []string) Layout { return layoutFromOriginal(names, 0) }

// layoutFromOriginal is OriginalLayout; textLayers > 0 sets how many
// OpenCLIP layers to keep (from a reference config).
func layoutFromOriginal(names []string, textLayers int) Layout {
	var l Layout
	maxIn, firstOp, vaeMax, resMax := 0, 0, -1, -1
	var upAttn []int // output block indices that hold attentions
	for _, n := range names {
		if r, ok := strings.CutPrefix(n, unetPrefix+"input_blocks."); ok {
			if i, rest, ok := cutIndex(r); ok {
				maxIn = max(maxIn, i)
				if strings.HasPrefix(rest, "0.op.") && (firstOp == 0 || i < firstOp) {
					firstOp = i
				}
			}
		}
		if r, ok := strings.CutPrefix(n, unetPrefix+"output_blocks."); ok {
			if i, rest, ok := cutIndex(r); ok && strings.HasPrefix(rest, "1.") && !strings.HasPrefix(rest, "1.conv.") {
				upAttn = append(upAttn, i)
			}
		}
		for _, p := range []string{vaePrefix + "encoder.down.", vaePrefix + "decoder.up."} {
			if r, ok := strings.CutPrefix(n, p); ok {
				if i, _, ok := cutIndex(r); ok {
					vaeMax = max(vaeMax, i)
				}
			}
		}
		if r, ok := strings.CutPrefix(n, openCLIPPrefix+"transformer.resblocks."); ok {
			if i, _, ok := cutIndex(r); ok {
				resMax = max(resMax, i)
			}
		}
		if strings.HasPrefix(n, openCLIPPrefix) {
			l.OpenCLIP = true
		}
	}
	// Each level has LayersPerBlock resnets, then a downsampler (not the last).
	l.LayersPerBlock = maxIn
	if firstOp > 0 {
		l.LayersPerBlock = firstOp - 1
	}
	if l.LayersPerBlock > 0 {
		for _, i := range upAttn {
			b := i / (l.LayersPerBlock + 1)
			for len(l.UpBlockAttention) <= b {
				l.UpBlockAttention = append(l.UpBlockAttention, false)
			}
			l.UpBlockAttention[b] = true
		}
	}
	l.VAELevels = vaeMax + 1
	l.TextLayers = textLayers
	if textLayers <= 0 {
		l.TextLayers = min(resMax+1, openCLIPKeptLayers)
	}
	return l
}

// LayoutFromConfigs derives the key layout from diffusers configs (any may
// be nil), for writing an original single file.
func LayoutFromConfigs(unet, vae, textEncoder []byte) (Layout, error) {
	var l Layout
	if unet != nil {
		var c struct {
			LayersPerBlock json.RawMessage `json:"layers_per_block"`
			UpBlockTypes   []string        `json:"up_block_types"`
		}
		if err := json.Unmarshal(unet, &c); err != nil {
			return l, fmt.Errorf("unet config: %w", err)
		}
		n, err := sameForEveryBlock(c.LayersPerBlock)
		if err != nil {
			return l, fmt.Errorf("unet config: layers_per_block: %w", err)
		}
		l.LayersPerBlock = n
		for _, t := range c.UpBlockTypes {
			l.UpBlockAttention = append(l.UpBlockAttention, strings.Contains(t, "CrossAttn"))
		}
	}
	if vae != nil {
		var c struct {
			BlockOutChannels []int `json:"block_out_channels"`
		}
		if err := json.Unmarshal(vae, &c); err != nil {
			return l, fmt.Errorf("vae config: %w", err)
		}
		l.VAELevels = len(c.BlockOutChannels)
	}
	if textEncoder != nil {
		var c struct {
			HiddenAct string `json:"hidden_act"`
			Layers    int    `json:"num_hidden_layers"`
		}
		if err := json.Unmarshal(textEncoder, &c); err != nil {
			return l, fmt.Errorf("text_encoder config: %w", err)
		}
		// SD2's OpenCLIP uses gelu; SD1's CLIP ViT-L/14 uses quick_gelu.
		l.OpenCLIP = c.HiddenAct == "gelu"
		l.TextLayers = c.Layers
	}
	return l, nil
}

// sameForEveryBlock reads a diffusers per-block integer, which is one number
// or a list with one per block; the original key layout numbers blocks by a
// single count, so a list must repeat one value.
func sameForEveryBlock(v json.RawMessage) (int, error) {
	if len(v) == 0 || string(v) == "null" {
		return 2, nil // UNet2DConditionModel's default
	}
	var n int
	if json.Unmarshal(v, &n) == nil {
		return n, nil
	}
	var list []int
	if err := json.Unmarshal(v, &list); err != nil || len(list) == 0 {
		return 0, fmt.Errorf("%s: want an integer or a list of integers", v)
	}
	for _, x := range list {
		if x != list[0] {
			return 0, fmt.Errorf("%v: an original single file needs the same count in every block", list)
		}
	}
	return list[0], nil
}

// referenceConfigs reads the component configs of a diffusers folder for
// OpenOptions.ConfigFrom.
func referenceConfigs(dir string) (map[string]*Component, error) {
	dir = resolveHFCache(dir)
	if !dirExists(dir) {
		return nil, fmt.Errorf("config folder %s: not a folder", dir)
	}
	out := map[string]*Component{}
	for _, name := range []string{UNet, VAE, TextEncoder, Scheduler, Tokenizer} {
		sub := filepath.Join(dir, name)
		if !dirExists(sub) {
			continue
		}
		c := &Component{Name: name}
		cfgName := map[string]string{Scheduler: "scheduler_config.json", Tokenizer: "tokenizer_config.json"}[name]
		if cfgName == "" {
			cfgName = "config.json"
		}
		p := filepath.Join(sub, cfgName)
		if b, err := os.ReadFile(p); err == nil {
			c.Config, c.ConfigOrigin = pyjson.Sanitize(b), p
		} else if name != Tokenizer {
			return nil, fmt.Errorf("config folder %s: %w", dir, err)
		}
		if name == Tokenizer {
			c.Dir = sub
		}
		out[name] = c
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config folder %s: no unet, vae, text_encoder, scheduler or tokenizer folder", dir)
	}
	return out, nil
}

// configureSingleFile gives each component of a single file its config:
// from the ConfigFrom folder (checked against the shapes), or inferred from
// the shapes on top of the detected family's preset.
func (m *Model) configureSingleFile(path string, layout Layout, ref map[string]*Component, opts OpenOptions) error {
	family := "sd15"
	if layout.OpenCLIP {
		family = "sd21"
	}
	inferred := map[string]map[string]any{}
	for name, c := range m.Components {
		fields, err := InferConfig(name, c.Source)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		inferred[name] = fields
	}
	if u := inferred[UNet]; u != nil && u["cross_attention_dim"] == 1024 {
		family = "sd21" // an SD2 UNet without its text encoder
	}
	preset, err := Preset(family)
	if err != nil {
		return err
	}
	for _, name := range modelComponents {
		c := m.Components[name]
		if c == nil {
			continue
		}
		if ref != nil {
			r := ref[name]
			if r == nil || r.Config == nil {
				return fmt.Errorf("config folder %s has no %s config", opts.ConfigFrom, name)
			}
			if err := checkConfig(name, r.Config, inferred[name]); err != nil {
				return fmt.Errorf("%s does not fit %s: %w", r.ConfigOrigin, path, err)
			}
			c.Config, c.ConfigOrigin = r.Config, r.ConfigOrigin
			continue
		}
		cfg, err := familyConfig(family, name, preset[name], inferred[name], opts)
		if err != nil {
			return err
		}
		c.Config, c.ConfigOrigin = cfg, fmt.Sprintf("inferred from tensor shapes (%s defaults)", family)
	}
	if m.Components[UNet] != nil { // a standalone VAE needs no scheduler
		sched := &Component{Name: Scheduler, Config: preset[Scheduler], ConfigOrigin: family + " preset"}
		if r := ref[Scheduler]; r != nil {
			sched.Config, sched.ConfigOrigin = r.Config, r.ConfigOrigin
		}
		if sched.Config, err = setPredictionType(sched.Config, opts.PredictionType); err != nil {
			return err
		}
		m.Components[Scheduler] = sched
	}
	if r := ref[Tokenizer]; r != nil && m.Components[TextEncoder] != nil {
		m.Components[Tokenizer] = r
	}
	return nil
}

// familyConfig lays the inferred fields over the family preset and fills
// what shapes cannot tell from the family's conventions.
func familyConfig(family, name string, preset []byte, fields map[string]any, opts OpenOptions) ([]byte, error) {
	var cfg map[string]any
	if err := json.Unmarshal(preset, &cfg); err != nil {
		return nil, err
	}
	for k, v := range fields {
		cfg[k] = v
	}
	sd2 := family == "sd21"
	// SD2's 768 px models predict v; SD2-base (512 px) predicts epsilon.
	base512 := !sd2 || opts.PredictionType == "epsilon"
	switch name {
	case UNet:
		if sd2 { // SD2 attention heads have 64 channels; diffusers' attention_head_dim holds head counts
			var heads []int
			for _, c := range fields["block_out_channels"].([]int) {
				heads = append(heads, headsOf(c, 64))
			}
			cfg["attention_head_dim"] = heads
		}
		if base512 {
			cfg["sample_size"] = 64
		}
	case VAE:
		if base512 {
			cfg["sample_size"] = 512
		}
	case TextEncoder: // CLIP ViT-L/14 and OpenCLIP ViT-H/14 both use 64-channel heads
		cfg["num_attention_heads"] = headsOf(fields["hidden_size"].(int), 64)
	}
	return json.MarshalIndent(cfg, "", "  ")
}

func headsOf(channels, headDim int) int {
	if channels >= headDim && channels%headDim == 0 {
		return channels / headDim
	}
	return 1
}

// checkConfig refuses a config whose shape-determined fields disagree with
// the weights. A field the config omits is compared with diffusers' default.
func checkConfig(name string, cfg []byte, fields map[string]any) error {
	var have map[string]any
	if err := json.Unmarshal(cfg, &have); err != nil {
		return err
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := have[k]
		if !ok {
			if got, ok = configDefaults[name][k]; !ok {
				continue
			}
		}
		if !jsonEqual(got, fields[k]) {
			return fmt.Errorf("%s %s is %s but the weights give %s", name, k, jsonString(got), jsonString(fields[k]))
		}
	}
	return nil
}

// configDefaults are diffusers' defaults for shape-determined fields that
// older config files omit.
var configDefaults = map[string]map[string]any{
	UNet: {
		"use_linear_projection": false, "mid_block_type": "UNetMidBlock2DCrossAttn",
		"transformer_layers_per_block": 1, "conv_in_kernel": 3, "conv_out_kernel": 3,
	},
	VAE: {"use_quant_conv": true, "use_post_quant_conv": true},
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonEqual compares two values by their JSON encoding after a round trip,
// so []int{1} equals []any{1.0}.
func jsonEqual(a, b any) bool {
	norm := func(v any) string {
		var x any
		_ = json.Unmarshal([]byte(jsonString(v)), &x)
		return jsonString(x)
	}
	return norm(a) == norm(b)
}
