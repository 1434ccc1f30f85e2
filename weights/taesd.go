package weights

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TAESD is the component name of a tiny autoencoder (diffusers'
// AutoencoderTiny, madebyollin's TAESD).
const TAESD = "taesd"

// The original TAESD files (madebyollin/taesd's taesd_encoder.pth and
// taesd_decoder.pth as safetensors, which ComfyUI's models/vae_approx holds
// beside taesdxl_*, taesd3_*, taef1_*) are nn.Sequential state dicts;
// diffusers' decoder has no parameter-free Clamp in front, so its layer i is
// the original decoder's i+1.
var taesdRoles = []string{"encoder", "decoder"}

// OpenTAESD opens a tiny autoencoder in any of the layouts users have:
//   - a diffusers AutoencoderTiny folder (config.json + diffusion_pytorch_model.safetensors),
//   - a diffusers-layout single file (encoder.layers.* / decoder.layers.*, as
//     stable-diffusion.cpp's --taesd takes),
//   - the original taesd_encoder/taesd_decoder files, given as a folder holding
//     them (e.g. taesdxl_decoder.safetensors), or as either file (the other one
//     beside it is used when present). A decoder alone is enough to decode.
//
// The result has one component, TAESD, under diffusers keys; its Config is the
// folder's config.json, or a minimal one (latent_channels from the tensor
// shapes) for single files.
func OpenTAESD(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("taesd: %w", err)
	}
	m := &Model{Path: path, Components: map[string]*Component{}}
	var cfg []byte
	origin := "inferred from the tensor shapes"
	var files []taesdFile
	if st.IsDir() {
		if fileExists(filepath.Join(path, "config.json")) {
			if cfg, err = os.ReadFile(filepath.Join(path, "config.json")); err != nil {
				return nil, err
			}
			origin = filepath.Join(path, "config.json")
			ws, err := findWeights(path, "")
			if err != nil {
				return nil, err
			}
			if len(ws) != 1 || ws[0].shard {
				return nil, fmt.Errorf("%s: an AutoencoderTiny folder needs diffusion_pytorch_model.safetensors", path)
			}
			files = []taesdFile{{path: ws[0].path}}
		} else if files, err = originalTAESDFiles(path, ""); err != nil {
			return nil, err
		}
		m.Format = FormatComponent
	} else {
		m.Format = FormatSingleFile
		base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if family, ok := taesdFamily(base); ok {
			if files, err = originalTAESDFiles(filepath.Dir(path), family); err != nil {
				return nil, err
			}
		} else {
			files = []taesdFile{{path: path}}
		}
	}
	src := newFileSource()
	for _, tf := range files {
		f, err := Open(tf.path)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.closers = append(m.closers, f)
		for _, name := range f.Names() {
			key, ok := taesdKey(tf.role, name)
			if !ok {
				m.Unexpected = append(m.Unexpected, name)
				continue
			}
			t, _ := f.Info(name)
			if !src.add(key, tensorRef{file: f, name: name, part: whole, dtype: t.DType, shape: t.Shape}) {
				m.Close()
				return nil, fmt.Errorf("%s: tensor %q maps to %s, which another tensor already gave", tf.path, name, key)
			}
		}
	}
	src.finish()
	if len(src.keys) == 0 {
		m.Close()
		return nil, fmt.Errorf("%s: no TAESD tensor found (want encoder.layers.* / decoder.layers.*, or the taesd_encoder/taesd_decoder layout 0.weight, 1.conv.0.weight, ...)", path)
	}
	if cfg == nil {
		if cfg, err = taesdConfig(src); err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	m.Components[TAESD] = &Component{Name: TAESD, Config: cfg, ConfigOrigin: origin, Source: src}
	return m, nil
}

// taesdFile is one file to read; role is "encoder" or "decoder" for the
// original layout (bare Sequential indices), "" when the keys say it.
type taesdFile struct {
	path, role string
}

// taesdFamily recognises an original file name, <family>_encoder or
// <family>_decoder with family taesd, taesdxl, taesd3, taef1, ...
func taesdFamily(base string) (string, bool) {
	for _, r := range taesdRoles {
		if f, ok := strings.CutSuffix(base, "_"+r); ok && strings.HasPrefix(f, "tae") {
			return f, true
		}
	}
	return "", false
}

// originalTAESDFiles finds <family>_encoder and <family>_decoder
// (.safetensors) in dir; family "" takes whichever family the folder holds.
func originalTAESDFiles(dir, family string) ([]taesdFile, error) {
	var out []taesdFile
	for _, role := range taesdRoles {
		var matches []string
		if family != "" {
			if p := filepath.Join(dir, family+"_"+role+".safetensors"); fileExists(p) {
				matches = []string{p}
			}
		} else {
			matches, _ = filepath.Glob(filepath.Join(dir, "tae*_"+role+".safetensors"))
		}
		if len(matches) > 1 {
			return nil, fmt.Errorf("%s: several TAESD %ss (%s); pass the file itself", dir, role, strings.Join(matches, ", "))
		}
		if len(matches) == 1 {
			out = append(out, taesdFile{path: matches[0], role: role})
		}
	}
	if len(out) == 0 {
		if ms, _ := filepath.Glob(filepath.Join(dir, "tae*_*coder.pth")); len(ms) > 0 {
			return nil, fmt.Errorf("%s: only PyTorch pickle files (%s); convert them to .safetensors (loading a pickle can run code)", dir, filepath.Base(ms[0]))
		}
		return nil, fmt.Errorf("%s: no TAESD here: want config.json + diffusion_pytorch_model.safetensors (diffusers) or taesd_encoder/taesd_decoder .safetensors files", dir)
	}
	return out, nil
}

// taesdKey converts a stored name to the diffusers key. ComfyUI's combined
// state dicts prefix the original names with taesd_encoder./taesd_decoder.
// and add vae_scale/vae_shift buffers, which are not weights.
func taesdKey(role, name string) (string, bool) {
	for _, r := range taesdRoles {
		if rest, ok := strings.CutPrefix(name, "taesd_"+r+"."); ok {
			role, name = r, rest
		}
	}
	if role == "" {
		if strings.HasPrefix(name, "encoder.layers.") || strings.HasPrefix(name, "decoder.layers.") {
			return name, true
		}
		return "", false
	}
	idx, rest, ok := strings.Cut(name, ".")
	i, err := strconv.Atoi(idx)
	if !ok || err != nil {
		return "", false
	}
	if role == "decoder" {
		if i == 0 { // the Clamp has no parameters
			return "", false
		}
		i--
	}
	return role + ".layers." + strconv.Itoa(i) + "." + rest, true
}

// taesdConfig is a config for files that carry none: AutoencoderTiny's
// defaults, with the latent channels read from the first decoder conv (or the
// last encoder conv) so that TAESD3/TAEF1-style 16-channel files load too.
func taesdConfig(src *fileSource) ([]byte, error) {
	latent := 0
	if r, ok := src.refs["decoder.layers.0.weight"]; ok && len(r.shape) == 4 {
		latent = r.shape[1]
	}
	last := -1
	for _, k := range src.keys {
		if rest, ok := strings.CutPrefix(k, "encoder.layers."); ok {
			i, _, _ := strings.Cut(rest, ".")
			if n, err := strconv.Atoi(i); err == nil && n > last {
				last = n
			}
		}
	}
	if r, ok := src.refs[fmt.Sprintf("encoder.layers.%d.weight", last)]; ok && len(r.shape) == 4 {
		if latent != 0 && r.shape[0] != latent {
			return nil, fmt.Errorf("the encoder makes %d latent channels and the decoder reads %d", r.shape[0], latent)
		}
		latent = r.shape[0]
	}
	if latent == 0 {
		return nil, fmt.Errorf("cannot tell the latent channels: no decoder.layers.0.weight or encoder output conv")
	}
	return json.Marshal(map[string]any{"_class_name": "AutoencoderTiny", "latent_channels": latent})
}
