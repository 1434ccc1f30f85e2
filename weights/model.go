package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-project/ldm/internal/pyjson"
)

// Model formats.
const (
	FormatDiffusers  = "diffusers"   // a pipeline folder with model_index.json
	FormatComponent  = "component"   // one component's folder: config.json + weights
	FormatSingleFile = "single_file" // an original (CompVis/LDM) checkpoint in one .safetensors file
)

// OpenOptions tunes OpenModel.
type OpenOptions struct {
	// ConfigFrom names a diffusers folder whose component configs, tokenizer
	// and scheduler replace the inferred ones when opening a single file, as
	// diffusers' from_single_file(config=...) does. The fields that tensor
	// shapes determine must agree with the weights.
	ConfigFrom string
	// PredictionType ("epsilon", "v_prediction" or "sample") overrides the
	// scheduler config's.
	PredictionType string
	// Variant (e.g. "fp16") prefers a diffusers folder's
	// *.<variant>.safetensors weights. By default the plain weights are used
	// when both exist.
	Variant string
	// WeightsDType is the dtype weights are kept in once loaded: WeightsF32
	// (converted to float32) or WeightsF16 (16 bits: float16 and bfloat16
	// tensors as stored, others converted to float16); "" takes
	// $LDM_WEIGHTS_DTYPE, else WeightsF32.
	WeightsDType string
}

// Component is one part of a pipeline: unet, vae, text_encoder (with a
// Source), tokenizer (with a Dir), scheduler (a Config only).
type Component struct {
	Name string
	// Config is the diffusers config JSON (scheduler_config.json for the
	// scheduler, tokenizer_config.json for the tokenizer).
	Config []byte
	// ConfigOrigin says where Config came from: a file, or inference.
	ConfigOrigin string
	// Dir is the component's folder, when it has one (the tokenizer's files).
	Dir    string
	Source Source
	// Unexpected lists stored keys that map to no diffusers key of this
	// component (original names for a single file).
	Unexpected []string
}

// Model is an opened model: its components, each reading tensors on demand.
type Model struct {
	Path       string
	Format     string
	Components map[string]*Component
	// Unexpected lists keys that belong to no component (single file).
	Unexpected []string
	// Ignored lists keys recognised and skipped: noise-schedule buffers,
	// position_ids, EMA copies, layers diffusers drops.
	Ignored []string

	closers []io.Closer
}

// Close releases every open file.
func (m *Model) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c.Close())
	}
	m.closers = nil
	return errors.Join(errs...)
}

// modelComponents are the components with weights that a pipeline needs.
var modelComponents = []string{UNet, VAE, TextEncoder}

// OpenModel opens a diffusers pipeline folder, a component folder, a Hugging
// Face cache folder (models--org--name) or an original single-file
// .safetensors checkpoint. Only headers are read; tensors are read when asked.
func OpenModel(path string, opts OpenOptions) (*Model, error) {
	keep16, err := keepHalf(opts.WeightsDType)
	if err != nil {
		return nil, err
	}
	m, err := openModel(path, opts)
	if err == nil && keep16 {
		m.keepHalf()
	}
	return m, err
}

func openModel(path string, opts OpenOptions) (*Model, error) {
	switch opts.PredictionType {
	case "", "epsilon", "v_prediction", "sample":
	default:
		return nil, fmt.Errorf("prediction type %q: want epsilon, v_prediction or sample", opts.PredictionType)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".ckpt", ".pt", ".pth", ".bin", ".pkl":
			return nil, fmt.Errorf("%s: PyTorch pickle checkpoints are not supported (they can run code when loaded); convert it to .safetensors first, e.g. with the safetensors convert script or a web UI's checkpoint merger", path)
		}
		return openSingleFile(path, opts)
	}
	dir := resolveHFCache(path)
	switch {
	case fileExists(filepath.Join(dir, "model_index.json")):
		return openDiffusers(path, dir, opts)
	case fileExists(filepath.Join(dir, "config.json")), fileExists(filepath.Join(dir, "scheduler_config.json")):
		return openComponentFolder(path, dir, opts)
	}
	return nil, fmt.Errorf("%s: not a model folder: no model_index.json (diffusers pipeline) or config.json (component)", path)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// resolveHFCache maps a Hugging Face hub cache folder (models--org--name,
// with refs/ and snapshots/) to the snapshot that refs/main names, or to the
// only snapshot.
func resolveHFCache(dir string) string {
	snaps := filepath.Join(dir, "snapshots")
	if !dirExists(snaps) {
		return dir
	}
	if ref, err := os.ReadFile(filepath.Join(dir, "refs", "main")); err == nil {
		if p := filepath.Join(snaps, strings.TrimSpace(string(ref))); dirExists(p) {
			return p
		}
	}
	entries, err := os.ReadDir(snaps)
	if err == nil && len(entries) == 1 && entries[0].IsDir() {
		return filepath.Join(snaps, entries[0].Name())
	}
	return dir
}

func openDiffusers(path, dir string, opts OpenOptions) (*Model, error) {
	var index map[string]json.RawMessage
	if err := readJSON(filepath.Join(dir, "model_index.json"), &index); err != nil {
		return nil, err
	}
	m := &Model{Path: path, Format: FormatDiffusers, Components: map[string]*Component{}}
	names := make([]string, 0, len(index))
	for name, v := range index {
		var spec []any // ["diffusers", "UNet2DConditionModel"], or [null, null] for an absent one
		if strings.HasPrefix(name, "_") || json.Unmarshal(v, &spec) != nil || len(spec) != 2 || spec[1] == nil {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sub := filepath.Join(dir, name)
		if !dirExists(sub) {
			m.Close()
			return nil, fmt.Errorf("%s: model_index.json lists %s but the folder %s is missing", path, name, sub)
		}
		c, err := m.openComponentDir(name, sub, opts)
		if err != nil {
			m.Close()
			return nil, err
		}
		if c != nil {
			m.Components[name] = c
		}
	}
	return m, nil
}

func openComponentFolder(path, dir string, opts OpenOptions) (*Model, error) {
	m := &Model{Path: path, Format: FormatComponent, Components: map[string]*Component{}}
	name := componentNameOf(dir)
	c, err := m.openComponentDir(name, dir, opts)
	if err != nil {
		m.Close()
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s: a %s folder holds no weights", path, name)
	}
	m.Components[name] = c
	return m, nil
}

// componentNameOf names a component folder by its config's class, falling
// back to the folder's name.
func componentNameOf(dir string) string {
	if fileExists(filepath.Join(dir, "scheduler_config.json")) {
		return Scheduler
	}
	var cfg struct {
		Class         string   `json:"_class_name"`
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	_ = readJSON(filepath.Join(dir, "config.json"), &cfg)
	switch {
	case strings.HasPrefix(cfg.Class, "UNet2DCondition"):
		return UNet
	case strings.HasPrefix(cfg.Class, "AutoencoderKL"):
		return VAE
	case strings.HasPrefix(cfg.ModelType, "clip_text"), len(cfg.Architectures) > 0 && strings.HasPrefix(cfg.Architectures[0], "CLIPText"):
		return TextEncoder
	}
	return filepath.Base(dir)
}

// openComponentDir opens one folder of a pipeline. It returns nil for a
// folder with nothing this package serves (e.g. feature_extractor).
func (m *Model) openComponentDir(name, dir string, opts OpenOptions) (*Component, error) {
	c := &Component{Name: name, Dir: dir}
	for _, cfgName := range []string{"config.json", "scheduler_config.json", "tokenizer_config.json"} {
		p := filepath.Join(dir, cfgName)
		if fileExists(p) {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			c.Config, c.ConfigOrigin = pyjson.Sanitize(b), p
			break
		}
	}
	if name == Scheduler {
		cfg, err := setPredictionType(c.Config, opts.PredictionType)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.ConfigOrigin, err)
		}
		c.Config = cfg
		return c, nil
	}
	if strings.HasPrefix(name, Tokenizer) {
		return c, nil
	}
	files, err := findWeights(dir, opts.Variant)
	if err != nil {
		if isModelComponent(name) {
			return nil, err
		}
		files = nil // e.g. a safety_checker shipped as a pickle: not needed to generate
	}
	if len(files) == 0 {
		if isModelComponent(name) {
			return nil, fmt.Errorf("%s: no weights: want diffusion_pytorch_model.safetensors or model.safetensors (or a sharded .safetensors.index.json)", dir)
		}
		if c.Config == nil {
			return nil, nil
		}
		return c, nil
	}
	if c.Config == nil {
		return nil, fmt.Errorf("%s: weights but no config.json", dir)
	}
	src, err := m.openWeights(name, files)
	if err != nil {
		return nil, err
	}
	c.Source = src
	return c, nil
}

func isModelComponent(name string) bool {
	for _, n := range modelComponents {
		if n == name {
			return true
		}
	}
	return false
}

// weightFiles is what findWeights found: plain files, or a shard index.
type weightFiles struct {
	path  string
	shard bool // path is a *.safetensors.index.json
}

// findWeights picks a component folder's weights: the requested variant
// first, then plain weights, then (with no variant requested) fp16 ones.
func findWeights(dir, variant string) ([]weightFiles, error) {
	var suffixes []string
	if variant != "" {
		suffixes = append(suffixes, "."+variant)
	}
	suffixes = append(suffixes, "")
	if variant == "" {
		suffixes = append(suffixes, ".fp16")
	}
	for _, sfx := range suffixes {
		for _, base := range []string{"diffusion_pytorch_model", "model"} {
			if p := filepath.Join(dir, base+sfx+".safetensors"); fileExists(p) {
				return []weightFiles{{path: p}}, nil
			}
			if p := filepath.Join(dir, base+".safetensors.index"+sfx+".json"); fileExists(p) {
				return []weightFiles{{path: p, shard: true}}, nil
			}
			if p := filepath.Join(dir, base+sfx+".safetensors.index.json"); fileExists(p) {
				return []weightFiles{{path: p, shard: true}}, nil
			}
		}
	}
	for _, pattern := range []string{"*.bin", "*.ckpt", "*.pt", "*.pth"} {
		if ms, _ := filepath.Glob(filepath.Join(dir, pattern)); len(ms) > 0 {
			return nil, fmt.Errorf("%s: only PyTorch pickle weights (%s); they are not supported (loading a pickle can run code): convert them to .safetensors", dir, filepath.Base(ms[0]))
		}
	}
	return nil, nil
}

// openWeights opens a diffusers component's weight files into one Source.
func (m *Model) openWeights(component string, files []weightFiles) (Source, error) {
	src := newFileSource()
	addFile := func(f *File, only map[string]bool) error {
		for _, name := range f.Names() {
			if only != nil && !only[name] {
				continue
			}
			t, _ := f.Info(name)
			key := canonicalKey(component, name)
			if strings.HasSuffix(key, ".position_ids") {
				m.Ignored = append(m.Ignored, component+"/"+name)
				continue
			}
			shape, _ := diffusersShape(component, key, t.Shape, whole)
			if !src.add(key, tensorRef{file: f, name: name, part: whole, dtype: t.DType, shape: shape}) {
				return fmt.Errorf("%s: tensor %q is stored twice (or under an old and a new name)", f.Path, name)
			}
		}
		return nil
	}
	for _, wf := range files {
		if !wf.shard {
			f, err := Open(wf.path)
			if err != nil {
				return nil, err
			}
			m.closers = append(m.closers, f)
			if err := addFile(f, nil); err != nil {
				return nil, err
			}
			continue
		}
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := readJSON(wf.path, &index); err != nil {
			return nil, err
		}
		byFile := map[string]map[string]bool{}
		for key, file := range index.WeightMap {
			if file != filepath.Base(file) || !strings.HasSuffix(file, ".safetensors") {
				return nil, fmt.Errorf("%s: shard %q of %q must be a .safetensors file in the same folder", wf.path, file, key)
			}
			if byFile[file] == nil {
				byFile[file] = map[string]bool{}
			}
			byFile[file][key] = true
		}
		shards := make([]string, 0, len(byFile))
		for s := range byFile {
			shards = append(shards, s)
		}
		sort.Strings(shards)
		for _, s := range shards {
			f, err := Open(filepath.Join(filepath.Dir(wf.path), s))
			if err != nil {
				return nil, err
			}
			m.closers = append(m.closers, f)
			for key := range byFile[s] {
				if _, ok := f.Info(key); !ok {
					return nil, fmt.Errorf("%s: the index puts %q in %s but that file has no such tensor", wf.path, key, s)
				}
			}
			if err := addFile(f, byFile[s]); err != nil {
				return nil, err
			}
		}
	}
	src.finish()
	return src, nil
}

// canonicalKey renames keys that other versions of diffusers and
// transformers save differently to the names this package serves.
func canonicalKey(component, key string) string {
	switch component {
	case VAE:
		return legacyVAEKey(key)
	case TextEncoder:
		// transformers 5.6 flattened CLIPTextModel: no text_model level.
		if !strings.HasPrefix(key, "text_model.") && clipKey.MatchString("text_model."+key) {
			return "text_model." + key
		}
	}
	return key
}

// legacyVAEKey renames the mid-attention keys of VAEs saved by diffusers
// before 0.14 (query/key/value/proj_attn) to today's names.
func legacyVAEKey(key string) string {
	side, r, ok := strings.Cut(key, ".")
	if !ok {
		return key
	}
	rest, ok := strings.CutPrefix(r, "mid_block.attentions.0.")
	if !ok {
		return key
	}
	if k, ok := vaeAttnLegacyDiffusers.apply(rest, true, paramRest); ok {
		return side + ".mid_block.attentions.0." + k
	}
	return key
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(pyjson.Sanitize(b), v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// setPredictionType returns the scheduler config with prediction_type set.
func setPredictionType(cfg []byte, pt string) ([]byte, error) {
	if pt == "" || cfg == nil {
		return cfg, nil
	}
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, err
	}
	m["prediction_type"] = pt
	return json.MarshalIndent(m, "", "  ")
}
