package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/weights"
)

// Scopes of the components in a training context: the diffusers folder names.
const (
	UNetScope = "/" + weights.UNet
	TextScope = "/" + weights.TextEncoder
	VAEScope  = "/" + weights.VAE
)

// LoadComponent copies src (diffusers keys) into ctx under scope.
func LoadComponent(ctx *context.Context, scope string, src nn.Source) error {
	prefix := strings.TrimPrefix(scope, "/") + "."
	return nn.Try(func() {
		for _, key := range src.Keys() {
			data, shape, err := src.Float32(key)
			if err != nil {
				panic(fmt.Errorf("%s: %w", key, err))
			}
			setVar(ctx, prefix+key, tensors.FromFlatDataAndDimensions(data, shape...))
		}
	})
}

// InitComponent creates the variables of expected (key → shape, from a
// model's ExpectedKeys) under scope with fresh random values: matrices and
// kernels uniform in ±1/√fan_in (PyTorch's default bound), norm scales 1,
// biases 0. The same seed gives the same weights.
func InitComponent(ctx *context.Context, scope string, expected map[string][]int, seed uint64) error {
	return LoadComponent(ctx, scope, nn.RandomSource(expected, seed))
}

// ComponentTensors lists the variables under scope with the scope prefix
// taken off their keys (diffusers keys again), ready for weights.WriteFile.
// With ema, trained variables are written from their EMA copy.
func ComponentTensors(ctx *context.Context, scope string, ema bool) ([]weights.WriteTensor, error) {
	prefix := strings.TrimPrefix(scope, "/") + "."
	list, err := variableTensors(ctx, func(k string) bool { return strings.HasPrefix(k, prefix) }, ema)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i].Name = strings.TrimPrefix(list[i].Name, prefix)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no variables under %s", scope)
	}
	return list, nil
}

// ComponentSource reads the variables under scope (EMA copies with ema) as
// an nn.Source with diffusers keys: load it into a model for inference.
func ComponentSource(ctx *context.Context, scope string, ema bool) (nn.MapSource, error) {
	list, err := ComponentTensors(ctx, scope, ema)
	if err != nil {
		return nil, err
	}
	src := nn.MapSource{}
	for _, t := range list {
		data, err := t.Load()
		if err != nil {
			return nil, err
		}
		src[t.Name] = struct {
			Data  []float32
			Shape []int
		}{data, t.Shape}
	}
	return src, nil
}

// keyOf is a variable's dotted key.
func keyOf(v *context.Variable) string { return nn.ScopeToKey(v.Scope(), v.Name()) }

func shapeOf(dims ...int) shapes.Shape { return shapes.Make(nn.DType, dims...) }
