package ldm

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ldm-project/ldm/controlnet"
)

// ControlNetUnit is one ControlNet of a request (a unit of AUTOMATIC1111's
// ControlNet extension): a model, its control image, and how strongly and
// when it steers the U-Net. Several units add their residuals.
type ControlNetUnit struct {
	// Model names a ControlNet of the pipeline's ControlNet folder (a
	// .safetensors file or a diffusers folder, by name without extension;
	// the extension's "name [hash]" form is understood); Path names one
	// directly where the limits allow paths (Limits.LoRAPaths).
	Model string      `json:"model,omitempty"`
	Path  string      `json:"path,omitempty"`
	Image image.Image `json:"-"`
	// Module is the preprocessor run on Image first (controlnet.Preprocessors:
	// none, canny, threshold, scribble_xdog, invert); ThresholdA/B are its
	// parameters, negative for the defaults.
	Module     string  `json:"module,omitempty"`
	ThresholdA float64 `json:"threshold_a"`
	ThresholdB float64 `json:"threshold_b"`
	// Weight is the conditioning scale (diffusers'
	// controlnet_conditioning_scale).
	Weight float64 `json:"weight"`
	// GuidanceStart and GuidanceEnd bound, as fractions of the denoising
	// steps, when the unit acts (diffusers' control_guidance_start/end).
	GuidanceStart float64 `json:"guidance_start"`
	GuidanceEnd   float64 `json:"guidance_end"`
	// ControlMode is "balanced" (the default), "prompt" ("My prompt is more
	// important": the residuals fade towards the shallow blocks, 0.825 per
	// level) or "control" ("ControlNet is more important": that and the
	// unconditional half of guidance without control).
	ControlMode string `json:"control_mode,omitempty"`
	// ResizeMode fits an image of another aspect (controlnet.ParseResizeMode).
	ResizeMode string `json:"resize_mode,omitempty"`
}

// NewControlNetUnit is a unit with the extension's defaults: weight 1, the
// whole run, default preprocessor parameters.
func NewControlNetUnit() ControlNetUnit {
	return ControlNetUnit{Weight: 1, GuidanceEnd: 1, ThresholdA: -1, ThresholdB: -1}
}

// UnmarshalJSON gives absent fields the defaults of NewControlNetUnit.
func (u *ControlNetUnit) UnmarshalJSON(b []byte) error {
	type plain ControlNetUnit
	v := plain(NewControlNetUnit())
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*u = ControlNetUnit(v)
	return nil
}

// control modes
const (
	ControlBalanced = "balanced"
	ControlPrompt   = "prompt"
	ControlControl  = "control"
)

// ParseControlMode reads a control mode: balanced / prompt / control, the
// extension's labels or its indices 0, 1, 2.
func ParseControlMode(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "balanced", "0":
		return ControlBalanced, nil
	case "prompt", "my prompt is more important", "1":
		return ControlPrompt, nil
	case "control", "controlnet is more important", "2":
		return ControlControl, nil
	}
	return "", fmt.Errorf("control mode %q: want balanced, prompt (my prompt is more important) or control (ControlNet is more important)", s)
}

// check is the one validation of a unit.
func (u ControlNetUnit) check(l Limits) error {
	_, modeErr := ParseControlMode(u.ControlMode)
	_, resizeErr := controlnet.ParseResizeMode(u.ResizeMode)
	_, moduleErr := controlnet.FindPreprocessor(u.Module)
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case (u.Model == "") == (u.Path == ""):
		return fmt.Errorf("give exactly one of model (a ControlNet of the server's ControlNet folder) and path")
	case u.Path != "" && !l.LoRAPaths:
		return fmt.Errorf("ControlNets are chosen by model name from the server's ControlNet folder, not by path")
	case strings.ContainsAny(u.Model, `/\`):
		return fmt.Errorf("model %q must not contain a path separator", u.Model)
	case u.Image == nil:
		return fmt.Errorf("has no control image")
	case !finite(u.Weight) || u.Weight < 0 || u.Weight > 2:
		return fmt.Errorf("weight %g must be between 0 and 2", u.Weight)
	case !finite(u.GuidanceStart) || !finite(u.GuidanceEnd) || u.GuidanceStart < 0 || u.GuidanceEnd > 1 || u.GuidanceStart > u.GuidanceEnd:
		return fmt.Errorf("guidance_start %g and guidance_end %g must satisfy 0 ≤ start ≤ end ≤ 1", u.GuidanceStart, u.GuidanceEnd)
	case !finite(u.ThresholdA) || !finite(u.ThresholdB):
		return fmt.Errorf("threshold_a and threshold_b must be numbers")
	case modeErr != nil:
		return modeErr
	case resizeErr != nil:
		return resizeErr
	case moduleErr != nil:
		return moduleErr
	}
	return nil
}

// validateControlNets checks a request's units; the error names the unit.
func validateControlNets(units []ControlNetUnit, l Limits) error {
	for i, u := range units {
		if err := u.check(l); err != nil {
			return &FieldError{Field: "controlnets", Msg: fmt.Sprintf("[%d]: %v", i, err)}
		}
	}
	return nil
}

// controlState caches the ControlNets the pipeline has loaded, by path:
// the last request's, and up to keepControlNets in all (an SD1.5
// ControlNet holds 1.4 GB in float32).
type controlState struct {
	models map[string]cachedControlNet
	clock  int // counts requests, for least-recently-used eviction
}

const keepControlNets = 2

type cachedControlNet struct {
	size  int64
	mtime time.Time
	model *controlnet.Model
	used  int // the clock of the last request that used it
}

// evictControlNets drops the least recently used ControlNets beyond
// keepControlNets, never those of the request now prepared.
func (p *Pipeline) evictControlNets() {
	for len(p.control.models) > keepControlNets {
		oldest, at := "", p.control.clock
		for path, c := range p.control.models {
			if c.used < at {
				oldest, at = path, c.used
			}
		}
		if oldest == "" {
			return
		}
		delete(p.control.models, oldest)
	}
}

// ControlNetModels lists the ControlNets of the ControlNet folder by name:
// .safetensors files and diffusers folders (with a config.json), in
// subfolders too.
func (p *Pipeline) ControlNetModels() (map[string]string, error) {
	out := map[string]string{}
	if p.ControlNetDir == "" {
		return out, nil
	}
	err := filepath.WalkDir(p.ControlNetDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != p.ControlNetDir && strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "config.json")); err == nil && path != p.ControlNetDir {
				if _, dup := out[name]; !dup {
					out[name] = path
				}
				return filepath.SkipDir
			}
			return nil
		}
		if strings.EqualFold(filepath.Ext(name), ".safetensors") {
			n := strings.TrimSuffix(name, filepath.Ext(name))
			if _, dup := out[n]; !dup {
				out[n] = path
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ControlNet folder: %w", err)
	}
	return out, nil
}

// findControlNet resolves a unit's model name in the ControlNet folder.
func (p *Pipeline) findControlNet(name string) (string, error) {
	if p.ControlNetDir == "" {
		return "", fmt.Errorf("ControlNet %q: no ControlNet folder is set (--controlnet-dir), so names cannot be resolved", name)
	}
	// The extension's model_list names are "name [hash]".
	if i := strings.LastIndex(name, " ["); i > 0 && strings.HasSuffix(name, "]") {
		name = name[:i]
	}
	models, err := p.ControlNetModels()
	if err != nil {
		return "", err
	}
	if path, ok := models[name]; ok {
		return path, nil
	}
	for n, path := range models {
		if strings.EqualFold(n, name) {
			return path, nil
		}
	}
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	avail := "it has no ControlNets"
	if len(names) > 0 {
		avail = "it has: " + abbreviateNames(names, 10)
	}
	return "", fmt.Errorf("ControlNet %q not found in %s (%s)", name, p.ControlNetDir, avail)
}

// controlNet loads (once per file version) a unit's ControlNet and checks
// that it fits the pipeline's U-Net.
func (p *Pipeline) controlNet(u ControlNetUnit) (*controlnet.Model, error) {
	path := u.Path
	if path == "" {
		var err error
		if path, err = p.findControlNet(u.Model); err != nil {
			return nil, &FieldError{Field: "controlnets", Msg: err.Error()}
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, &FieldError{Field: "controlnets", Msg: fmt.Sprintf("ControlNet: %v", err)}
	}
	if c, ok := p.control.models[path]; ok && c.size == st.Size() && c.mtime.Equal(st.ModTime()) {
		c.used = p.control.clock
		p.control.models[path] = c
		return c.model, nil
	}
	unetConfig, err := json.Marshal(p.UNet.Config)
	if err != nil {
		return nil, err
	}
	m, err := controlnet.Open(path, unetConfig)
	if err != nil {
		return nil, err
	}
	uc, cc := p.UNet.Config, m.Config.UNet
	if fmt.Sprint(uc.BlockOutChannels, uc.LayersPerBlock, uc.DownBlockTypes, uc.CrossAttentionDim) != fmt.Sprint(cc.BlockOutChannels, cc.LayersPerBlock, cc.DownBlockTypes, cc.CrossAttentionDim) {
		return nil, fmt.Errorf("ControlNet %s is for another model family: blocks %v×%v cross-attention %v, this model's U-Net has %v×%v and %v",
			path, cc.BlockOutChannels, cc.LayersPerBlock, cc.CrossAttentionDim, uc.BlockOutChannels, uc.LayersPerBlock, uc.CrossAttentionDim)
	}
	if f := m.Config.ImageFactor(); f != p.Factor() {
		return nil, fmt.Errorf("ControlNet %s reads control images %d× the latent size; this model's VAE factor is %d", path, f, p.Factor())
	}
	if p.control.models == nil {
		p.control.models = map[string]cachedControlNet{}
	}
	p.control.models[path] = cachedControlNet{size: st.Size(), mtime: st.ModTime(), model: m, used: p.control.clock}
	return m, nil
}

// controlRun is a request's ControlNets made ready for one batch: models,
// control images as NCHW rows (repeated for every row of the U-Net batch)
// and per-residual scales.
type controlRun struct {
	units []preparedControl
}

type preparedControl struct {
	model      *controlnet.Model
	image      []float32 // [rows,3,H,W] in [0,1]
	shape      []int
	weight     float64
	start, end float64
	soft       bool // "prompt" and "control" modes: scales fade towards the shallow blocks
	condOnly   bool // "control" mode: the unconditional rows get no control
}

// ControlMap is a unit's control image after its preprocessor and resize,
// as the ControlNet sees it (and as /controlnet/detect returns it).
func ControlMap(u ControlNetUnit, w, h int) (image.Image, error) {
	pre, err := controlnet.FindPreprocessor(u.Module)
	if err != nil {
		return nil, err
	}
	mode, err := controlnet.ParseResizeMode(u.ResizeMode)
	if err != nil {
		return nil, err
	}
	return controlnet.Resize(pre.Run(u.Image, u.ThresholdA, u.ThresholdB), w, h, mode), nil
}

// prepareControl loads the request's ControlNets and control maps for a
// batch of B images (2B U-Net rows with guidance).
func (p *Pipeline) prepareControl(req Request, B int, cfg bool) (*controlRun, error) {
	if len(req.ControlNets) == 0 {
		return nil, nil
	}
	rows := B
	if cfg {
		rows *= 2
	}
	p.control.clock++
	defer p.evictControlNets()
	c := &controlRun{}
	for _, u := range req.ControlNets {
		m, err := p.controlNet(u)
		if err != nil {
			return nil, err
		}
		img, err := ControlMap(u, req.Width, req.Height)
		if err != nil {
			return nil, &FieldError{Field: "controlnets", Msg: err.Error()}
		}
		one, shape := controlnet.ImageTensor(img)
		pc := preparedControl{model: m, start: u.GuidanceStart, end: u.GuidanceEnd, shape: append([]int{rows}, shape[1:]...)}
		for range rows {
			pc.image = append(pc.image, one...)
		}
		mode, _ := ParseControlMode(u.ControlMode)
		pc.weight, pc.soft, pc.condOnly = u.Weight, mode != ControlBalanced, mode == ControlControl && cfg
		c.units = append(c.units, pc)
	}
	return c, nil
}

// residuals runs the units active at step i of n (diffusers'
// controlnet_keep: off when i/n < start or (i+1)/n > end) on the scaled
// latents x (shape [B,C,h,w], before any inpainting channels; doubled here
// for guidance) and returns their scaled sum for every U-Net row, or nil
// when none is active.
func (c *controlRun) residuals(p *Pipeline, x []float32, shape []int, t float64, cond *conditioning, i, n int) ([][]float32, [][]int, error) {
	if c == nil {
		return nil, nil, nil
	}
	var sum [][]float32
	var shapes [][]int
	for _, u := range c.units {
		if float64(i)/float64(n) < u.start || float64(i+1)/float64(n) > u.end {
			continue
		}
		in, inShape := x, shape
		if cond.cfg { // the rows of the guidance batch, as predict builds it
			in = append(append(make([]float32, 0, 2*len(x)), x...), x...)
			inShape = append([]int{2 * shape[0]}, shape[1:]...)
		}
		ts := make([]float32, inShape[0])
		for k := range ts {
			ts[k] = float32(t)
		}
		res, err := u.model.Run(p.Backend, in, inShape, ts, cond.embeds, cond.shape, u.image, u.shape)
		if err != nil {
			return nil, nil, err
		}
		k := len(res.Values)
		if sum == nil {
			sum, shapes = make([][]float32, k), res.Shapes
			for j := range sum {
				sum[j] = make([]float32, len(res.Values[j]))
			}
		}
		if len(sum) != k {
			return nil, nil, fmt.Errorf("ControlNets give %d and %d residuals: they are for different U-Nets", len(sum), k)
		}
		for j, r := range res.Values {
			s := u.weight
			if u.soft { // AUTOMATIC1111's soft injection: 0.825 per level below the mid block
				s *= math.Pow(0.825, float64(k-1-j))
			}
			from := 0
			if u.condOnly { // the unconditional rows come first
				from = len(r) / 2
			}
			dst := sum[j]
			for q := from; q < len(r); q++ {
				dst[q] += float32(s) * r[q]
			}
		}
	}
	return sum, shapes, nil
}

// controlModeLabels are the extension's names of the control modes.
var controlModeLabels = map[string]string{
	ControlBalanced: "Balanced", ControlPrompt: "My prompt is more important", ControlControl: "ControlNet is more important",
}

// controlNetInfotext is each unit as the ControlNet extension writes it into
// the infotext ("ControlNet 0": "Module: canny, Model: name, Weight: 0.8, …").
func controlNetInfotext(units []ControlNetUnit) []string {
	var out []string
	for _, u := range units {
		model := u.Model
		if model == "" {
			model = strings.TrimSuffix(filepath.Base(u.Path), filepath.Ext(u.Path))
		}
		model = strings.NewReplacer(",", "", ":", "").Replace(model)
		pre, _ := controlnet.FindPreprocessor(u.Module)
		resize, _ := controlnet.ParseResizeMode(u.ResizeMode)
		mode, _ := ParseControlMode(u.ControlMode)
		parts := []string{"Module: " + pre.Name, "Model: " + model, fmt.Sprintf("Weight: %g", u.Weight), "Resize Mode: " + resize}
		if u.ThresholdA >= 0 && pre.A.Valid {
			parts = append(parts, fmt.Sprintf("Threshold A: %g", u.ThresholdA))
		}
		if u.ThresholdB >= 0 && pre.B.Valid {
			parts = append(parts, fmt.Sprintf("Threshold B: %g", u.ThresholdB))
		}
		parts = append(parts, fmt.Sprintf("Guidance Start: %g", u.GuidanceStart), fmt.Sprintf("Guidance End: %g", u.GuidanceEnd),
			"Control Mode: "+controlModeLabels[mode])
		out = append(out, strings.Join(parts, ", "))
	}
	return out
}
