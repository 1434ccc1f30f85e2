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
