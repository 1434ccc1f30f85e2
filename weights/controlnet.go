package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// ControlNet is the component name of a ControlNet (diffusers'
// ControlNetModel).
const ControlNet = "controlnet"

// controlPrefix is the original ControlNet layout's prefix (lllyasviel's
// cldm, as AUTOMATIC1111's ControlNet extension reads it); some converted
// files drop it.
const controlPrefix = "control_model."

// OpenControlNet opens a ControlNet as users have it:
//   - a diffusers ControlNetModel folder (config.json + diffusion_pytorch_model.safetensors);
//   - a single file in the diffusers layout (controlnet_cond_embedding.*, controlnet_down_blocks.*);
//   - a single file in the original layout of AUTOMATIC1111's ControlNet
//     extension (control_model.input_hint_block.*, .zero_convs.*,
//     .middle_block_out.*, and the U-Net encoder's input_blocks/middle_block/
//     time_embed), renamed here to diffusers keys with the U-Net's key map.
//
// A single file carries no config: it is unetConfig (the base model's U-Net
// config.json, whose encoder half a ControlNet copies) with the
// conditioning embedding's channels read from the tensor shapes.
func OpenControlNet(path string, unetConfig []byte) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("controlnet: %w", err)
	}
	m := &Model{Path: path, Components: map[string]*Component{}}
	if st.IsDir() {
		m.Format = FormatComponent
		c, err := m.openComponentDir(ControlNet, path, OpenOptions{})
		if err != nil {
			m.Close()
			return nil, err
		}
		if c == nil || c.Source == nil {
			return nil, fmt.Errorf("%s: no ControlNet weights", path)
		}
		var cls struct {
			Class string `json:"_class_name"`
		}
		if json.Unmarshal(c.Config, &cls) == nil && cls.Class != "" && cls.Class != "ControlNetModel" {
			m.Close()
			return nil, fmt.Errorf("%s: config.json is a %s, not a ControlNetModel", path, cls.Class)
		}
		m.Components[ControlNet] = c
		return m, nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ckpt", ".pt", ".pth", ".bin", ".pkl":
		return nil, fmt.Errorf("%s: PyTorch pickle checkpoints are not supported (they can run code when loaded); use the .safetensors release of this ControlNet", path)
	}
	m.Format = FormatSingleFile
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, f)
	names := f.Names()
	original := false
	hints := -1 // the last input_hint_block index
	for _, n := range names {
		n = strings.TrimPrefix(n, controlPrefix)
		if r, ok := strings.CutPrefix(n, "input_hint_block."); ok {
			original = true
			if i, _, ok := cutIndex(r); ok {
				hints = max(hints, i)
			}
		}
	}
	lpb := 0
	if original {
		var stripped []string
		for _, n := range names {
			stripped = append(stripped, unetPrefix+strings.TrimPrefix(n, controlPrefix))
		}
		lpb = OriginalLayout(stripped).LayersPerBlock
	}
	src := newFileSource()
	for _, name := range names {
		key, ok := name, true
		if original {
			key, ok = controlNetToDiffusers(strings.TrimPrefix(name, controlPrefix), lpb, hints)
		}
		if !ok {
			m.Unexpected = append(m.Unexpected, name)
			continue
		}
		t, _ := f.Info(name)
		if !src.add(key, tensorRef{file: f, name: name, part: whole, dtype: t.DType, shape: t.Shape}) {
			m.Close()
			return nil, fmt.Errorf("%s: tensor %q maps to %s, which another tensor already gave", path, name, key)
		}
	}
	src.finish()
	if _, ok := src.refs["controlnet_cond_embedding.conv_in.weight"]; !ok {
		m.Close()
		return nil, fmt.Errorf("%s: not a ControlNet: no controlnet_cond_embedding.conv_in.weight (diffusers layout) or control_model.input_hint_block.0.weight (original layout)", path)
	}
	if len(m.Unexpected) > 0 {
		m.Close()
		return nil, fmt.Errorf("%s: %d tensors of no ControlNet module (e.g. %q): T2I-Adapters, ControlNet-LLLite and \"diff\" ControlNets are not supported", path, len(m.Unexpected), m.Unexpected[0])
	}
	cfg, err := controlNetConfig(src, unetConfig)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.Components[ControlNet] = &Component{Name: ControlNet, Config: cfg, ConfigOrigin: "the base model's U-Net config, conditioning channels from the tensor shapes", Source: src}
	return m, nil
}

// controlNetToDiffusers renames a key of the original ControlNet layout
// (without "control_model."), as diffusers' convert_controlnet_checkpoint:
// input_hint_block's convolutions (every other entry; SiLUs between) become
// the conditioning embedding's conv_in, blocks.* and conv_out; zero_convs.i
// becomes controlnet_down_blocks.i; middle_block_out.0 controlnet_mid_block;
// the rest is the U-Net's encoder half.
func controlNetToDiffusers(k string, lpb, lastHint int) (string, bool) {
	if r, ok := strings.CutPrefix(k, "input_hint_block."); ok {
		i, p, ok := cutIndex(r)
		if !ok || i%2 != 0 || !paramRest.MatchString(p) {
			return "", false
		}
		switch {
		case i == 0:
			return "controlnet_cond_embedding.conv_in." + p, true
		case i == lastHint:
			return "controlnet_cond_embedding.conv_out." + p, true
		}
		return fmt.Sprintf("controlnet_cond_embedding.blocks.%d.%s", i/2-1, p), true
	}
	if r, ok := strings.CutPrefix(k, "zero_convs."); ok {
		i, p, ok := cutIndex(r)
		if p, cut := strings.CutPrefix(p, "0."); ok && cut && paramRest.MatchString(p) {
			return "controlnet_down_blocks." + strconv.Itoa(i) + "." + p, true
		}
		return "", false
	}
	if p, ok := strings.CutPrefix(k, "middle_block_out.0."); ok && paramRest.MatchString(p) {
		return "controlnet_mid_block." + p, true
	}
	if strings.HasPrefix(k, "output_blocks.") || strings.HasPrefix(k, "out.") {
		return "", false // a full U-Net: not a ControlNet
	}
	return unetToDiffusers(k, lpb)
}

// controlNetConfig is the config of a single-file ControlNet: the base
// U-Net's, less its decoder half, with the conditioning embedding read from
// the shapes. The encoder's channels must agree with the base U-Net's.
func controlNetConfig(src *fileSource, unetConfig []byte) ([]byte, error) {
	if unetConfig == nil {
		return nil, fmt.Errorf("a single-file ControlNet needs the base model's U-Net config")
	}
	var cfg map[string]any
	if err := json.Unmarshal(pyjson.Sanitize(unetConfig), &cfg); err != nil {
		return nil, fmt.Errorf("the base U-Net config: %w", err)
	}
	for _, k := range []string{"up_block_types", "out_channels", "conv_out_kernel", "sample_size", "center_input_sample", "_diffusers_version", "_name_or_path"} {
		delete(cfg, k)
	}
	cfg["_class_name"] = "ControlNetModel"
	shape := func(key string, rank int) ([]int, error) {
		r, ok := src.refs[key]
		if !ok || len(r.shape) != rank {
			return nil, fmt.Errorf("tensor %s: want rank %d, have %v", key, rank, r.shape)
		}
		return r.shape, nil
	}
	in, err := shape("controlnet_cond_embedding.conv_in.weight", 4)
	if err != nil {
		return nil, err
	}
	cfg["conditioning_channels"] = in[1]
	channels := []int{in[0]}
	for i := 1; ; i += 2 {
		s, err := shape(fmt.Sprintf("controlnet_cond_embedding.blocks.%d.weight", i), 4)
		if err != nil {
			break
		}
		channels = append(channels, s[0])
	}
	cfg["conditioning_embedding_out_channels"] = channels
	out, err := shape("controlnet_cond_embedding.conv_out.weight", 4)
	if err != nil {
		return nil, err
	}
	var boc []int
	if b, err := json.Marshal(cfg["block_out_channels"]); err == nil {
		_ = json.Unmarshal(b, &boc)
	}
	if len(boc) == 0 || out[0] != boc[0] {
		return nil, fmt.Errorf("its conditioning embedding makes %d channels but the base U-Net's block_out_channels are %v: a ControlNet for another model family", out[0], boc)
	}
	if s, err := shape("conv_in.weight", 4); err != nil || s[0] != boc[0] {
		return nil, fmt.Errorf("its conv_in does not match the base U-Net's first block (%v, want %d channels)", s, boc[0])
	}
	return json.Marshal(cfg)
}
