package nn

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Source is what Load reads: a component's tensors under diffusers keys
// (weights.Source satisfies it).
type Source interface {
	Keys() []string
	Float32(key string) ([]float32, []int, error)
}

// IntoSource is a Source that can convert a tensor straight into a given
// buffer. Load then fills each variable's tensor in place instead of
// converting into a slice and copying that: for SD1.5's 4.3 GB of float32
// weights, one allocation and one pass over memory less.
type IntoSource interface {
	Float32Shape(key string) ([]int, bool)
	Float32Into(key string, dst []float32) error
}

// HalfSource is a Source that can keep tensors in their stored 16-bit
// float dtype. Load then stores such a tensor as is (float16 as a Uint16
// tensor of its bits, bfloat16 as BFloat16), non-trainable, and Param
// decodes it in the graph: half the memory of float32 weights.
type HalfSource interface {
	// StoredHalf says whether key is to be kept in 16 bits: "F16" or
	// "BF16" with its shape, or ok false (then Load reads it as float32).
	StoredHalf(key string) (dtype string, shape []int, ok bool)
	// HalfInto copies the tensor's stored little-endian 16-bit values into
	// dst, which holds exactly two bytes per element.
	HalfInto(key string, dst []byte) error
}

func shapeOf(src IntoSource, key string) ([]int, bool) {
	if src == nil {
		return nil, false
	}
	return src.Float32Shape(key)
}

// KeyToScope splits a diffusers state-dict key into a GoMLX scope path and a
// variable name: "down_blocks.0.conv1.weight" → ("/down_blocks/0/conv1", "weight").
func KeyToScope(key string) (scope, name string) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return context.RootScope, key
	}
	return context.RootScope + strings.ReplaceAll(key[:i], ".", context.ScopeSeparator), key[i+1:]
}

// ScopeToKey is the inverse of KeyToScope.
func ScopeToKey(scope, name string) string {
	s := strings.TrimPrefix(scope, context.RootScope)
	if s == "" {
		return name
	}
	return strings.ReplaceAll(s, context.ScopeSeparator, ".") + "." + name
}

// Load copies every tensor of src into variables of ctx (one tensor in memory
// at a time besides the variables), keyed by diffusers names.
func Load(ctx *context.Context, src Source) error {
	into, _ := src.(IntoSource)
	half, _ := src.(HalfSource)
	for _, key := range src.Keys() {
		var t *tensors.Tensor
		stored := ""
		if half != nil {
			dt, shape, ok := half.StoredHalf(key)
			if ok && (dt == "F16" || dt == "BF16") {
				stored = dt
				gdt := dtypes.Uint16
				if dt == "BF16" {
					gdt = dtypes.BFloat16
				}
				t = tensors.FromShape(shapes.Make(gdt, shape...))
				var err error
				if merr := t.MutableBytes(func(b []byte) { err = half.HalfInto(key, b) }); merr != nil {
					return fmt.Errorf("weight %s: %w", key, merr)
				}
				if err != nil {
					return err
				}
			}
		}
		if t != nil {
			// Kept in 16 bits (above).
		} else if shape, ok := shapeOf(into, key); ok {
			t = tensors.FromShape(shapes.Make(DType, shape...))
			var err error
			tensors.MustMutableFlatData(t, func(flat []float32) { err = into.Float32Into(key, flat) })
			if err != nil {
				return err
			}
		} else {
			data, shape, err := src.Float32(key)
			if err != nil {
				return err
			}
			t = tensors.FromFlatDataAndDimensions(data, shape...)
		}
		scope, name := KeyToScope(key)
		if v := ctx.GetVariableByScopeAndName(scope, name); v != nil {
			if err := v.SetValue(t); err != nil {
				return fmt.Errorf("weight %s: %w", key, err)
			}
			if stored != "" {
				v.SetTrainable(false)
			}
			continue
		}
		if err := Try(func() {
			v := ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, t)
			if stored != "" {
				v.SetTrainable(false) // integer bits have no gradient
			}
		}); err != nil {
			return fmt.Errorf("weight %s: %w", key, err)
		}
	}
	return nil
}

// Keys lists the diffusers keys of the variables in ctx, sorted.
func Keys(ctx *context.Context) []string {
	var keys []string
	for v := range ctx.IterVariables() {
		keys = append(keys, ScopeToKey(v.Scope(), v.Name()))
	}
	sort.Strings(keys)
	return keys
}

// ExpectedKeys builds a model's graph on a fresh context (nothing runs) and
// returns the weight keys and shapes the model asks for. Comparing them with a
// file's keys names the missing and unexpected weights.
func ExpectedKeys(backend backends.Backend, build func(ctx *context.Context, g *Graph)) (map[string][]int, error) {
	ctx := context.New()
	out := map[string][]int{}
	err := Try(func() {
		g := NewGraph(backend, "expected_keys")
		defer g.Finalize()
		build(ctx, g)
		for v := range ctx.IterVariables() {
			out[ScopeToKey(v.Scope(), v.Name())] = v.Shape().Dimensions
		}
	})
	return out, err
}

// CompareKeys returns the keys expected but absent from have, and those in
// have but not expected, both sorted.
func CompareKeys(expected map[string][]int, have []string) (missing, unexpected []string) {
	hs := map[string]bool{}
	for _, k := range have {
		hs[k] = true
		if _, ok := expected[k]; !ok {
			unexpected = append(unexpected, k)
		}
	}
	for k := range expected {
		if !hs[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	return missing, unexpected
}

// Try runs fn and turns a panic (GoMLX reports errors by panicking) into an
// error, so that errors, not panics, cross package boundaries.
func Try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
			if debugPanics {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	fn()
	return nil
}

var debugPanics = false

// MaterializeWeights moves the weights of every ctx into the pure-Go
// backend b's shared buffers now, one tensor at a time, collecting the
// freed host copies as it goes. Otherwise the first execution does the
// move, and until the collector runs the weights are held twice (SD1.5's
// 4.3 GB of float32 weights then peak at ≈ 2× that). Other backends: a
// no-op (their device copies are a different memory).
func MaterializeWeights(b backends.Backend, ctxs ...*context.Context) error {
	if b == nil || !IsGo(b) || !b.HasSharedBuffers() {
		return nil
	}
	const collectEvery = 256 << 20
	moved := 0
	for _, ctx := range ctxs {
		if ctx == nil {
			continue
		}
		for v := range ctx.IterVariables() {
			t, err := v.Value()
			if err != nil || t == nil || t.IsShared() || !t.Ok() {
				continue
			}
			if err := t.MaterializeOnDevice(b, true, 0); err != nil {
				return fmt.Errorf("weight %s: %w", ScopeToKey(v.Scope(), v.Name()), err)
			}
			if moved += int(t.Memory()); moved >= collectEvery {
				runtime.GC()
				moved = 0
			}
		}
	}
	if moved > 0 {
		runtime.GC()
	}
	return nil
}

// WeightMismatch compares the weights loaded into ctx with the keys and
// shapes a model expects (have: the source's keys) and describes what is
// missing, unexpected or misshapen, at most 8 names of each; "" when they
// match.
func WeightMismatch(ctx *context.Context, expected map[string][]int, have []string) string {
	missing, unexpected := CompareKeys(expected, have)
	var wrong []string
	for key, want := range expected {
		scope, name := KeyToScope(key)
		if v := ctx.GetVariableByScopeAndName(scope, name); v != nil && !slices.Equal(v.Shape().Dimensions, want) {
			wrong = append(wrong, fmt.Sprintf("%s %v (config wants %v)", key, v.Shape().Dimensions, want))
		}
	}
	slices.Sort(wrong)
	var problems []string
	for _, l := range []struct {
		what string
		keys []string
	}{{"missing", missing}, {"unexpected", unexpected}, {"with the wrong shape", wrong}} {
		if len(l.keys) > 0 {
			problems = append(problems, fmt.Sprintf("%d %s: %s", len(l.keys), l.what, abbreviate(l.keys, 8)))
		}
	}
	return strings.Join(problems, "; ")
}

func abbreviate(keys []string, n int) string {
	if len(keys) <= n {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:n], ", "), len(keys)-n)
}
