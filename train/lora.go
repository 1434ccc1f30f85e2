package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/unet"
	"github.com/ldm-project/ldm/weights"
)

// LoRAScope holds the adapters in a training context: the adapter of U-Net
// weight "/unet/<path>/weight" is "/lora/unet/<path>/{lora_down,lora_up}".
const LoRAScope = "/lora"

// loraTargets are the attention projections LoRA adapts (kohya's and
// diffusers' default target modules for the U-Net).
var loraTargets = []string{".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight"}

// IsLoRATarget reports whether a U-Net key is adapted.
func IsLoRATarget(key string) bool {
	for _, s := range loraTargets {
		if strings.HasSuffix(key, s) && strings.Contains(key, "attn") {
			return true
		}
	}
	return false
}

// LoRA adds rank-r adapters W + (alpha/r)·up·down to the attention
// projections of the component under scope.
type LoRA struct {
	Rank  int
	Alpha float64
	Scope string // the adapted component's scope, e.g. UNetScope
	keys  []string
}

// AddLoRA creates the adapters of every target weight under scope: down
// [r,in] drawn as kohya does (Kaiming-uniform, bound 1/√in), up [out,r] zero,
// so training starts from the unchanged model.
func AddLoRA(ctx *context.Context, scope string, rank int, alpha float64, seed uint64) (*LoRA, error) {
	if rank < 1 {
		return nil, fmt.Errorf("LoRA rank %d must be ≥ 1", rank)
	}
	l := &LoRA{Rank: rank, Alpha: alpha, Scope: scope}
	for v := range ctx.IterVariables() {
		key := keyOf(v)
		if !strings.HasPrefix(v.Scope(), scope+"/") || !IsLoRATarget(key) || v.Shape().Rank() != 2 {
			continue
		}
		l.keys = append(l.keys, key)
	}
	if len(l.keys) == 0 {
		return nil, fmt.Errorf("no attention projections under %s to adapt", scope)
	}
	sort.Strings(l.keys)
	err := nn.Try(func() {
		for i, key := range l.keys {
			scope, _ := nn.KeyToScope(key)
			w := ctx.GetVariableByScopeAndName(scope, "weight")
			out, in := w.Shape().Dim(0), w.Shape().Dim(1)
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			down := make([]float32, rank*in)
			bound := 1 / math.Sqrt(float64(in))
			for j := range down {
				down[j] = float32((2*r.Float64() - 1) * bound)
			}
			ls := LoRAScope + scope
			ensure(ctx, ls, "lora_down", func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions(down, rank, in) })
			ensure(ctx, ls, "lora_up", func() *tensors.Tensor { return tensors.FromShape(shapeOf(out, rank)) })
		}
	})
	return l, err
}

// Wrap returns loss with every adapted weight replaced, inside the graph
// only, by W + (alpha/r)·up·down; the stored W is never changed.
func (l *LoRA) Wrap(loss LossFn) LossFn {
	scale := l.Alpha / float64(l.Rank)
	return func(ctx *context.Context, in []*Node) *Node {
		g := in[0].Graph()
		type saved struct {
			v  *context.Variable
			w0 *Node
		}
		var restore []saved
		for _, key := range l.keys {
			scope, _ := nn.KeyToScope(key)
			v := ctx.GetVariableByScopeAndName(scope, "weight")
			w0 := v.ValueGraph(g)
			down := ctx.GetVariableByScopeAndName(LoRAScope+scope, "lora_down").ValueGraph(g)
			up := ctx.GetVariableByScopeAndName(LoRAScope+scope, "lora_up").ValueGraph(g)
			v.SetValueGraph(Add(w0, MulScalar(nn.Product(up, down), scale)))
			restore = append(restore, saved{v, w0})
		}
		out := loss(ctx, in)
		for _, s := range restore {
			s.v.SetValueGraph(s.w0) // not a change: nothing is written back
		}
		return out
	}
}

// KohyaName is the kohya-ss module name of a diffusers U-Net weight key:
// "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight" →
// "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q".
func KohyaName(unetKey string) string {
	return "lora_unet_" + strings.ReplaceAll(strings.TrimSuffix(unetKey, ".weight"), ".", "_")
}

// SaveLoRA writes the adapters in kohya's format (the one AUTOMATIC1111,
// ComfyUI and diffusers' load_lora_weights read): per module
// <name>.lora_down.weight [r,in], <name>.lora_up.weight [out,r] and
// <name>.alpha (a scalar). Written atomically.
func (l *LoRA) SaveLoRA(ctx *context.Context, path string) error {
	var list []weights.WriteTensor
	prefix := strings.TrimPrefix(l.Scope, "/") + "."
	for _, key := range l.keys {
		scope, _ := nn.KeyToScope(key)
		name := KohyaName(strings.TrimPrefix(key, prefix))
		for _, part := range []string{"lora_down", "lora_up"} {
			v := ctx.GetVariableByScopeAndName(LoRAScope+scope, part)
			t, err := v.Value()
			if err != nil {
				return err
			}
			list = append(list, weights.WriteTensor{Name: name + "." + part + ".weight", DType: weights.F32,
				Shape: v.Shape().Dimensions, Float32: nn.Values(t)})
		}
		list = append(list, weights.WriteTensor{Name: name + ".alpha", DType: weights.F32, Shape: []int{}, Float32: []float32{float32(l.Alpha)}})
	}
	return weights.WriteFile(path, list, map[string]string{"ss_network_module": "networks.lora",
		"ss_network_dim": fmt.Sprint(l.Rank), "ss_network_alpha": fmt.Sprint(l.Alpha)})
}

// MergeLoRA adds a LoRA file to a loaded U-Net's weights at strength weight:
// W += weight·(alpha/r)·up·down for every adapted linear layer. It reads
// kohya files (lora_unet_*.lora_down/lora_up/alpha; alpha absent means r)
// and diffusers PEFT files (unet.<module>.lora_A/lora_B, scale 1).
// Text-encoder adapters (lora_te_*) and convolution adapters are skipped and
// counted in the result. It returns how many layers were merged.
func MergeLoRA(m *unet.Model, path string, weight float64) (merged, skipped int, err error) {
	f, err := weights.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	byKohya := map[string]string{} // kohya name → diffusers module
	modules := map[string]bool{}
	for v := range m.Ctx.IterVariables() {
		if v.Name() != "weight" || v.Shape().Rank() != 2 {
			continue
		}
		key := keyOf(v)
		mod := strings.TrimSuffix(key, ".weight")
		byKohya[KohyaName(key)] = mod
		modules[mod] = true
	}
	type pair struct{ down, up, alpha string }
	pairs := map[string]*pair{} // diffusers module → tensor names
	get := func(mod string) *pair {
		if pairs[mod] == nil {
			pairs[mod] = &pair{}
		}
		return pairs[mod]
	}
	for _, name := range f.Names() {
		switch {
		case strings.HasPrefix(name, "lora_unet_"):
			base, part, _ := strings.Cut(name, ".")
			mod, ok := byKohya[base]
			if !ok {
				skipped++
				continue
			}
			switch part {
			case "lora_down.weight":
				get(mod).down = name
			case "lora_up.weight":
				get(mod).up = name
			case "alpha":
				get(mod).alpha = name
			}
		case strings.Contains(name, ".lora_A.") || strings.Contains(name, ".lora_B."):
			mod := strings.TrimPrefix(name, "unet.")
			mod = strings.TrimPrefix(mod, "base_model.model.")
			i := strings.Index(mod, ".lora_")
			part := mod[i+1:]
			mod = mod[:i]
			if !modules[mod] {
				skipped++
				continue
			}
			if strings.HasPrefix(part, "lora_A") {
				get(mod).down = name
			} else {
				get(mod).up = name
			}
		default:
			skipped++
		}
	}
	mods := make([]string, 0, len(pairs))
	for mod := range pairs {
		mods = append(mods, mod)
	}
	sort.Strings(mods)
	for _, mod := range mods {
		p := pairs[mod]
		if p.down == "" || p.up == "" {
			return merged, skipped, fmt.Errorf("%s: %s has only one of its LoRA matrices", path, mod)
		}
		down, ds, err := f.Float32(p.down)
		if err != nil {
			return merged, skipped, err
		}
		up, us, err := f.Float32(p.up)
		if err != nil {
			return merged, skipped, err
		}
		if len(ds) != 2 || len(us) != 2 || us[1] != ds[0] {
			skipped++ // a convolution adapter or a malformed pair
			continue
		}
		r := ds[0]
		scale := weight
		if p.alpha != "" {
			a, _, err := f.Float32(p.alpha)
			if err != nil {
				return merged, skipped, err
			}
			scale *= float64(a[0]) / float64(r)
		}
		scope, name := nn.KeyToScope(mod + ".weight")
		v := m.Ctx.GetVariableByScopeAndName(scope, name)
		out, in := v.Shape().Dim(0), v.Shape().Dim(1)
		if us[0] != out || ds[1] != in {
			return merged, skipped, fmt.Errorf("%s: %s is [%d,%d] but its LoRA is [%d,%d]·[%d,%d]", path, mod, out, in, us[0], us[1], ds[0], ds[1])
		}
		t, err := v.Value()
		if err != nil {
			return merged, skipped, err
		}
		w := nn.Values(t)
		for o := range out {
			for i := range in {
				var s float64
				for k := range r {
					s += float64(up[o*r+k]) * float64(down[k*in+i])
				}
				w[o*in+i] += float32(scale * s)
			}
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(w, out, in)); err != nil {
			return merged, skipped, err
		}
		merged++
	}
	return merged, skipped, nil
}
