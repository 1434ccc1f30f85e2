package ldm

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ldm-project/ldm/internal/fsutil"
	"github.com/ldm-project/ldm/weights"
)

// ConvertOptions tunes Convert.
type ConvertOptions struct {
	// DType of the written weights: F32, F16 or BF16; "" keeps the source's
	// (that of its first U-Net tensor).
	DType weights.DType
	// ConfigFrom and Tokenizer are as in LoadOptions: a single-file source
	// takes its configs from ConfigFrom, and a diffusers target gets a copy
	// of the tokenizer (the source's own, Tokenizer, or the Hugging Face
	// cache's).
	ConfigFrom, Tokenizer string
}

// Convert rewrites a model between the diffusers folder and the single-file
// (original CompVis) layouts: dst ending in .safetensors is a single file,
// anything else a diffusers folder. dst must not exist; it appears whole or
// not at all (files and the folder are written under temporary names and
// renamed last).
func Convert(src, dst string, o ConvertOptions) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s exists: remove it or pick another destination", dst)
	}
	m, err := weights.OpenModel(src, weights.OpenOptions{ConfigFrom: o.ConfigFrom})
	if err != nil {
		return err
	}
	defer m.Close()
	for _, name := range []string{weights.UNet, weights.VAE, weights.TextEncoder} {
		if c := m.Components[name]; c == nil || c.Source == nil {
			return fmt.Errorf("%s: no %s: Convert writes whole pipelines (unet, vae, text_encoder)", src, name)
		}
	}
	dt := o.DType
	if dt == "" {
		u := m.Components[weights.UNet].Source
		dt, _, _ = u.Info(u.Keys()[0])
	}
	switch dt {
	case weights.F32, weights.F16, weights.BF16:
	default:
		return fmt.Errorf("dtype %q: want F32, F16 or BF16", dt)
	}
	if strings.EqualFold(filepath.Ext(dst), ".safetensors") {
		return weights.WriteSingleFile(dst, m, dt, map[string]string{"format": "pt"})
	}
	return writeDiffusers(m, dst, dt, o.Tokenizer)
}

// diffusersFiles names each component's weights file and library in a
// diffusers folder.
var diffusersFiles = []struct{ name, file, library, class string }{
	{weights.UNet, "diffusion_pytorch_model.safetensors", "diffusers", "UNet2DConditionModel"},
	{weights.VAE, "diffusion_pytorch_model.safetensors", "diffusers", "AutoencoderKL"},
	{weights.TextEncoder, "model.safetensors", "transformers", "CLIPTextModel"},
}

// tokenizerFiles are the files of a CLIP tokenizer folder worth copying.
var tokenizerFiles = []string{"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}

func writeDiffusers(m *weights.Model, dst string, dt weights.DType, tokenizer string) (err error) {
	parent := filepath.Dir(filepath.Clean(dst))
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	index := map[string]any{
		"_class_name":             "StableDiffusionPipeline",
		"requires_safety_checker": false,
		"safety_checker":          []any{nil, nil},
		"feature_extractor":       []any{nil, nil},
	}
	writeJSON := func(path string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		return fsutil.WriteFileAtomic(path, append(b, '\n'))
	}
	for _, f := range diffusersFiles {
		c := m.Components[f.name]
		dir := filepath.Join(tmp, f.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, "config.json"), c.Config); err != nil {
			return err
		}
		var ts []weights.WriteTensor
		for _, key := range c.Source.Keys() {
			_, shape, _ := c.Source.Info(key)
			src := c.Source
			ts = append(ts, weights.WriteTensor{Name: key, DType: dt, Shape: shape, Load: func() ([]float32, error) {
				v, _, err := src.Float32(key)
				return v, err
			}})
		}
		if err := weights.WriteFile(filepath.Join(dir, f.file), ts, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		index[f.name] = []string{f.library, f.class}
	}
	if c := m.Components[weights.Scheduler]; c != nil && c.Config != nil {
		dir := filepath.Join(tmp, weights.Scheduler)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, "scheduler_config.json"), c.Config); err != nil {
			return err
		}
		var sc struct {
			Class string `json:"_class_name"`
		}
		_ = json.Unmarshal(c.Config, &sc)
		if sc.Class == "" {
			sc.Class = "PNDMScheduler"
		}
		index[weights.Scheduler] = []string{"diffusers", sc.Class}
	}
	var tc struct {
		Hidden int `json:"hidden_size"`
	}
	_ = json.Unmarshal(m.Components[weights.TextEncoder].Config, &tc)
	if tokDir, terr := findTokenizer(m, tokenizer, tc.Hidden); terr != nil {
		slog.Warn("convert: writing the folder without a tokenizer; loading it will need one", "reason", terr)
	} else {
		dir := filepath.Join(tmp, weights.Tokenizer)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		for _, name := range tokenizerFiles {
			b, rerr := os.ReadFile(filepath.Join(tokDir, name))
			if rerr != nil {
				continue
			}
			if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), b); err != nil {
				return err
			}
		}
		index[weights.Tokenizer] = []string{"transformers", "CLIPTokenizer"}
	}
	if err := writeJSON(filepath.Join(tmp, "model_index.json"), index); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes 0700
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("moving the converted model into place: %w", err)
	}
	return nil
}
