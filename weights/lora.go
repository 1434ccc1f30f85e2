package weights

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoRA is a LoRA file read against a model: each adapter names the diffusers
// weight it changes, W' = W + s·Scale·Up·Down at strength s (diffusers'
// load_lora_weights + fuse_lora(lora_scale=s)).
type LoRA struct {
	Path string
	Name string // the file name without extension
	// Hash is AUTOMATIC1111's short LoRA hash: the first 12 hex digits of
	// the SHA-256 of the tensor data (sd-webui-additional-networks' hash;
	// kohya's precomputed "sshs_model_hash" metadata when present).
	Hash     string
	Adapters []LoRAAdapter
	// Skipped names tensors that match no weight of the model (e.g. a
	// second text encoder's adapters).
	Skipped []string
}

// LoRAAdapter is one adapted weight. A convolution's Down is its kernel
// [Rank, in, kh, kw] flattened and its Up [out, Rank] (kohya's [out, Rank, 1, 1]),
// so the delta is Up·Down over the flattened kernel, as diffusers fuses it.
type LoRAAdapter struct {
	Component string // UNet or TextEncoder
	Key       string // the weight's diffusers key, "….to_q.weight"
	Rank      int
	Down      []float32 // [Rank, in…] flattened
	Up        []float32 // [out, Rank] flattened
	Scale     float64   // alpha/rank (1 when the file has no alpha)
}

// LoRATargets are the weights a LoRA may adapt: per component (UNet,
// TextEncoder), each matrix and convolution kernel's diffusers key and
// shape. With Layout set, kohya names of the original checkpoint layout
// (lora_unet_input_blocks_1_1_proj_in) are understood too, through the
// same key map single-file checkpoints are loaded with.
type LoRATargets struct {
	Shapes map[string]map[string][]int
	Layout *Layout
}

type loraTarget struct{ component, key string }

// loraNames maps the names LoRA files give a weight to the weight: kohya
// names (diffusers and original-layout module paths with "_" for ".") and
// diffusers/PEFT module paths ("unet.<module>", "text_encoder.<module>").
type loraNames struct {
	byKohya  map[string]loraTarget
	byModule map[string]loraTarget
}

func kohyaName(prefix, module string) string {
	return prefix + strings.ReplaceAll(module, ".", "_")
}

func newLoRANames(t LoRATargets) *loraNames {
	n := &loraNames{byKohya: map[string]loraTarget{}, byModule: map[string]loraTarget{}}
	var origUNet []loraTarget
	for _, component := range []string{UNet, TextEncoder} {
		keys := make([]string, 0, len(t.Shapes[component]))
		for k := range t.Shapes[component] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			mod := strings.TrimSuffix(key, ".weight")
			tg := loraTarget{component, key}
			n.byModule[component+"."+mod] = tg
			if component == TextEncoder {
				n.byKohya[kohyaName("lora_te_", mod)] = tg
				n.byKohya[kohyaName("lora_te1_", mod)] = tg
				continue
			}
			n.byKohya[kohyaName("lora_unet_", mod)] = tg
			origUNet = append(origUNet, tg)
		}
	}
	if t.Layout != nil {
		// LoRAs trained on original checkpoints name the U-Net's modules the
		// original way; a diffusers name wins where both spell the same.
		for _, tg := range origUNet {
			orig, _, err := ToOriginalKey(UNet, tg.key, *t.Layout)
			if err != nil {
				continue
			}
			k := kohyaName("lora_unet_", strings.TrimSuffix(strings.TrimPrefix(orig, unetPrefix), ".weight"))
			if _, taken := n.byKohya[k]; !taken {
				n.byKohya[k] = tg
			}
		}
	}
	return n
}

// peftSuffixes are the tensor name endings of diffusers/PEFT LoRA files.
var peftSuffixes = []struct{ suffix, part string }{
	{".lora_A.weight", "down"}, {".lora_B.weight", "up"},
	{".lora.down.weight", "down"}, {".lora.up.weight", "up"}, // diffusers' LoRACompatibleLinear
	{".lora_linear_layer.down.weight", "down"}, {".lora_linear_layer.up.weight", "up"},
	{"_lora.down.weight", "down"}, {"_lora.up.weight", "up"}, // diffusers' attention processors (…processor.to_q_lora)
	{".alpha", "alpha"},
}

// unsupportedParts are tensors of LoRA variants that are not plain low-rank
// products (LyCORIS LoHa/LoKr/Tucker, DoRA).
var unsupportedParts = []string{"lora_mid", "hada_", "lokr_", "dora_scale", "lora_magnitude_vector"}

// lookup splits a tensor name into the weight it adapts (found false when
// none) and the part ("down", "up", "alpha").
func (n *loraNames) lookup(name string) (tg loraTarget, part string, found bool, err error) {
	for _, u := range unsupportedParts {
		if strings.Contains(name, u) {
			return tg, "", false, fmt.Errorf("tensor %q: this LoRA variant (LyCORIS LoHa/LoKr/Tucker or DoRA) is not supported; only plain lora_down/lora_up (lora_A/lora_B) files are", name)
		}
	}
	if strings.HasPrefix(name, "lora_unet_") || strings.HasPrefix(name, "lora_te") {
		base, rest, _ := strings.Cut(name, ".")
		switch rest {
		case "lora_down.weight":
			part = "down"
		case "lora_up.weight":
			part = "up"
		case "alpha":
			part = "alpha"
		default:
			return tg, "", false, nil
		}
		tg, found = n.byKohya[base]
		return tg, part, found, nil
	}
	for _, s := range peftSuffixes {
		mod, ok := strings.CutSuffix(name, s.suffix)
		if !ok {
			continue
		}
		if strings.HasSuffix(s.suffix, "_lora.down.weight") || strings.HasSuffix(s.suffix, "_lora.up.weight") {
			mod = strings.Replace(mod, ".processor.", ".", 1)
			if strings.HasSuffix(mod, ".to_out") {
				mod += ".0"
			}
		}
		comp, rest, _ := strings.Cut(mod, ".")
		rest = strings.TrimPrefix(rest, "base_model.model.")
		if comp == UNet || comp == TextEncoder {
			tg, found = n.byModule[comp+"."+rest]
			return tg, s.part, found, nil
		}
		// A bare PEFT adapter file (no component prefix): whichever model has the module.
		mod = strings.TrimPrefix(mod, "base_model.model.")
		for _, c := range []string{UNet, TextEncoder} {
			if tg, found = n.byModule[c+"."+mod]; found {
				return tg, s.part, true, nil
			}
		}
		return tg, s.part, false, nil
	}
	return tg, "", false, nil
}

// peftAlphas reads diffusers' "lora_adapter_metadata" (the LoraConfig of
// each component, keys prefixed "unet." / "text_encoder.").
type peftAlphas struct {
	alpha   map[string]float64            // component → lora_alpha
	pattern map[string]map[string]float64 // component → module → alpha
	rslora  map[string]bool
}

func readPEFTAlphas(md map[string]string) (peftAlphas, error) {
	a := peftAlphas{alpha: map[string]float64{}, pattern: map[string]map[string]float64{}, rslora: map[string]bool{}}
	raw, ok := md["lora_adapter_metadata"]
	if !ok {
		return a, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return a, fmt.Errorf("metadata lora_adapter_metadata: %w", err)
	}
	for k, v := range m {
		comp, field, ok := strings.Cut(k, ".")
		if !ok {
			continue
		}
		switch field {
		case "lora_alpha":
			var f float64
			if json.Unmarshal(v, &f) == nil {
				a.alpha[comp] = f
			}
		case "alpha_pattern":
			var p map[string]float64
			if json.Unmarshal(v, &p) == nil {
				a.pattern[comp] = p
			}
		case "use_rslora":
			var b bool
			if json.Unmarshal(v, &b) == nil {
				a.rslora[comp] = b
			}
		}
	}
	return a, nil
}

// scale is PEFT's lora_alpha/r (or /√r with rsLoRA) for a module; 1 when
// the file says nothing. (diffusers v0.29.2 takes the first module's rank
// as lora_alpha for every module of a file without alphas, which scales a
// mixed-rank file's other modules by first_rank/rank; such files mean
// W + B·A, which is what they give here.)
func (a peftAlphas) scale(tg loraTarget, rank int) float64 {
	mod := strings.TrimSuffix(tg.key, ".weight")
	alpha, ok := a.alpha[tg.component]
	for pat, v := range a.pattern[tg.component] {
		if mod == pat || strings.HasSuffix(mod, "."+pat) {
			alpha, ok = v, true
		}
	}
	if !ok {
		return 1
	}
	if a.rslora[tg.component] {
		return alpha / math.Sqrt(float64(rank))
	}
	return alpha / float64(rank)
}

// ReadLoRA reads a LoRA file (kohya lora_unet_*/lora_te_* names, in the
// diffusers or the original layout, linear and LoCon convolution adapters;
// diffusers/PEFT unet.*/text_encoder.* names) and returns its adapters
// under the targets' diffusers keys. A file that adapts no target, an
// adapter whose shape does not fit its weight, and unsupported variants are
// errors naming the file and key.
func ReadLoRA(path string, targets LoRATargets) (*LoRA, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := &LoRA{Path: path, Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	fail := func(format string, a ...any) (*LoRA, error) {
		return nil, fmt.Errorf("LoRA %s: %s", path, fmt.Sprintf(format, a...))
	}
	names := newLoRANames(targets)
	type parts struct{ down, up, alpha string }
	mods := map[loraTarget]*parts{}
	for _, name := range f.Names() {
		tg, part, found, err := names.lookup(name)
		if err != nil {
			return fail("%v", err)
		}
		if !found {
			l.Skipped = append(l.Skipped, name)
			continue
		}
		if mods[tg] == nil {
			mods[tg] = &parts{}
		}
		ps := mods[tg]
		slot := map[string]*string{"down": &ps.down, "up": &ps.up, "alpha": &ps.alpha}[part]
		if *slot != "" {
			return fail("tensors %q and %q both adapt %s", *slot, name, tg.key)
		}
		*slot = name
	}
	if len(mods) == 0 {
		example := ""
		if names := f.Names(); len(names) > 0 {
			example = fmt.Sprintf(" (its first tensor is %q)", names[0])
		}
		return fail("no tensor matches a weight of this model%s: not a LoRA, or one for another model family", example)
	}
	alphas, err := readPEFTAlphas(f.Metadata)
	if err != nil {
		return fail("%v", err)
	}
	order := make([]loraTarget, 0, len(mods))
	for tg := range mods {
		order = append(order, tg)
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].component != order[j].component {
			return order[i].component > order[j].component // unet first
		}
		return order[i].key < order[j].key
	})
	for _, tg := range order {
		ps := mods[tg]
		if ps.down == "" || ps.up == "" {
			have := ps.down + ps.up + ps.alpha
			return fail("%q has no matching %s matrix for %s", have, map[bool]string{true: "up", false: "down"}[ps.up == ""], tg.key)
		}
		down, ds, err := f.Float32(ps.down)
		if err != nil {
			return fail("%v", err)
		}
		up, us, err := f.Float32(ps.up)
		if err != nil {
			return fail("%v", err)
		}
		w := targets.Shapes[tg.component][tg.key]
		if len(ds) < 2 || (len(us) != 2 && !(len(us) == 4 && us[2] == 1 && us[3] == 1)) || us[1] != ds[0] {
			return fail("%s %v and %s %v are not a low-rank pair (want down [r, in…] and up [out, r])", ps.down, ds, ps.up, us)
		}
		rank, in := ds[0], len(down)/max(ds[0], 1)
		if rank < 1 || us[0] != w[0] || in != prod(w[1:]) || (len(ds) == 4 && (len(w) != 4 || ds[2] != w[2] || ds[3] != w[3])) {
			return fail("%s: the adapter gives [%d, %d] (down %v, up %v) but the model's %s %s is %v",
				strings.TrimSuffix(ps.down, ".weight"), us[0], in, ds, us, tg.component, tg.key, w)
		}
		a := LoRAAdapter{Component: tg.component, Key: tg.key, Rank: rank, Down: down, Up: up, Scale: 1}
		switch {
		case ps.alpha != "":
			av, _, err := f.Float32(ps.alpha)
			if err != nil {
				return fail("%v", err)
			}
			if len(av) != 1 {
				return fail("%s has %d values, want one", ps.alpha, len(av))
			}
			a.Scale = float64(av[0]) / float64(rank)
		case !strings.HasPrefix(ps.down, "lora_"):
			a.Scale = alphas.scale(tg, rank)
		}
		if math.IsNaN(a.Scale) || math.IsInf(a.Scale, 0) {
			return fail("%s: alpha/rank is %g", tg.key, a.Scale)
		}
		l.Adapters = append(l.Adapters, a)
	}
	if l.Hash, err = loraHash(path, f.Metadata); err != nil {
		return fail("%v", err)
	}
	return l, nil
}

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// loraHash is A1111's LoRA short hash (see LoRA.Hash).
func loraHash(path string, md map[string]string) (string, error) {
	if h := md["sshs_model_hash"]; len(h) >= 12 {
		return strings.ToLower(h[:12]), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return "", err
	}
	if _, err := f.Seek(8+int64(binary.LittleEndian.Uint64(n[:])), io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
