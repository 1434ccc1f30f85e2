package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ldm-project/ldm/ldm"
)

// A ComfyUI API-format workflow ({"id": {"class_type", "inputs"}}) is
// validated node by node, as ComfyUI's validate_prompt does, and evaluated
// into one ldm.Request: the core nodes describe a single sampling (a
// checkpoint, its LoRAs, the two prompts, a latent that is empty or an
// encoded image with an optional mask, one KSampler, VAEDecode, the save
// nodes). What a single request cannot express (two samplers chained, a
// sampler returning leftover noise) is refused with a node error that says
// so, never run differently.

// comfyNode is one node of an API-format workflow.
type comfyNode struct {
	ClassType string                     `json:"class_type"`
	Inputs    map[string]json.RawMessage `json:"inputs"`
	Meta      struct {
		Title string `json:"title"`
	} `json:"_meta"`
}

// comfyError is ComfyUI's error object.
type comfyError struct {
	Type      string         `json:"type"`
	Message   string         `json:"message"`
	Details   string         `json:"details"`
	ExtraInfo map[string]any `json:"extra_info"`
}

// comfyNodeErrors is one entry of node_errors.
type comfyNodeErrors struct {
	Errors           []comfyError `json:"errors"`
	DependentOutputs []string     `json:"dependent_outputs"`
	ClassType        string       `json:"class_type"`
}

// comfyInput describes one input of a node class: a link type ("MODEL",
// "LATENT", …), or a widget ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO").
type comfyInput struct {
	Name     string
	Type     string
	Optional bool
	Default  any
	Min, Max float64
	Step     float64
	Multi    bool                       // STRING: multiline
	Choices  func(*comfyGraph) []string // COMBO
	Tooltip  string
}

// comfyClass is a node class the server runs.
type comfyClass struct {
	Name, Display, Category, Description string
	Inputs                               []comfyInput
	Outputs, OutputNames                 []string
	OutputNode                           bool
	eval                                 func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError)
}

// cval is a value flowing along a link.
type cval struct {
	kind     string // the output type
	ckpt     string
	loras    []ldm.LoRASpec // MODEL, CLIP
	clipSkip int            // CLIP
	text     string         // CONDITIONING
	textNode string         // CONDITIONING: the CLIPTextEncode node
	clip     *cval          // CONDITIONING
	cnets    []ldm.ControlNetUnit
	lat      *comfyLatent   // LATENT
	img      image.Image    // IMAGE loaded
	decoded  *comfySampling // IMAGE decoded from a sampling
	mask     image.Image    // MASK
	cnName   string         // CONTROL_NET
	vae      string         // VAE: a VAELoader's file ("" the checkpoint's); IMAGE: the decoder's
}

type comfyLatent struct {
	node          string // where the size and batch come from
	width, height int
	batch         int
	init          image.Image
	mask          image.Image
	sampled       *comfySampling
}

// comfySampling is one KSampler or KSamplerAdvanced.
type comfySampling struct {
	node              string
	seed              int64
	steps             int
	cfg               float64
	sampler, schedule string
	denoise           float64
	model, pos, neg   *cval
	lat               *comfyLatent
}

// comfyGraph evaluates one workflow.
type comfyGraph struct {
	c       *comfyState
	nodes   map[string]*comfyNode
	outs    map[string][]*cval
	errs    map[string]*comfyNodeErrors
	visit   map[string]bool
	fieldAt map[string][2]string // request field → node, input
}

var comfyClasses = map[string]*comfyClass{}

func comfyClassNames() []string {
	names := make([]string, 0, len(comfyClasses))
	for n := range comfyClasses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func addComfyClass(c *comfyClass) { comfyClasses[c.Name] = c }

// ComfyUI's sampler and scheduler names (comfy/samplers.py), kept to those
// the scheduler package runs.
var (
	comfySamplerNames = acceptedComfy([]string{"euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
		"dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
		"dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde",
		"dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "ddim", "uni_pc", "uni_pc_bh2"}, false)
	comfySchedulerNames = acceptedComfy([]string{"simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
		"linear_quadratic", "kl_optimal"}, true)
)

func acceptedComfy(names []string, schedules bool) []string {
	var out []string
	for _, n := range names {
		ok := ldm.AcceptsSampler(n, "normal")
		if schedules {
			ok = ldm.AcceptsSampler("euler", n)
		}
		if ok {
			out = append(out, n)
		}
	}
	return out
}

func fixed(names []string) func(*comfyGraph) []string {
	return func(*comfyGraph) []string { return names }
}

func init() {
	addComfyClass(&comfyClass{Name: "CheckpointLoaderSimple", Display: "Load Checkpoint", Category: "loaders",
		Description: "The server's checkpoints; another than the loaded one is switched to before the prompt is queued.",
		Inputs:      []comfyInput{{Name: "ckpt_name", Type: "COMBO", Choices: (*comfyGraph).checkpoints}},
		Outputs:     []string{"MODEL", "CLIP", "VAE"}, OutputNames: []string{"MODEL", "CLIP", "VAE"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			name := in["ckpt_name"].(string)
			return []*cval{{kind: "MODEL", ckpt: name}, {kind: "CLIP"}, {kind: "VAE"}}, nil
		}})
	addComfyClass(&comfyClass{Name: "LoraLoader", Display: "Load LoRA", Category: "loaders",
		Inputs: []comfyInput{{Name: "model", Type: "MODEL"}, {Name: "clip", Type: "CLIP"},
			{Name: "lora_name", Type: "COMBO", Choices: (*comfyGraph).loraNames},
			{Name: "strength_model", Type: "FLOAT", Default: 1.0, Min: -100, Max: 100, Step: 0.01},
			{Name: "strength_clip", Type: "FLOAT", Default: 1.0, Min: -100, Max: 100, Step: 0.01}},
		Outputs: []string{"MODEL", "CLIP"}, OutputNames: []string{"MODEL", "CLIP"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			m, cl := *in["model"].(*cval), *in["clip"].(*cval)
			um := in["strength_model"].(float64)
			spec := ldm.LoRASpec{Name: loraKey(in["lora_name"].(string)), Weight: in["strength_clip"].(float64), UNetWeight: &um}
			m.loras = append(append([]ldm.LoRASpec(nil), m.loras...), spec)
			cl.loras = append(append([]ldm.LoRASpec(nil), cl.loras...), spec)
			return []*cval{&m, &cl}, nil
		}})
	addComfyClass(&comfyClass{Name: "CLIPSetLastLayer", Display: "CLIP Set Last Layer", Category: "conditioning",
		Inputs:  []comfyInput{{Name: "clip", Type: "CLIP"}, {Name: "stop_at_clip_layer", Type: "INT", Default: -1, Min: -24, Max: -1, Step: 1}},
		Outputs: []string{"CLIP"}, OutputNames: []string{"CLIP"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			cl := *in["clip"].(*cval)
			cl.clipSkip = -int(in["stop_at_clip_layer"].(int64)) // -2 (penultimate) is A1111's clip skip 2
			return []*cval{&cl}, nil
		}})
	addComfyClass(&comfyClass{Name: "CLIPTextEncode", Display: "CLIP Text Encode (Prompt)", Category: "conditioning",
		Inputs:  []comfyInput{{Name: "text", Type: "STRING", Multi: true, Default: ""}, {Name: "clip", Type: "CLIP"}},
		Outputs: []string{"CONDITIONING"}, OutputNames: []string{"CONDITIONING"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			return []*cval{{kind: "CONDITIONING", text: in["text"].(string), textNode: id, clip: in["clip"].(*cval)}}, nil
		}})
	addComfyClass(&comfyClass{Name: "EmptyLatentImage", Display: "Empty Latent Image", Category: "latent",
		Inputs: []comfyInput{{Name: "width", Type: "INT", Default: 512, Min: 16, Max: 16384, Step: 8},
			{Name: "height", Type: "INT", Default: 512, Min: 16, Max: 16384, Step: 8},
			{Name: "batch_size", Type: "INT", Default: 1, Min: 1, Max: 4096, Step: 1}},
		Outputs: []string{"LATENT"}, OutputNames: []string{"LATENT"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			return []*cval{{kind: "LATENT", lat: &comfyLatent{node: id, width: int(in["width"].(int64)),
				height: int(in["height"].(int64)), batch: int(in["batch_size"].(int64))}}}, nil
		}})
	samplerInputs := func(seedName string) []comfyInput {
		return []comfyInput{{Name: "model", Type: "MODEL"},
			{Name: seedName, Type: "INT", Default: 0, Min: 0, Max: math.MaxInt64},
			{Name: "steps", Type: "INT", Default: 20, Min: 1, Max: 10000},
			{Name: "cfg", Type: "FLOAT", Default: 8.0, Min: 0, Max: 100, Step: 0.1},
			{Name: "sampler_name", Type: "COMBO", Choices: fixed(comfySamplerNames)},
			{Name: "scheduler", Type: "COMBO", Choices: fixed(comfySchedulerNames)},
			{Name: "positive", Type: "CONDITIONING"}, {Name: "negative", Type: "CONDITIONING"},
			{Name: "latent_image", Type: "LATENT"}}
	}
	addComfyClass(&comfyClass{Name: "KSampler", Display: "KSampler", Category: "sampling",
		Inputs:  append(samplerInputs("seed"), comfyInput{Name: "denoise", Type: "FLOAT", Default: 1.0, Min: 0, Max: 1, Step: 0.01}),
		Outputs: []string{"LATENT"}, OutputNames: []string{"LATENT"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			return g.sample(id, in, in["seed"].(int64), in["denoise"].(float64))
		}})
	addComfyClass(&comfyClass{Name: "KSamplerAdvanced", Display: "KSampler (Advanced)", Category: "sampling",
		Inputs: append([]comfyInput{{Name: "add_noise", Type: "COMBO", Choices: fixed([]string{"enable", "disable"})}},
			append(samplerInputs("noise_seed"),
				comfyInput{Name: "start_at_step", Type: "INT", Default: 0, Min: 0, Max: 10000},
				comfyInput{Name: "end_at_step", Type: "INT", Default: 10000, Min: 0, Max: 10000},
				comfyInput{Name: "return_with_leftover_noise", Type: "COMBO", Choices: fixed([]string{"disable", "enable"})})...),
		Outputs: []string{"LATENT"}, OutputNames: []string{"LATENT"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			steps := in["steps"].(int64)
			start, end := in["start_at_step"].(int64), in["end_at_step"].(int64)
			if in["add_noise"] == "disable" {
				return nil, unsupported("add_noise", "add_noise \"disable\" (sampling a latent that already holds noise) is not supported by ldm: use \"enable\"")
			}
			if end < steps && in["return_with_leftover_noise"] == "enable" {
				return nil, unsupported("return_with_leftover_noise", "a sampler that stops early and returns leftover noise (a two-stage workflow) is not supported by ldm: one sampler draws the whole image")
			}
			if start >= steps {
				return nil, unsupported("start_at_step", fmt.Sprintf("start_at_step %d leaves no step of %d", start, steps))
			}
			// Starting at step k of n on an encoded image is img2img at strength (n-k)/n.
			return g.sample(id, in, in["noise_seed"].(int64), float64(steps-start)/float64(steps))
		}})
	addComfyClass(&comfyClass{Name: "VAEDecode", Display: "VAE Decode", Category: "latent",
		Inputs:  []comfyInput{{Name: "samples", Type: "LATENT"}, {Name: "vae", Type: "VAE"}},
		Outputs: []string{"IMAGE"}, OutputNames: []string{"IMAGE"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			l := in["samples"].(*cval).lat
			if l.sampled == nil {
				return nil, unsupported("samples", "VAEDecode of a latent no sampler drew is not supported by ldm: decode a KSampler's output")
			}
			return []*cval{{kind: "IMAGE", decoded: l.sampled, vae: in["vae"].(*cval).vae}}, nil
		}})
	addComfyClass(&comfyClass{Name: "VAELoader", Display: "Load VAE", Category: "loaders",
		Description: "A VAE of the model's VAE folder, for the VAEDecode that uses it.",
		Inputs:      []comfyInput{{Name: "vae_name", Type: "COMBO", Choices: (*comfyGraph).vaeNames}},
		Outputs:     []string{"VAE"}, OutputNames: []string{"VAE"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			return []*cval{{kind: "VAE", vae: in["vae_name"].(string)}}, nil
		}})
	addComfyClass(&comfyClass{Name: "VAEEncode", Display: "VAE Encode", Category: "latent",
		Inputs:  []comfyInput{{Name: "pixels", Type: "IMAGE"}, {Name: "vae", Type: "VAE"}},
		Outputs: []string{"LATENT"}, OutputNames: []string{"LATENT"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			v := in["pixels"].(*cval)
			if v.img == nil {
				return nil, unsupported("pixels", "VAEEncode of a generated image (a second pass) is not supported by ldm: encode a LoadImage")
			}
			b := v.img.Bounds()
			// ComfyUI crops the pixels to multiples of 8.
			return []*cval{{kind: "LATENT", lat: &comfyLatent{node: id, width: b.Dx() / 8 * 8, height: b.Dy() / 8 * 8, batch: 1, init: v.img}}}, nil
		}})
	addComfyClass(&comfyClass{Name: "SetLatentNoiseMask", Display: "Set Latent Noise Mask", Category: "latent/inpaint",
		Inputs:  []comfyInput{{Name: "samples", Type: "LATENT"}, {Name: "mask", Type: "MASK"}},
		Outputs: []string{"LATENT"}, OutputNames: []string{"LATENT"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			l := *in["samples"].(*cval).lat
			if l.init == nil {
				return nil, unsupported("samples", "a noise mask needs the latent of an image (VAEEncode of a LoadImage)")
			}
			l.mask = in["mask"].(*cval).mask
			return []*cval{{kind: "LATENT", lat: &l}}, nil
		}})
	addComfyClass(&comfyClass{Name: "LoadImage", Display: "Load Image", Category: "image",
		Description: "An image uploaded with /upload/image.",
		Inputs:      []comfyInput{{Name: "image", Type: "COMBO", Choices: (*comfyGraph).uploads}},
		Outputs:     []string{"IMAGE", "MASK"}, OutputNames: []string{"IMAGE", "MASK"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			name := in["image"].(string)
			data, ok := g.c.uploads.get(name)
			if !ok {
				return nil, &comfyError{Type: "custom_validation_failed", Message: "Custom validation failed for node", Details: "image - Invalid image file: " + name}
			}
			img, _, err := image.Decode(bytes.NewReader(data))
			if err != nil {
				return nil, &comfyError{Type: "custom_validation_failed", Message: "Custom validation failed for node", Details: "image - Invalid image file: " + name + ": " + err.Error()}
			}
			return []*cval{{kind: "IMAGE", img: img}, {kind: "MASK", mask: alphaMask(img)}}, nil
		}})
	saveInputs := []comfyInput{{Name: "images", Type: "IMAGE"}, {Name: "filename_prefix", Type: "STRING", Default: "ComfyUI"}}
	addComfyClass(&comfyClass{Name: "SaveImage", Display: "Save Image", Category: "image", OutputNode: true,
		Description: "Keeps the images for /view (type output), as long as the server keeps the job.",
		Inputs:      saveInputs, Outputs: []string{}, OutputNames: []string{},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) { return g.save(in) }})
	addComfyClass(&comfyClass{Name: "PreviewImage", Display: "Preview Image", Category: "image", OutputNode: true,
		Inputs: saveInputs[:1], Outputs: []string{}, OutputNames: []string{},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) { return g.save(in) }})
	addComfyClass(&comfyClass{Name: "ControlNetLoader", Display: "Load ControlNet Model", Category: "loaders",
		Inputs:  []comfyInput{{Name: "control_net_name", Type: "COMBO", Choices: (*comfyGraph).controlNets}},
		Outputs: []string{"CONTROL_NET"}, OutputNames: []string{"CONTROL_NET"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			return []*cval{{kind: "CONTROL_NET", cnName: strings.TrimSuffix(in["control_net_name"].(string), ".safetensors")}}, nil
		}})
	addComfyClass(&comfyClass{Name: "ControlNetApply", Display: "Apply ControlNet (OLD)", Category: "conditioning/controlnet",
		Inputs: []comfyInput{{Name: "conditioning", Type: "CONDITIONING"}, {Name: "control_net", Type: "CONTROL_NET"},
			{Name: "image", Type: "IMAGE"}, {Name: "strength", Type: "FLOAT", Default: 1.0, Min: 0, Max: 10, Step: 0.01}},
		Outputs: []string{"CONDITIONING"}, OutputNames: []string{"CONDITIONING"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			u, e := controlUnit(in, 0, 1)
			if e != nil {
				return nil, e
			}
			c := *in["conditioning"].(*cval)
			c.cnets = append(append([]ldm.ControlNetUnit(nil), c.cnets...), u)
			return []*cval{&c}, nil
		}})
	addComfyClass(&comfyClass{Name: "ControlNetApplyAdvanced", Display: "Apply ControlNet", Category: "conditioning/controlnet",
		Inputs: []comfyInput{{Name: "positive", Type: "CONDITIONING"}, {Name: "negative", Type: "CONDITIONING"},
			{Name: "control_net", Type: "CONTROL_NET"}, {Name: "image", Type: "IMAGE"},
			{Name: "strength", Type: "FLOAT", Default: 1.0, Min: 0, Max: 10, Step: 0.01},
			{Name: "start_percent", Type: "FLOAT", Default: 0.0, Min: 0, Max: 1, Step: 0.001},
			{Name: "end_percent", Type: "FLOAT", Default: 1.0, Min: 0, Max: 1, Step: 0.001},
			{Name: "vae", Type: "VAE", Optional: true}},
		Outputs: []string{"CONDITIONING", "CONDITIONING"}, OutputNames: []string{"positive", "negative"},
		eval: func(g *comfyGraph, id string, in map[string]any) ([]*cval, *comfyError) {
			u, e := controlUnit(in, in["start_percent"].(float64), in["end_percent"].(float64))
			if e != nil {
				return nil, e
			}
			// ldm applies a unit to both halves of guidance: it rides on the positive.
			p := *in["positive"].(*cval)
			p.cnets = append(append([]ldm.ControlNetUnit(nil), p.cnets...), u)
			return []*cval{&p, in["negative"].(*cval)}, nil
		}})
}

func controlUnit(in map[string]any, start, end float64) (ldm.ControlNetUnit, *comfyError) {
	im := in["image"].(*cval)
	if im.img == nil {
		return ldm.ControlNetUnit{}, unsupported("image", "a control image drawn by this prompt is not supported by ldm: use a LoadImage")
	}
	u := ldm.NewControlNetUnit()
	u.Model, u.Image, u.Weight = in["control_net"].(*cval).cnName, im.img, in["strength"].(float64)
	u.GuidanceStart, u.GuidanceEnd = start, end
	return u, nil
}

func unsupported(input, msg string) *comfyError {
	return &comfyError{Type: "unsupported_by_ldm", Message: "Not supported by this server", Details: input + ": " + msg,
		ExtraInfo: map[string]any{"input_name": input}}
}

// loraKey is the LoRA folder's name of a file ComfyUI names with its extension.
func loraKey(name string) string {
	for _, ext := range []string{".safetensors", ".ckpt", ".pt"} {
		if strings.HasSuffix(name, ext) {
			return strings.TrimSuffix(name, ext)
		}
	}
	return name
}

// alphaMask is LoadImage's MASK: 1 - alpha, white where the image is
// transparent (ComfyUI repaints there).
func alphaMask(img image.Image) image.Image {
	b := img.Bounds()
	m := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			_, _, _, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			m.SetGray(x, y, color.Gray{Y: uint8(255 - a>>8)})
		}
	}
	return m
}

func (g *comfyGraph) checkpoints() []string {
	var out []string
	for _, m := range g.c.s.models() {
		out = append(out, m.File)
	}
	return out
}

func (g *comfyGraph) loraNames() []string {
	out := []string{}
	if g.c.s.cfg.LoRADir == "" {
		return out
	}
	files, err := ldm.ListLoRAs(g.c.s.cfg.LoRADir)
	if err != nil {
		return out
	}
	for n, p := range files {
		ext := ".safetensors"
		if i := strings.LastIndex(p, "."); i >= 0 {
			ext = p[i:]
		}
		out = append(out, n+ext)
	}
	sort.Strings(out)
	return out
}

func (g *comfyGraph) controlNets() []string {
	out := []string{}
	if l, ok := g.c.s.current().Model.(controlNetLister); ok {
		models, err := l.ControlNetModels()
		if err == nil {
			for n := range models {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (g *comfyGraph) vaeNames() []string {
	out := []string{}
	if vm, ok := g.c.s.current().Model.(vaeModel); ok {
		for _, e := range vm.VAEs() {
			out = append(out, e.Name)
		}
	}
	return out
}

func (g *comfyGraph) uploads() []string { return g.c.uploads.names() }

func (g *comfyGraph) sample(id string, in map[string]any, seed int64, denoise float64) ([]*cval, *comfyError) {
	l := in["latent_image"].(*cval).lat
	if l.sampled != nil {
		return nil, unsupported("latent_image", "sampling the output of another sampler (hires fix, refiner) is not supported by ldm: one sampler per prompt")
	}
	sm := &comfySampling{node: id, seed: seed, steps: int(in["steps"].(int64)), cfg: in["cfg"].(float64),
		sampler: in["sampler_name"].(string), schedule: in["scheduler"].(string), denoise: denoise,
		model: in["model"].(*cval), pos: in["positive"].(*cval), neg: in["negative"].(*cval), lat: l}
	if l.init == nil && denoise < 1 {
		return nil, unsupported("denoise", fmt.Sprintf("denoise %g on an empty latent: below 1 it needs the latent of an image (VAEEncode)", denoise))
	}
	out := *l
	out.sampled = sm
	return []*cval{{kind: "LATENT", lat: &out}}, nil
}

func (g *comfyGraph) save(in map[string]any) ([]*cval, *comfyError) {
	v := in["images"].(*cval)
	if v.decoded == nil {
		return nil, unsupported("images", "saving an image no sampler drew is not supported by ldm")
	}
	return []*cval{v}, nil
}

// link reads a [node_id, slot] input.
func link(raw json.RawMessage) (string, int, bool) {
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) != nil || len(arr) != 2 {
		return "", 0, false
	}
	var id string
	if json.Unmarshal(arr[0], &id) != nil {
		var n json.Number
		if json.Unmarshal(arr[0], &n) != nil {
			return "", 0, false
		}
		id = n.String()
	}
	var slot int
	if json.Unmarshal(arr[1], &slot) != nil {
		return "", 0, false
	}
	return id, slot, true
}

// eval validates and evaluates a node (memoised); false when it or a node
// it depends on failed.
func (g *comfyGraph) eval(id string) bool {
	if _, done := g.outs[id]; done {
		return true
	}
	if _, bad := g.errs[id]; bad || g.visit[id] {
		return false
	}
	g.visit[id] = true
	n := g.nodes[id]
	cls := comfyClasses[n.ClassType]
	in := map[string]any{}
	var errs []comfyError
	ok := true
	for _, spec := range cls.Inputs {
		raw, present := n.Inputs[spec.Name]
		if !present || string(raw) == "null" {
			if spec.Optional {
				continue
			}
			errs = append(errs, comfyError{Type: "required_input_missing", Message: "Required input is missing", Details: spec.Name,
				ExtraInfo: map[string]any{"input_name": spec.Name}})
			continue
		}
		if from, slot, isLink := link(raw); isLink {
			src := g.nodes[from]
			if src == nil {
				errs = append(errs, comfyError{Type: "bad_linked_input", Message: "Bad linked input, must be a length-2 list of [node_id, slot_index]",
					Details: fmt.Sprintf("%s: node %q does not exist", spec.Name, from), ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": json.RawMessage(raw)}})
				continue
			}
			sc := comfyClasses[src.ClassType]
			if slot < 0 || slot >= len(sc.Outputs) {
				errs = append(errs, comfyError{Type: "bad_linked_input", Message: "Bad linked input, must be a length-2 list of [node_id, slot_index]",
					Details: fmt.Sprintf("%s: %s has no output %d", spec.Name, src.ClassType, slot), ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": json.RawMessage(raw)}})
				continue
			}
			if got := sc.Outputs[slot]; got != spec.Type {
				errs = append(errs, comfyError{Type: "return_type_mismatch", Message: "Return type mismatch between linked nodes",
					Details:   fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", spec.Name, got, spec.Type),
					ExtraInfo: map[string]any{"input_name": spec.Name, "received_type": got, "linked_node": []any{from, slot}}})
				continue
			}
			if !g.eval(from) {
				ok = false
				continue
			}
			in[spec.Name] = g.outs[from][slot]
			continue
		}
		if !isWidget(spec.Type) {
			errs = append(errs, comfyError{Type: "bad_linked_input", Message: "Bad linked input, must be a length-2 list of [node_id, slot_index]",
				Details: spec.Name, ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": json.RawMessage(raw)}})
			continue
		}
		v, e := g.widget(spec, raw)
		if e != nil {
			errs = append(errs, *e)
			continue
		}
		in[spec.Name] = v
	}
	if len(errs) == 0 && ok {
		outs, e := cls.eval(g, id, in)
		if e == nil {
			g.outs[id] = outs
			return true
		}
		errs = append(errs, *e)
	}
	if len(errs) > 0 {
		g.nodeError(id, errs...)
	}
	return false
}

func isWidget(t string) bool {
	switch t {
	case "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO":
		return true
	}
	return false
}

func (g *comfyGraph) nodeError(id string, errs ...comfyError) {
	ne := g.errs[id]
	if ne == nil {
		ne = &comfyNodeErrors{ClassType: g.nodes[id].ClassType, DependentOutputs: []string{}}
		g.errs[id] = ne
	}
	for i := range errs {
		if errs[i].ExtraInfo == nil {
			errs[i].ExtraInfo = map[string]any{}
		}
	}
	ne.Errors = append(ne.Errors, errs...)
}

// widget converts a widget value as ComfyUI does (numbers may be strings).
func (g *comfyGraph) widget(spec comfyInput, raw json.RawMessage) (any, *comfyError) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, convErr(spec, raw, err)
	}
	switch spec.Type {
	case "INT", "FLOAT":
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = strings.TrimSpace(x)
		default:
			return nil, convErr(spec, raw, fmt.Errorf("not a number"))
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, convErr(spec, raw, fmt.Errorf("not a number"))
		}
		if f < spec.Min {
			return nil, &comfyError{Type: "value_smaller_than_min", Message: fmt.Sprintf("Value %s smaller than min of %g", s, spec.Min),
				Details: spec.Name, ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": f}}
		}
		if f > spec.Max {
			return nil, &comfyError{Type: "value_bigger_than_max", Message: fmt.Sprintf("Value %s bigger than max of %g", s, spec.Max),
				Details: spec.Name, ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": f}}
		}
		if spec.Type == "INT" {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				if math.Abs(f) >= math.MaxInt64 {
					return nil, convErr(spec, raw, fmt.Errorf("not an integer of 64 bits"))
				}
				i = int64(f) // "20.0", or 2.5: ComfyUI's int() truncates
			}
			if float64(i) > spec.Max || i < 0 && spec.Min >= 0 {
				return nil, &comfyError{Type: "value_bigger_than_max", Message: fmt.Sprintf("Value %s bigger than max of %g", s, spec.Max),
					Details: spec.Name, ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": f}}
			}
			return i, nil
		}
		return f, nil
	case "STRING":
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		}
		return nil, convErr(spec, raw, fmt.Errorf("not a string"))
	case "BOOLEAN":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, convErr(spec, raw, fmt.Errorf("not a boolean"))
	}
	// COMBO
	s, isStr := v.(string)
	choices := spec.Choices(g)
	for _, c := range choices {
		if isStr && c == s {
			return s, nil
		}
	}
	return nil, &comfyError{Type: "value_not_in_list", Message: "Value not in list",
		Details:   fmt.Sprintf("%s: '%v' not in %s", spec.Name, v, pyList(choices)),
		ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": v, "input_config": []any{choices}}}
}

func pyList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "'" + x + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func convErr(spec comfyInput, raw json.RawMessage, err error) *comfyError {
	t := spec.Type
	if t == "COMBO" {
		t = "STRING"
	}
	return &comfyError{Type: "invalid_input_type", Message: "Failed to convert an input value to a " + t + " value",
		Details: fmt.Sprintf("%s, %s, %v", spec.Name, raw, err), ExtraInfo: map[string]any{"input_name": spec.Name, "received_value": json.RawMessage(raw)}}
}

// comfyPlan is a validated workflow: the request and where its parts came from.
type comfyPlan struct {
	req     ldm.Request
	ckpt    string
	sampler string   // the sampler node
	order   []string // the nodes in execution order
	saves   []string // output nodes
	fieldAt map[string][2]string
}

// comfyFailure is a rejected workflow: ComfyUI's body for a 400.
type comfyFailure struct {
	Error      comfyError `json:"error"`
	NodeErrors any        `json:"node_errors"`
}

func promptFailure(typ, msg, details string, extra map[string]any) *comfyFailure {
	if extra == nil {
		extra = map[string]any{}
	}
	return &comfyFailure{Error: comfyError{Type: typ, Message: msg, Details: details, ExtraInfo: extra}, NodeErrors: map[string]any{}}
}

// plan validates the workflow and translates it into one request.
func (c *comfyState) plan(nodes map[string]*comfyNode) (*comfyPlan, *comfyFailure) {
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return nodeLess(ids[a], ids[b]) })
	var outputs []string
	for _, id := range ids {
		n := nodes[id]
		if n == nil || n.ClassType == "" {
			return nil, promptFailure("invalid_prompt", "Cannot execute because a node is missing the class_type property.", "Node ID '#"+id+"'", nil)
		}
		cls := comfyClasses[n.ClassType]
		if cls == nil {
			return nil, promptFailure("missing_node_type", fmt.Sprintf("Node '%s' not found. ldm serves these node classes: %s.", n.ClassType, strings.Join(comfyClassNames(), ", ")),
				"Node ID '#"+id+"'", map[string]any{"node_id": id, "class_type": n.ClassType, "node_title": n.Meta.Title})
		}
		if cls.OutputNode {
			outputs = append(outputs, id)
		}
	}
	if len(outputs) == 0 {
		return nil, promptFailure("prompt_no_outputs", "Prompt has no outputs", "", nil)
	}
	g := &comfyGraph{c: c, nodes: nodes, outs: map[string][]*cval{}, errs: map[string]*comfyNodeErrors{}, visit: map[string]bool{}}
	var good []string
	for _, o := range outputs {
		if g.eval(o) {
			good = append(good, o)
			continue
		}
		// Every failed node o depends on lists o as a dependent output.
		for id, ne := range g.errs {
			if id == o || g.dependsOn(o, id, map[string]bool{}) {
				ne.DependentOutputs = append(ne.DependentOutputs, o)
			}
		}
	}
	if len(g.errs) > 0 {
		return nil, &comfyFailure{Error: comfyError{Type: "prompt_outputs_failed_validation", Message: "Prompt outputs failed validation", ExtraInfo: map[string]any{}},
			NodeErrors: g.errs}
	}
	var sm *comfySampling
	vae := ""
	for _, o := range good {
		d := g.outs[o][0].decoded
		if sm != nil && (d != sm || g.outs[o][0].vae != vae) {
			g.nodeError(o, *unsupported("images", "the outputs show images of different samplers: ldm runs one sampler per prompt"))
			g.errs[o].DependentOutputs = []string{o}
			return nil, &comfyFailure{Error: comfyError{Type: "prompt_outputs_failed_validation", Message: "Prompt outputs failed validation", ExtraInfo: map[string]any{}},
				NodeErrors: g.errs}
		}
		sm, vae = d, g.outs[o][0].vae
	}
	p := &comfyPlan{sampler: sm.node, saves: good, ckpt: sm.model.ckpt}
	req := ldm.Blank()
	req.Prompt, req.NegativePrompt = sm.pos.text, sm.neg.text
	req.ClipSkip = sm.pos.clip.clipSkip
	if req.ClipSkip == 1 {
		req.ClipSkip = 0
	}
	req.LoRAs = sm.model.loras
	req.ControlNets = append(append([]ldm.ControlNetUnit(nil), sm.pos.cnets...), sm.neg.cnets...)
	req.Steps, req.GuidanceScale, req.Seed = sm.steps, sm.cfg, sm.seed
	req.Sampler, req.Schedule = sm.sampler, sm.schedule
	req.Noise = "torch" // ComfyUI draws its noise with torch.randn on the CPU
	l := sm.lat
	req.Width, req.Height, req.BatchSize = l.width, l.height, l.batch
	if l.init != nil {
		req.InitImage, req.Strength = l.init, sm.denoise
		if l.mask != nil {
			req.Mask, req.MaskBlur = l.mask, ldm.Blur(0) // ComfyUI does not blur the noise mask
		}
	}
	req.VAE = vae
	p.req = req
	p.fieldAt = map[string][2]string{
		"width": {l.node, "width"}, "height": {l.node, "height"}, "batch_size": {l.node, "batch_size"},
		"steps": {sm.node, "steps"}, "guidance_scale": {sm.node, "cfg"}, "seed": {sm.node, "seed"},
		"sampler": {sm.node, "sampler_name"}, "schedule": {sm.node, "scheduler"}, "strength": {sm.node, "denoise"},
		"prompt": {sm.pos.textNode, "text"}, "negative_prompt": {sm.neg.textNode, "text"},
	}
	// Execution order: every evaluated node, dependencies first.
	seen := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, raw := range nodes[id].Inputs {
			if from, _, ok := link(raw); ok && nodes[from] != nil {
				walk(from)
			}
		}
		p.order = append(p.order, id)
	}
	for _, o := range good {
		walk(o)
	}
	return p, nil
}

// fieldFailure maps a request error from Prepare onto the node input it came from.
func (p *comfyPlan) fieldFailure(nodes map[string]*comfyNode, err error) *comfyFailure {
	field, _ := ldm.IsFieldError(err)
	at, ok := p.fieldAt[field]
	if !ok || at[0] == "" {
		at = [2]string{p.sampler, field}
	}
	ne := &comfyNodeErrors{ClassType: nodes[at[0]].ClassType, DependentOutputs: p.saves,
		Errors: []comfyError{{Type: "value_not_valid", Message: err.Error(), Details: at[1], ExtraInfo: map[string]any{"input_name": at[1]}}}}
	return &comfyFailure{Error: comfyError{Type: "prompt_outputs_failed_validation", Message: "Prompt outputs failed validation", ExtraInfo: map[string]any{}},
		NodeErrors: map[string]*comfyNodeErrors{at[0]: ne}}
}

func (g *comfyGraph) dependsOn(from, target string, seen map[string]bool) bool {
	if seen[from] {
		return false
	}
	seen[from] = true
	n := g.nodes[from]
	if n == nil {
		return false
	}
	for _, raw := range n.Inputs {
		if id, _, ok := link(raw); ok {
			if id == target || g.dependsOn(id, target, seen) {
				return true
			}
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// nodeLess orders node ids numerically when they are numbers.
func nodeLess(a, b string) bool {
	x, ea := strconv.Atoi(a)
	y, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return x < y
	}
	return a < b
}
