package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

var testBackendOnce = sync.OnceValues(func() (backends.Backend, error) { return NewBackend("go") })

// testBackend is the wrapped pure-Go backend shared by the tests (tensors
// cannot cross backend instances).
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := testBackendOnce()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gradCase is a function of one input x and of named parameters (created in
// scope "p" with the given shapes), checked by gradient tests.
type gradCase struct {
	name   string
	x      []int
	params map[string][]int
	build  func(ctx *context.Context, x *Node) *Node
}

func gradCases() []gradCase {
	attn := func(causal bool) func(ctx *context.Context, x *Node) *Node {
		return func(ctx *context.Context, x *Node) *Node {
			q := Linear(ctx.In("q"), x, 8, false)
			k := Linear(ctx.In("k"), x, 8, false)
			v := Linear(ctx.In("v"), x, 8, false)
			return Attention(q, k, v, 2, causal)
		}
	}
	conv := func(k, stride, pad int) func(ctx *context.Context, x *Node) *Node {
		return func(ctx *context.Context, x *Node) *Node {
			return Conv2D(ctx.In("conv"), x, Conv2DOpts{Out: 4, Kernel: k, Stride: stride, Pad: pad})
		}
	}
	return []gradCase{
		{"Product", []int{2, 3, 5}, map[string][]int{"w": {5, 4}}, func(ctx *context.Context, x *Node) *Node {
			return Product(x, Param(ctx, x.Graph(), "w", 5, 4))
		}},
		{"Linear", []int{3, 6}, map[string][]int{"lin/weight": {4, 6}, "lin/bias": {4}}, func(ctx *context.Context, x *Node) *Node {
			return Linear(ctx.In("lin"), x, 4, true)
		}},
		{"Conv2D 3x3 s1", []int{2, 5, 6, 3}, map[string][]int{"conv/weight": {4, 3, 3, 3}, "conv/bias": {4}}, conv(3, 1, 1)},
		{"Conv2D 3x3 s2", []int{1, 7, 6, 3}, map[string][]int{"conv/weight": {4, 3, 3, 3}, "conv/bias": {4}}, conv(3, 2, 1)},
		{"Conv2D 1x1", []int{2, 3, 4, 3}, map[string][]int{"conv/weight": {4, 3, 1, 1}, "conv/bias": {4}}, conv(1, 1, 0)},
		{"GroupNorm", []int{2, 3, 2, 8}, map[string][]int{"gn/weight": {8}, "gn/bias": {8}}, func(ctx *context.Context, x *Node) *Node {
			return GroupNorm(ctx.In("gn"), x, 4, 1e-5)
		}},
		{"LayerNorm", []int{2, 3, 6}, map[string][]int{"ln/weight": {6}, "ln/bias": {6}}, func(ctx *context.Context, x *Node) *Node {
			return LayerNorm(ctx.In("ln"), x, 1e-5)
		}},
		{"Attention", []int{2, 5, 6}, map[string][]int{"q/weight": {8, 6}, "k/weight": {8, 6}, "v/weight": {8, 6}}, attn(false)},
		{"Attention causal", []int{2, 5, 6}, map[string][]int{"q/weight": {8, 6}, "k/weight": {8, 6}, "v/weight": {8, 6}}, attn(true)},
		{"Upsample2x", []int{1, 2, 3, 2}, nil, func(_ *context.Context, x *Node) *Node { return Upsample2x(x) }},
		{"ZeroPad2D", []int{1, 2, 3, 2}, nil, func(_ *context.Context, x *Node) *Node { return ZeroPad2D(x, 2) }},
		{"SiLU GELU QuickGELU", []int{7}, nil, func(_ *context.Context, x *Node) *Node {
			return Concatenate([]*Node{SiLU(x), GELU(x), QuickGELU(x)}, 0)
		}},
	}
}

// gradSetup holds a case's context (parameters loaded) and fixed random
// input and output weighting R: the loss is sum(f(x)·R).
type gradSetup struct {
	ctx  *context.Context
	vars []*context.Variable
	x    *tensors.Tensor
}

func newGradSetup(t *testing.T, c gradCase, dtype dtypes.DType, seed uint64) *gradSetup {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	ctx := context.New()
	s := &gradSetup{ctx: ctx}
	for _, name := range sortedKeys(c.params) {
		dims := c.params[name]
		scope, vname := KeyToScope("p." + dotted(name))
		t64 := randTensor(r, dtype, dims)
		v := ctx.InAbsPath(scope).Checked(false).VariableWithValue(vname, t64)
		s.vars = append(s.vars, v)
	}
	s.x = randTensor(r, dtype, c.x)
	return s
}

func dotted(name string) string {
	out := []byte(name)
	for i := range out {
		if out[i] == '/' {
			out[i] = '.'
		}
	}
	return string(out)
}

func sortedKeys(m map[string][]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func randTensor(r *rand.Rand, dtype dtypes.DType, dims []int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	if dtype == dtypes.Float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = r.NormFloat64()
		}
		return tensors.FromFlatDataAndDimensions(x, dims...)
	}
	return tensors.FromFlatDataAndDimensions(randn(r, n), dims...)
}

// lossGraph builds sum(f(x)·R) with R a fixed pseudo-random tensor.
func lossGraph(c gradCase, ctx *context.Context, x *Node) *Node {
	y := c.build(ctx.In("p"), x)
	r := rand.New(rand.NewPCG(99, 1))
	w := randTensor(r, y.DType(), y.Shape().Dimensions)
	return ReduceAllSum(Mul(y, Const(x.Graph(), w)))
}

// gradients returns the loss and its gradients with respect to x and each
// parameter (in s.vars order), as float64.
func (s *gradSetup) gradients(t *testing.T, c gradCase) (float64, [][]float64) {
	t.Helper()
	b := testBackend(t)
	var out [][]float64
	var loss float64
	err := Try(func() {
		e := context.MustNewExec(b, s.ctx.Reuse(), func(ctx *context.Context, x *Node) []*Node {
			l := lossGraph(c, ctx, x)
			nodes := []*Node{x}
			for _, v := range s.vars {
				nodes = append(nodes, v.ValueGraph(x.Graph()))
			}
			return append([]*Node{l}, Gradient(l, nodes...)...)
		})
		res := e.MustExec(s.x)
		loss = flat64(res[0])[0]
		for _, r := range res[1:] {
			out = append(out, flat64(r))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return loss, out
}

func flat64(t *tensors.Tensor) []float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](t)
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](t)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	panic(fmt.Sprintf("dtype %s", t.DType()))
}

// withDType runs fn with nn.DType set to dtype.
func withDType(dtype dtypes.DType, fn func()) {
	old := DType
	DType = dtype
	defer func() { DType = old }()
	fn()
}

// withStockGradients runs fn with GoMLX's own DotGeneral and Dot gradients.
func withStockGradients(fn func()) {
	dg, d := VJPRegistration[NodeTypeDotGeneral], VJPRegistration[NodeTypeDot]
	VJPRegistration[NodeTypeDotGeneral], VJPRegistration[NodeTypeDot] = stockDotGeneralVJP, stockDotVJP
	defer func() { VJPRegistration[NodeTypeDotGeneral], VJPRegistration[NodeTypeDot] = dg, d }()
	fn()
}

// TestGradientsMatchFiniteDifferences checks every layer's gradient, with
// respect to its input and each parameter, against central differences in
// float64 on the wrapped pure-Go backend.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	b := testBackend(t)
	withDType(dtypes.Float64, func() {
		for ci, c := range gradCases() {
			t.Run(c.name, func(t *testing.T) {
				s := newGradSetup(t, c, dtypes.Float64, uint64(ci))
				_, grads := s.gradients(t, c)
				var lossExec *context.Exec
				if err := Try(func() {
					lossExec = context.MustNewExec(b, s.ctx.Reuse(), func(ctx *context.Context, x *Node) *Node { return lossGraph(c, ctx, x) })
				}); err != nil {
					t.Fatal(err)
				}
				eval := func(x *tensors.Tensor) float64 {
					var l float64
					if err := Try(func() { l = flat64(lossExec.MustExec(x)[0])[0] }); err != nil {
						t.Fatal(err)
					}
					return l
				}
				r := rand.New(rand.NewPCG(uint64(ci), 3))
				const h = 1e-5
				const samples = 10
				// Input.
				xs := tensors.MustCopyFlatData[float64](s.x)
				worst := 0.0
				for _, i := range sampleIdx(r, len(xs), samples) {
					xp, xm := append([]float64(nil), xs...), append([]float64(nil), xs...)
					xp[i] += h
					xm[i] -= h
					fd := (eval(tensors.FromFlatDataAndDimensions(xp, c.x...)) - eval(tensors.FromFlatDataAndDimensions(xm, c.x...))) / (2 * h)
					worst = max(worst, math.Abs(fd-grads[0][i])/scale(grads[0]))
				}
				// Parameters.
				for vi, v := range s.vars {
					vals := tensors.MustCopyFlatData[float64](v.MustValue())
					dims := v.Shape().Dimensions
					for _, i := range sampleIdx(r, len(vals), samples) {
						p := append([]float64(nil), vals...)
						p[i] = vals[i] + h
						v.MustSetValue(tensors.FromFlatDataAndDimensions(append([]float64(nil), p...), dims...))
						lp := eval(s.x)
						p[i] = vals[i] - h
						v.MustSetValue(tensors.FromFlatDataAndDimensions(append([]float64(nil), p...), dims...))
						lm := eval(s.x)
						fd := (lp - lm) / (2 * h)
						worst = max(worst, math.Abs(fd-grads[1+vi][i])/scale(grads[1+vi]))
					}
					v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, dims...))
				}
				t.Logf("max relative error vs finite differences: %.2g", worst)
				if worst > 1e-5 || math.IsNaN(worst) {
					t.Errorf("max relative error %g > 1e-5", worst)
				}
			})
		}
	})
}

// TestGradientsMatchStockVJP compares, in float32, the gradients computed
// with the pure-Go DotGeneral/Dot gradient with GoMLX's own.
func TestGradientsMatchStockVJP(t *testing.T) {
	for ci, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) {
			_, fast := newGradSetup(t, c, dtypes.Float32, uint64(ci)).gradients(t, c)
			var stock [][]float64
			withStockGradients(func() { _, stock = newGradSetup(t, c, dtypes.Float32, uint64(ci)).gradients(t, c) })
			worst := 0.0
			for k := range fast {
				sc := scale(stock[k])
				for i := range fast[k] {
					worst = max(worst, math.Abs(fast[k][i]-stock[k][i])/sc)
				}
			}
			t.Logf("max relative difference from the stock gradient: %.2g", worst)
			if worst > 1e-5 || math.IsNaN(worst) {
				t.Errorf("max relative difference %g > 1e-5", worst)
			}
		})
	}
}

// scale is the largest magnitude of g (at least 1e-3, to stay relative
// without dividing by zero).
func scale(g []float64) float64 {
	m := 1e-3
	for _, v := range g {
		m = max(m, math.Abs(v))
	}
	return m
}

func sampleIdx(r *rand.Rand, n, k int) []int {
	if n <= k {
		return seq(0, n)
	}
	return r.Perm(n)[:k]
}

// TestFastDotGeneralGradientIsUsed checks that the DotGeneral parameters can
// be read (a GoMLX upgrade may rename them, silently bringing back the slow
// gradient) and that the gradient graph holds no [M,N,K] tensor.
func TestFastDotGeneralGradientIsUsed(t *testing.T) {
	b := testBackend(t)
	err := Try(func() {
		g := NewGraph(b, "probe")
		defer g.Finalize()
		a := Parameter(g, "a", shapes.Make(dtypes.Float32, 2, 3, 4, 5))
		w := Parameter(g, "w", shapes.Make(dtypes.Float32, 3, 2, 5, 6))
		y := DotGeneral(a, []int{3, 1}, []int{0}, w, []int{2, 0}, []int{1})
		ax, ok := dotGeneralAxesOf(y)
		if !ok {
			t.Fatalf("cannot read DotGeneral axes of %s: the pure-Go backend falls back to the slow gradient", y)
		}
		if fmt.Sprint(ax) != fmt.Sprint(dotAxes{lc: []int{3, 1}, lb: []int{0}, rc: []int{2, 0}, rb: []int{1}}) {
			t.Fatalf("misread axes %+v", ax)
		}
		grads := Gradient(ReduceAllSum(y), a, w)
		maxSize := 0
		for _, n := range g.Nodes() {
			maxSize = max(maxSize, n.Shape().Size())
		}
		if maxSize > 2*3*4*5*6 {
			t.Errorf("gradient graph materialises a tensor of %d elements", maxSize)
		}
		_ = grads

		// Conv2D's input gradient must not transpose the im2col matrix
		// (9·16·64 elements here): the small weight is transposed instead.
		x := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, 8, 8, 16))
		wc := Parameter(g, "wc", shapes.Make(dtypes.Float32, 32, 16, 3, 3))
		before := len(g.Nodes())
		Gradient(ReduceAllSum(conv2DWith(x, wc, nil, 3, 1, 1)), x, wc)
		for _, n := range g.Nodes()[before:] {
			if n.Type() == NodeTypeTranspose && n.Shape().Size() > 32*16*9 {
				t.Errorf("conv gradient transposes %s", n.Shape())
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGeneralDotGeneralGradient checks batched, transposed and interleaved
// axis layouts (each picks a different formulation in gradProduct) against
// GoMLX's gradient.
func TestGeneralDotGeneralGradient(t *testing.T) {
	b := testBackend(t)
	for i, tc := range []struct {
		lhs, rhs       []int
		lc, lb, rc, rb []int
	}{
		{[]int{2, 3, 4, 5}, []int{3, 2, 5, 6}, []int{3, 1}, []int{0}, []int{2, 0}, []int{1}},
		{[]int{6, 2, 2, 3}, []int{4, 3, 2, 2}, []int{1, 2, 3}, nil, []int{2, 3, 1}, nil},     // conv: cols·weight
		{[]int{2, 5, 3, 4}, []int{2, 6, 3, 4}, []int{3}, []int{0, 2}, []int{3}, []int{0, 2}}, // attention scores
		{[]int{2, 3, 5, 6}, []int{2, 6, 3, 4}, []int{1}, []int{0, 3}, []int{2}, []int{0, 1}}, // attention output
		{[]int{5, 4}, []int{4, 3}, []int{1}, nil, []int{0}, nil},
		{[]int{4, 5}, []int{3, 4}, []int{0}, nil, []int{1}, nil},
		{[]int{3, 4, 5}, []int{5, 2, 4}, []int{2, 1}, nil, []int{0, 2}, nil},
	} {
		r := rand.New(rand.NewPCG(5, uint64(i)))
		at, wt := randTensor(r, dtypes.Float32, tc.lhs), randTensor(r, dtypes.Float32, tc.rhs)
		grads := func() (out [][]float64) {
			if err := Try(func() {
				e := MustNewExec(b, func(a, w *Node) []*Node {
					y := DotGeneral(a, tc.lc, tc.lb, w, tc.rc, tc.rb)
					c := Const(a.Graph(), randTensor(rand.New(rand.NewPCG(9, 9)), dtypes.Float32, y.Shape().Dimensions))
					return Gradient(ReduceAllSum(Mul(Square(y), c)), a, w)
				})
				for _, x := range e.MustExec(at, wt) {
					out = append(out, flat64(x))
				}
			}); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			return out
		}
		fast := grads()
		var stock [][]float64
		withStockGradients(func() { stock = grads() })
		for k := range fast {
			sc := scale(stock[k])
			worst := 0.0
			for j := range fast[k] {
				worst = max(worst, math.Abs(fast[k][j]-stock[k][j])/sc)
			}
			if worst > 1e-5 {
				t.Errorf("case %d, operand %d: max relative difference %g", i, k, worst)
			}
		}
	}
}
