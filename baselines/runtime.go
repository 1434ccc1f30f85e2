package baselines

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// GraphFn is a graph function over a model's context.
type GraphFn func(ctx *context.Context, in []*Node) []*Node

// Runtime runs inference graphs over a training context, compiling each
// named function once (per input shape) and reusing it.
type Runtime struct {
	Backend backends.Backend
	Ctx     *context.Context
	execs   map[string]*context.Exec
}

// NewRuntime wraps ctx.
func NewRuntime(backend backends.Backend, ctx *context.Context) *Runtime {
	return &Runtime{Backend: backend, Ctx: ctx, execs: map[string]*context.Exec{}}
}

// Run executes fn (compiled once under name) on inputs and returns its
// outputs. Variables the function sets are written back, as in training.
func (r *Runtime) Run(name string, fn GraphFn, inputs ...any) (out []*tensors.Tensor, err error) {
	err = nn.Try(func() {
		e := r.execs[name]
		if e == nil {
			e = context.MustNewExec(r.Backend, r.Ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node { return fn(ctx, in) })
			r.execs[name] = e
		}
		var err error
		out, err = e.Exec(inputs...)
		if err != nil {
			panic(err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("baselines: %s: %w", name, err)
	}
	return out, nil
}

// Floats copies a float32 tensor out.
func Floats(t *tensors.Tensor) []float32 { return tensors.MustCopyFlatData[float32](t) }

// InitScope creates fresh random variables under scope of ctx for the
// variables build asks for (built at the root of a scratch context), with
// train.InitComponent's initialisation.
func InitScope(backend backends.Backend, ctx *context.Context, scope string, seed uint64, build func(ctx *context.Context, g *Graph)) error {
	keys, err := nn.ExpectedKeys(backend, build)
	if err != nil {
		return fmt.Errorf("baselines: building %s: %w", scope, err)
	}
	return train.InitComponent(ctx, "/"+strings.TrimPrefix(scope, "/"), keys, seed)
}
