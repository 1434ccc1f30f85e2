package ldm

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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

// loraTagParses counts ParseLoRATags calls, so a test can see that a
// request's tags are parsed once.
var loraTagParses atomic.Int64

// loraTagRe matches A1111's extra-network tags for LoRAs (LyCORIS files are
// named "lyco" in older versions).
var loraTagRe = regexp.MustCompile(`<(lora|lyco):([^>]*)>`)

// ParseLoRATags removes AUTOMATIC1111's <lora:name>, <lora:name:weight> and
// <lora:name:te_weight:unet_weight> tags (also te=…, unet=…) from a prompt
// and returns the text left and the LoRAs the tags name, in order.
func ParseLoRATags(prompt string) (string, []LoRASpec, error) {
	loraTagParses.Add(1)
	var specs []LoRASpec
	var bad error
	text := loraTagRe.ReplaceAllStringFunc(prompt, func(tag string) string {
		m := loraTagRe.FindStringSubmatch(tag)
		s, err := parseLoRATag(m[2])
		if err == nil {
			err = s.check(Limits{}) // a tag names a file of the folder, never a path
		}
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
		if err := s.check(l); err != nil {
			return &FieldError{Field: "loras", Msg: fmt.Sprintf("[%d]: %v", i, err)}
		}
	}
	return nil
}

// check is the one validation of a LoRA, from the loras field or a prompt tag.
func (s LoRASpec) check(l Limits) error {
	switch {
	case (s.Name == "") == (s.Path == ""):
		return fmt.Errorf("give exactly one of name (a file of the LoRA folder) and path")
	case s.Path != "" && !l.LoRAPaths:
		return fmt.Errorf("files are chosen by name from the server's LoRA folder, not by path")
	case s.Name != "" && strings.ContainsAny(s.Name, `/\`):
		return fmt.Errorf("name %q must not contain a path separator", s.Name)
	case math.IsNaN(s.Weight) || math.Abs(s.Weight) > maxLoRAWeight:
		return fmt.Errorf("weight %g must be between -%d and %d", s.Weight, maxLoRAWeight, maxLoRAWeight)
	case s.UNetWeight != nil && (math.IsNaN(*s.UNetWeight) || math.Abs(*s.UNetWeight) > maxLoRAWeight):
		return fmt.Errorf("unet_weight %g must be between -%d and %d", *s.UNetWeight, maxLoRAWeight, maxLoRAWeight)
	}
	return nil
}

// LoRA is a LoRA file read for the pipeline's model (see weights.ReadLoRA).
type LoRA = weights.LoRA

// LoRAAdapter is one adapted weight of a LoRA.
type LoRAAdapter = weights.LoRAAdapter

// loraTarget is a weight a LoRA may change.
type loraTarget struct{ component, key string }

// loraTargets lists (once) the weights of the pipeline's U-Net and text
// encoder a LoRA may change: every matrix and convolution kernel.
func (p *Pipeline) loraTargets() weights.LoRATargets {
	if p.lora.targets != nil {
		return *p.lora.targets
	}
	t := weights.LoRATargets{Shapes: map[string]map[string][]int{}}
	if c := p.UNet.Config; len(c.LayersPerBlock) > 0 && !slices.ContainsFunc(c.LayersPerBlock, func(n int) bool { return n != c.LayersPerBlock[0] }) {
		l := weights.Layout{LayersPerBlock: c.LayersPerBlock[0]}
		for _, b := range c.UpBlockTypes {
			l.UpBlockAttention = append(l.UpBlockAttention, strings.Contains(b, "CrossAttn"))
		}
		t.Layout = &l
	}
	add := func(ctx *context.Context, component string) {
		shapes := map[string][]int{}
		for v := range ctx.IterVariables() {
			if v.Name() == "weight" && (v.Shape().Rank() == 2 || v.Shape().Rank() == 4) {
				shapes[nn.ScopeToKey(v.Scope(), v.Name())] = v.Shape().Dimensions
			}
		}
		t.Shapes[component] = shapes
	}
	add(p.UNet.Ctx, weights.UNet)
	add(p.Text.Ctx, weights.TextEncoder)
	p.lora.targets = &t
	return t
}

// LoadLoRA reads a LoRA file against the pipeline's model (see
// weights.ReadLoRA for the formats and the errors).
func (p *Pipeline) LoadLoRA(path string) (*LoRA, error) {
	return weights.ReadLoRA(path, p.loraTargets())
}

// loraState is the pipeline's LoRA bookkeeping: parsed files, the base
// values of the weights the applied set changed, and that set.
type loraState struct {
	targets *weights.LoRATargets
	files   map[string]cachedLoRA    // by path
	base    map[loraTarget][]float32 // base values of the weights now changed
	key     string                   // the applied set, as loraSetKey
	used    []appliedLoRA            // for the infotext
	dir     map[string]string        // LoRA folder listing: name → path
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
// prompt's tags (as validate parsed them), each resolved to a file.
func (p *Pipeline) requestLoRAs(req Request, tagged []LoRASpec) ([]resolvedLoRA, error) {
	var err error
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
// ListLoRAs maps the name of each LoRA file under dir (a .safetensors file,
// subfolders searched, hidden ones skipped; the first of equal names wins)
// to its path: the names requests and <lora:name:w> tags may use.
func ListLoRAs(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".safetensors") {
			n := strings.TrimSuffix(d.Name(), filepath.Ext(path))
			if _, dup := out[n]; !dup {
				out[n] = path
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("LoRA folder: %w", err)
	}
	return out, nil
}

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
	dir, err := ListLoRAs(p.LoRADir)
	if err != nil {
		return "", err
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
	if len(l.Skipped) > 0 {
		slog.Warn("LoRA tensors that match no weight of the model were skipped", "file", r.path, "count", len(l.Skipped), "first", l.Skipped[0])
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
	_, tags, err := ParseLoRATags(req.Prompt)
	if err != nil {
		return err
	}
	p.prep.Lock()
	rs, err := p.requestLoRAs(req, tags)
	p.prep.Unlock()
	if err != nil {
		return err
	}
	return p.applyLoRASet(rs)
}

// applyLoRASet is applyLoRAs of a resolved set (a Plan's).
func (p *Pipeline) applyLoRASet(rs []resolvedLoRA) error {
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
		if err := v.SetValue(nn.FromValues(v.Shape(), val)); err != nil { // in the weight's dtype (16-bit weights stay 16-bit)
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
