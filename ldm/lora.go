package ldm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// LoRASpec chooses one LoRA for a request: a file of the pipeline's LoRA
// folder by Name (as AUTOMATIC1111's <lora:name:weight> tag), or a file by
// Path. Weight scales the U-Net and the text encoder adapters; UNetWeight,
// when set, scales the U-Net's instead (A1111's <lora:name:te:unet>).
type LoRASpec struct {
	Name       string   `json:"name,omitempty"`
	Path       string   `json:"path,omitempty"`
	Weight     float64  `json:"weight"`
	UNetWeight *float64 `json:"unet_weight,omitempty"`
}

// UnmarshalJSON gives an absent "weight" A1111's default multiplier, 1.
func (s *LoRASpec) UnmarshalJSON(b []byte) error {
	type plain LoRASpec
	v := plain{Weight: 1}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = LoRASpec(v)
	return nil
}

func (s LoRASpec) unetWeight() float64 {
	if s.UNetWeight != nil {
		return *s.UNetWeight
	}
	return s.Weight
}

// loraTagRe matches A1111's extra-network tags for LoRAs (LyCORIS files are
// named "lyco" in older versions).
var loraTagRe = regexp.MustCompile(`<(lora|lyco):([^>]*)>`)

// ParseLoRATags removes AUTOMATIC1111's <lora:name>, <lora:name:weight> and
// <lora:name:te_weight:unet_weight> tags (also te=…, unet=…) from a prompt
// and returns the text left and the LoRAs the tags name, in order.
func ParseLoRATags(prompt string) (string, []LoRASpec, error) {
	var specs []LoRASpec
	var bad error
	text := loraTagRe.ReplaceAllStringFunc(prompt, func(tag string) string {
		m := loraTagRe.FindStringSubmatch(tag)
		s, err := parseLoRATag(m[2])
		if err != nil && bad == nil {
			bad = &FieldError{Field: "prompt", Msg: fmt.Sprintf("%s: %v", tag, err)}
		}
		specs = append(specs, s)
		return ""
	})
	if bad != nil {
		return "", nil, bad
	}
	return text, specs, nil
}

// stripLoRATags is the prompt text the text encoder sees.
func stripLoRATags(prompt string) string {
	if !strings.Contains(prompt, "<") {
		return prompt
	}
	return loraTagRe.ReplaceAllString(prompt, "")
}

func parseLoRATag(body string) (LoRASpec, error) {
	parts := strings.Split(body, ":")
	s := LoRASpec{Name: strings.TrimSpace(parts[0]), Weight: 1}
	if s.Name == "" {
		return s, fmt.Errorf("the LoRA has no name")
	}
	num := func(v string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a weight", v)
		}
		return f, nil
	}
	var pos []float64
	for _, p := range parts[1:] {
		if k, v, ok := strings.Cut(p, "="); ok {
			f, err := num(v)
			if err != nil {
				return s, err
			}
			switch strings.TrimSpace(k) {
			case "te":
				s.Weight = f
			case "unet":
				s.UNetWeight = &f
			case "dyn": // A1111's dynamic rank: not supported, harmless to ignore
			default:
				return s, fmt.Errorf("unknown argument %q (want te= or unet=)", k)
			}
			continue
		}
		f, err := num(p)
		if err != nil {
			return s, err
		}
		pos = append(pos, f)
	}
	if len(pos) > 0 {
		s.Weight = pos[0]
	}
	if len(pos) > 1 {
		s.UNetWeight = &pos[1]
	}
	if len(pos) > 2 {
		return s, fmt.Errorf("too many weights (want <lora:name:weight> or <lora:name:te:unet>)")
	}
	return s, nil
}

// maxLoRAWeight bounds a LoRA's weight: far beyond any useful strength,
// near enough to catch a typo.
const maxLoRAWeight = 100

func validateLoRAs(specs []LoRASpec, l Limits) error {
	for i, s := range specs {
		bad := func(format string, a ...any) error {
			return &FieldError{Field: "loras", Msg: fmt.Sprintf("[%d]: ", i) + fmt.Sprintf(format, a...)}
		}
		switch {
		case (s.Name == "") == (s.Path == ""):
			return bad("give exactly one of name (a file of the LoRA folder) and path")
		case s.Path != "" && !l.LoRAPaths:
			return bad("files are chosen by name from the server's LoRA folder, not by path")
		case s.Name != "" && strings.ContainsAny(s.Name, `/\`):
			return bad("name %q must not contain a path separator", s.Name)
		case math.IsNaN(s.Weight) || math.Abs(s.Weight) > maxLoRAWeight:
			return bad("weight %g must be between -%d and %d", s.Weight, maxLoRAWeight, maxLoRAWeight)
		case s.UNetWeight != nil && (math.IsNaN(*s.UNetWeight) || math.Abs(*s.UNetWeight) > maxLoRAWeight):
			return bad("unet_weight %g must be between -%d and %d", *s.UNetWeight, maxLoRAWeight, maxLoRAWeight)
		}
	}
	return nil
}

// LoRA is a LoRA file read for a pipeline: each adapter is mapped to the
// model weight it changes, W' = W + weight·Scale·Up·Down.
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

// LoRAAdapter is one adapted weight.
type LoRAAdapter struct {
	Component string // weights.UNet or weights.TextEncoder
	Key       string // the weight's diffusers key, "….to_q.weight"
	Rank      int
	Down      []float32 // [Rank, in…] flattened
	Up        []float32 // [out, Rank] flattened
	Scale     float64   // alpha/rank (1 when the file has no alpha)
}

// loraTarget is a weight a LoRA may change.
type loraTarget struct{ component, key string }

// loraTable maps the names LoRA files give a weight to the weight: kohya
// names (diffusers and original-layout module paths with "_" for ".") and
// diffusers/PEFT module paths ("unet.<module>", "text_encoder.<module>").
type loraTable struct {
	byKohya  map[string]loraTarget
	byModule map[string]loraTarget
	shapes   map[loraTarget][]int
}

func kohyaName(prefix, module string) string {
	return prefix + strings.ReplaceAll(module, ".", "_")
}

// loraTable builds (once) the name table of the pipeline's U-Net and text
// encoder: every matrix and convolution kernel may be adapted.
func (p *Pipeline) loraTable() *loraTable {
	if p.lora.table != nil {
		return p.lora.table
	}
	t := &loraTable{byKohya: map[string]loraTarget{}, byModule: map[string]loraTarget{}, shapes: map[loraTarget][]int{}}
	var layout *weights.Layout
	if c := p.UNet.Config; len(c.LayersPerBlock) > 0 && !slices.ContainsFunc(c.LayersPerBlock, func(n int) bool { return n != c.LayersPerBlock[0] }) {
		l := weights.Layout{LayersPerBlock: c.LayersPerBlock[0]}
		for _, b := range c.UpBlockTypes {
			l.UpBlockAttention = append(l.UpBlockAttention, strings.Contains(b, "CrossAttn"))
		}
		layout = &l
	}
	add := func(ctx *context.Context, component string) {
		for v := range ctx.IterVariables() {
			if v.Name() != "weight" || (v.Shape().Rank() != 2 && v.Shape().Rank() != 4) {
				continue
			}
			key := nn.ScopeToKey(v.Scope(), v.Name())
			mod := strings.TrimSuffix(key, ".weight")
			tg := loraTarget{component, key}
			t.shapes[tg] = v.Shape().Dimensions
			t.byModule[component+"."+mod] = tg
			if component == weights.UNet {
				t.byKohya[kohyaName("lora_unet_", mod)] = tg
				if layout != nil {
					// LoRAs trained on original checkpoints name the U-Net's modules the original way.
					if orig, _, err := weights.ToOriginalKey(weights.UNet, key, *layout); err == nil {
						orig = strings.TrimSuffix(strings.TrimPrefix(orig, "model.diffusion_model."), ".weight")
						if _, taken := t.byKohya[kohyaName("lora_unet_", orig)]; !taken {
							t.byKohya[kohyaName("lora_unet_", orig)] = tg
						}
					}
				}
			} else {
				t.byKohya[kohyaName("lora_te_", mod)] = tg
				t.byKohya[kohyaName("lora_te1_", mod)] = tg
			}
		}
	}
	add(p.UNet.Ctx, weights.UNet)
	add(p.Text.Ctx, weights.TextEncoder)
	p.lora.table = t
	return t
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

// classify splits a tensor name into the module it adapts (a key of the
// table, or "" when none) and the part ("down", "up", "alpha").
func (t *loraTable) classify(name string) (tg loraTarget, part string, found bool, err error) {
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
		tg, found = t.byKohya[base]
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
		if comp == weights.UNet || comp == weights.TextEncoder {
			tg, found = t.byModule[comp+"."+rest]
			return tg, s.part, found, nil
		}
		// A bare PEFT adapter file (no component prefix): whichever model has the module.
		mod = strings.TrimPrefix(mod, "base_model.model.")
		for _, c := range []string{weights.UNet, weights.TextEncoder} {
			if tg, found = t.byModule[c+"."+mod]; found {
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
// the file says nothing.
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

// LoadLoRA reads a LoRA file (kohya lora_unet_*/lora_te_* or diffusers/PEFT
// unet.*/text_encoder.* keys) and maps it onto the pipeline's weights. A file
// that adapts no weight of this model, an adapter whose shape does not fit
// its weight, and unsupported variants are errors naming the file and key.
func (p *Pipeline) LoadLoRA(path string) (*LoRA, error) {
	f, err := weights.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := &LoRA{Path: path, Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	fail := func(format string, a ...any) (*LoRA, error) {
		return nil, fmt.Errorf("LoRA %s: %s", path, fmt.Sprintf(format, a...))
	}
	table := p.loraTable()
	type parts struct{ down, up, alpha string }
	mods := map[loraTarget]*parts{}
	for _, name := range f.Names() {
		tg, part, found, err := table.classify(name)
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
	targets := make([]loraTarget, 0, len(mods))
	for tg := range mods {
		targets = append(targets, tg)
	}
	sort.Slice(targets, func(i, j int) bool {
		if targets[i].component != targets[j].component {
			return targets[i].component > targets[j].component // unet first
		}
		return targets[i].key < targets[j].key
	})
	for _, tg := range targets {
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
		w := table.shapes[tg]
		if len(ds) < 2 || (len(us) != 2 && !(len(us) == 4 && us[2] == 1 && us[3] == 1)) || us[1] != ds[0] {
			return fail("%s %v and %s %v are not a low-rank pair (want down [r, in…] and up [out, r])", ps.down, ds, ps.up, us)
		}
		rank, in := ds[0], len(down)/max(ds[0], 1)
		if rank < 1 || us[0] != w[0] || in != prod(w[1:]) {
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
	if len(l.Skipped) > 0 {
		slog.Warn("LoRA tensors that match no weight of the model were skipped", "file", path, "count", len(l.Skipped), "first", l.Skipped[0])
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

// loraState is the pipeline's LoRA bookkeeping: parsed files, the base
// values of the weights the applied set changed, and that set.
type loraState struct {
	table *loraTable
	files map[string]cachedLoRA    // by path
	base  map[loraTarget][]float32 // base values of the weights now changed
	key   string                   // the applied set, as loraSetKey
	used  []appliedLoRA            // for the infotext
	dir   map[string]string        // LoRA folder listing: name → path
}

type cachedLoRA struct {
	size  int64
	mtime time.Time
	lora  *LoRA
}

type appliedLoRA struct{ name, hash string }

// resolvedLoRA is a spec with its file found.
type resolvedLoRA struct {
	spec LoRASpec
	name string // as mentioned: the tag's name, or the file name
	path string
	st   os.FileInfo
}

// requestLoRAs lists the request's LoRAs: the Request field's, then the
// prompt's tags, each resolved to a file.
func (p *Pipeline) requestLoRAs(req Request) ([]resolvedLoRA, error) {
	_, tagged, err := ParseLoRATags(req.Prompt)
	if err != nil {
		return nil, err
	}
	var out []resolvedLoRA
	for i, s := range append(slices.Clone(req.LoRAs), tagged...) {
		field := "loras"
		if i >= len(req.LoRAs) {
			field = "prompt"
		}
		r := resolvedLoRA{spec: s, name: s.Name, path: s.Path}
		if s.Path == "" {
			if r.path, err = p.findLoRA(s.Name); err != nil {
				return nil, &FieldError{Field: field, Msg: err.Error()}
			}
		} else {
			r.name = strings.TrimSuffix(filepath.Base(s.Path), filepath.Ext(s.Path))
		}
		if r.st, err = os.Stat(r.path); err != nil {
			return nil, &FieldError{Field: field, Msg: fmt.Sprintf("LoRA %q: %v", r.name, err)}
		}
		out = append(out, r)
	}
	return out, nil
}

// findLoRA finds name.safetensors in the LoRA folder (and its subfolders),
// as A1111 finds <lora:name> in models/Lora. The listing is read again when
// a name is not found, so files added while a server runs are seen.
func (p *Pipeline) findLoRA(name string) (string, error) {
	if p.LoRADir == "" {
		return "", fmt.Errorf("LoRA %q: no LoRA folder is set (--lora-dir), so names cannot be resolved", name)
	}
	look := func() (string, bool) {
		if path, ok := p.lora.dir[name]; ok {
			return path, true
		}
		var hit string
		n := 0
		for k, path := range p.lora.dir {
			if strings.EqualFold(k, name) {
				hit, n = path, n+1
			}
		}
		return hit, n == 1
	}
	if path, ok := look(); ok {
		return path, nil
	}
	dir := map[string]string{}
	err := filepath.WalkDir(p.LoRADir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != p.LoRADir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".safetensors") {
			n := strings.TrimSuffix(d.Name(), filepath.Ext(path))
			if _, dup := dir[n]; !dup {
				dir[n] = path
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("LoRA folder: %w", err)
	}
	p.lora.dir = dir
	if path, ok := look(); ok {
		return path, nil
	}
	names := make([]string, 0, len(dir))
	for n := range dir {
		names = append(names, n)
	}
	sort.Strings(names)
	avail := "it has no .safetensors files"
	if len(names) > 0 {
		avail = "it has: " + abbreviateNames(names, 10)
	}
	return "", fmt.Errorf("LoRA %q not found in %s (%s)", name, p.LoRADir, avail)
}

func abbreviateNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// loraSetKey identifies a request's LoRA set: two requests with the same
// key run on the same weights (a batch may mix them).
func (p *Pipeline) loraSetKey(rs []resolvedLoRA) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s|%d|%d|%v|%v;", r.path, r.st.Size(), r.st.ModTime().UnixNano(), r.spec.Weight, r.spec.unetWeight())
	}
	return b.String()
}

// SameLoRAs reports whether two requests ask for the same LoRAs at the same
// weights (in the same order), so that they may share a model batch. It
// reads no file.
func SameLoRAs(a, b Request) bool {
	_, ta, errA := ParseLoRATags(a.Prompt)
	_, tb, errB := ParseLoRATags(b.Prompt)
	if errA != nil || errB != nil {
		return false
	}
	la, lb := append(slices.Clone(a.LoRAs), ta...), append(slices.Clone(b.LoRAs), tb...)
	return slices.EqualFunc(la, lb, func(x, y LoRASpec) bool {
		return x.Name == y.Name && x.Path == y.Path && x.Weight == y.Weight && x.unetWeight() == y.unetWeight()
	})
}

// loadCached returns the parsed file, reading it again when it changed.
func (p *Pipeline) loadCached(r resolvedLoRA) (*LoRA, error) {
	if c, ok := p.lora.files[r.path]; ok && c.size == r.st.Size() && c.mtime.Equal(r.st.ModTime()) {
		return c.lora, nil
	}
	l, err := p.LoadLoRA(r.path)
	if err != nil {
		return nil, err
	}
	if p.lora.files == nil {
		p.lora.files = map[string]cachedLoRA{}
	}
	p.lora.files[r.path] = cachedLoRA{size: r.st.Size(), mtime: r.st.ModTime(), lora: l}
	return l, nil
}

// applyLoRAs makes the model's weights those of the request's LoRA set:
// every weight a LoRA changes is recomputed from its base value as
// W = W₀ + Σ weight·scale·up·down, and weights no longer changed get W₀
// back, bit for bit. Nothing is reloaded and a set equal to the current
// one costs nothing. Call it with p.mu held, before running the request
// (Generate does; a batch of requests needs one set: see SameLoRAs).
func (p *Pipeline) applyLoRAs(req Request) error {
	rs, err := p.requestLoRAs(req)
	if err != nil {
		return err
	}
	key := p.loraSetKey(rs)
	if key == p.lora.key {
		return nil
	}
	type contribution struct {
		a      *LoRAAdapter
		weight float64
	}
	changes := map[loraTarget][]contribution{}
	var used []appliedLoRA
	for _, r := range rs {
		l, err := p.loadCached(r)
		if err != nil {
			return err
		}
		for i := range l.Adapters {
			a := &l.Adapters[i]
			w := r.spec.Weight
			if a.Component == weights.UNet {
				w = r.spec.unetWeight()
			}
			tg := loraTarget{a.Component, a.Key}
			changes[tg] = append(changes[tg], contribution{a, w})
		}
		used = append(used, appliedLoRA{name: strings.NewReplacer(":", "", ",", "").Replace(r.name), hash: l.Hash})
	}
	if p.lora.base == nil {
		p.lora.base = map[loraTarget][]float32{}
	}
	// Every weight in base has its LoRA value now; those not in base are W₀.
	for tg := range changes {
		if _, ok := p.lora.base[tg]; ok {
			continue
		}
		v, err := p.loraVariable(tg)
		if err != nil {
			return err
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("LoRA: reading %s: %w", tg.key, err)
		}
		p.lora.base[tg] = nn.Values(t)
	}
	p.lora.key, p.lora.used = "", nil // until every weight is set
	targets := make([]loraTarget, 0, len(p.lora.base))
	for tg := range p.lora.base {
		targets = append(targets, tg)
	}
	for _, tg := range targets {
		base := p.lora.base[tg]
		val := base
		if cs := changes[tg]; len(cs) > 0 {
			delta := make([]float64, len(base))
			for _, c := range cs {
				addLowRank(delta, c.a, c.weight*c.a.Scale)
			}
			val = make([]float32, len(base))
			for i, b := range base {
				val[i] = float32(float64(b) + delta[i])
			}
		}
		if err := p.setLoRAVariable(tg, val); err != nil {
			return err
		}
		if len(changes[tg]) == 0 {
			delete(p.lora.base, tg)
		}
	}
	p.lora.key, p.lora.used = key, used
	return nil
}

// addLowRank adds s·up·down ([out,r]·[r,in]) to delta ([out,in]).
func addLowRank(delta []float64, a *LoRAAdapter, s float64) {
	r := a.Rank
	in := len(a.Down) / r
	out := len(a.Up) / r
	row := make([]float64, in)
	for o := range out {
		clear(row)
		for k := range r {
			u := float64(a.Up[o*r+k])
			if u == 0 {
				continue
			}
			d := a.Down[k*in : (k+1)*in]
			for i, dv := range d {
				row[i] += u * float64(dv)
			}
		}
		dst := delta[o*in : (o+1)*in]
		for i, v := range row {
			dst[i] += s * v
		}
	}
}

func (p *Pipeline) loraVariable(tg loraTarget) (*context.Variable, error) {
	ctx := p.UNet.Ctx
	if tg.component == weights.TextEncoder {
		ctx = p.Text.Ctx
	}
	scope, name := nn.KeyToScope(tg.key)
	v := ctx.GetVariableByScopeAndName(scope, name)
	if v == nil {
		return nil, fmt.Errorf("LoRA: the model has no %s weight %s", tg.component, tg.key)
	}
	return v, nil
}

func (p *Pipeline) setLoRAVariable(tg loraTarget, val []float32) error {
	v, err := p.loraVariable(tg)
	if err != nil {
		return err
	}
	return nn.Try(func() {
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(slices.Clone(val), v.Shape().Dimensions...)); err != nil {
			panic(fmt.Errorf("LoRA: setting %s: %w", tg.key, err))
		}
	})
}

// loraHashes is the infotext's "Lora hashes" value for the applied set
// (A1111: "name: hash, name2: hash2"), "" when none.
func (p *Pipeline) loraHashes() string {
	var parts []string
	for _, u := range p.lora.used {
		if u.hash != "" && u.name != "" {
			parts = append(parts, u.name+": "+u.hash)
		}
	}
	return strings.Join(parts, ", ")
}
