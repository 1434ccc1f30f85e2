package nn

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// Param returns the graph value of variable name in ctx's scope, creating it
// with the given shape when it does not exist (training from scratch). Loaded
// models build with ctx.Reuse(), so a missing weight is an error naming it.
//
// A weight loaded in its stored 16-bit dtype (Load with a HalfSource) is
// decoded to float32 in the graph, at its use: bfloat16 by ConvertDType,
// float16 (kept as a uint16 tensor of its bits: GoMLX's pure-Go backend has
// no float16) by Gather from a 65536-entry table, which
// internal/simplegofast computes with F16C conversions.
func Param(ctx *context.Context, g *Graph, name string, dims ...int) *Node {
	if v := ctx.GetVariableByScopeAndName(ctx.Scope(), name); v != nil && v.Shape().DType != DType {
		return storedValue(v, g, dims)
	}
	return ctx.VariableWithShape(name, shapes.Make(DType, dims...)).ValueGraph(g)
}

// storedValue is the float32 value of a weight kept as float16 bits
// (Uint16) or bfloat16.
func storedValue(v *context.Variable, g *Graph, dims []int) *Node {
	s := v.Shape()
	if !slices.Equal(s.Dimensions, dims) {
		panic(fmt.Errorf("weight %s has shape %v, the model expects %v", ScopeToKey(v.Scope(), v.Name()), s.Dimensions, dims))
	}
	x := v.ValueGraph(g)
	switch s.DType {
	case dtypes.Uint16:
		n := s.Size()
		y := Gather(halfTableNode(g), Reshape(x, n, 1))
		return Reshape(y, dims...)
	case dtypes.BFloat16, dtypes.Float16, dtypes.Float64:
		return ConvertDType(x, DType)
	}
	panic(fmt.Errorf("weight %s has dtype %s, not a weight dtype", ScopeToKey(v.Scope(), v.Name()), s.DType))
}

// halfTables caches each graph's float16 decoding table constant (one
// 256 KiB constant per graph, not one per weight); the oldest graphs are
// forgotten first.
var halfTables struct {
	sync.Mutex
	byGraph map[*Graph]*Node
	order   []*Graph
}

func halfTableNode(g *Graph) *Node {
	halfTables.Lock()
	defer halfTables.Unlock()
	if n, ok := halfTables.byGraph[g]; ok {
		return n
	}
	if halfTables.byGraph == nil {
		halfTables.byGraph = map[*Graph]*Node{}
	}
	if len(halfTables.order) >= 16 {
		delete(halfTables.byGraph, halfTables.order[0])
		halfTables.order = halfTables.order[1:]
	}
	n := Const(g, simplegofast.HalfTable())
	halfTables.byGraph[g] = n
	halfTables.order = append(halfTables.order, g)
	return n
}

// Product multiplies [..., K] by [K, N]. Like every matrix product of nn
// (Linear, Conv2D, Attention) it is a DotGeneral, whose gradient on the
// pure-Go backend is replaced by two DotGenerals (see vjp.go): 20–25× faster
// there than GoMLX's own, and the forward graph is the same on every backend.
func Product(a, b *Node) *Node {
	return matMul(a, b)
}

var matMul = func(a, b *Node) *Node {
	return DotGeneral(a, []int{a.Rank() - 1}, nil, b, []int{0}, nil)
}

// productT multiplies [..., K] by the transpose of w [N, K] (a torch Linear
// weight) without materialising the transpose: the backends read w in
// either order, and on the pure-Go backend the extra copy of w costs more
// than a small product itself. Same values as Product(a, Transpose(w)).
func productT(a, w *Node) *Node {
	return DotGeneral(a, []int{a.Rank() - 1}, nil, w, []int{1}, nil)
}

// Linear is torch.nn.Linear on the last axis: weight [out,in], optional bias [out].
func Linear(ctx *context.Context, x *Node, out int, bias bool) *Node {
	in := x.Shape().Dim(-1)
	w := Param(ctx, x.Graph(), "weight", out, in)
	y := productT(x, w)
	if bias {
		y = Add(y, ExpandLeftToRank(Param(ctx, x.Graph(), "bias", out), y.Rank()))
	}
	return y
}

// Conv2DOpts describes a convolution; zero Stride means 1.
type Conv2DOpts struct {
	Out, Kernel, Stride, Pad int
	NoBias                   bool
}

// Conv2D is torch.nn.Conv2d on NHWC input: weight [O,I,kh,kw], bias [O].
// It is computed as im2col (one strided slice per kernel tap, concatenated on
// channels) followed by one matrix product; on the pure-Go backend this is
// ~13× faster than the native convolution and differentiable.
func Conv2D(ctx *context.Context, x *Node, o Conv2DOpts) *Node {
	g := x.Graph()
	in := x.Shape().Dim(-1)
	k := o.Kernel
	weight := Param(ctx, g, "weight", o.Out, in, k, k)
	var bias *Node
	if !o.NoBias {
		bias = Param(ctx, g, "bias", o.Out)
	}
	return conv2DWith(x, weight, bias, k, max(o.Stride, 1), o.Pad)
}

// convStripBytes bounds the im2col matrix of one convolution: above it the
// output rows are computed in horizontal strips (see conv2DWith). A
// variable so that tests can force striping on small convolutions.
var convStripBytes = 64 << 20

// conv2DWith is Conv2D on given weight [O,I,k,k] and bias [O] (nil: none).
//
// The im2col matrix is k² times the input: at 512²×256 channels (the last
// levels of the SD VAE decoder) it alone is 2.4 GB. When it would exceed
// convStripBytes, the output rows are computed in strips of about equal
// height: each strip slices the padded input rows it needs, builds its own
// im2col and does one product, and the strips are concatenated on H. Every
// output value is the same product over the same K ordering, so the result
// is bit-identical; the sequential pure-Go executor frees each strip's
// im2col before the next is built.
func conv2DWith(x, weight, bias *Node, k, stride, pad int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, in := dims[0], dims[1], dims[2], dims[3]
	if pad > 0 {
		x = ZeroPad2D(x, pad)
		h, w = h+2*pad, w+2*pad
	}
	ho, wo := (h-k)/stride+1, (w-k)/stride+1
	if k == 1 && stride == 1 {
		return convRows(x, weight, bias, k, stride, ho, wo) // no im2col copy
	}
	rowBytes := b * wo * k * k * in * x.DType().Size()
	if ho < 2 || rowBytes*ho <= convStripBytes {
		return convRows(x, weight, bias, k, stride, ho, wo)
	}
	rows := max(1, convStripBytes/rowBytes)
	n := (ho + rows - 1) / rows
	rows = (ho + n - 1) / n // balanced strips: equal shapes reuse buffers
	if useWinograd(k, stride, in, weight.Shape().Dim(0), ho, wo) && rows%2 == 1 && rows < ho {
		rows++ // Winograd's 2×2 tiles: even strips waste no padded row
	}
	strips := make([]*Node, 0, n)
	for r0 := 0; r0 < ho; r0 += rows {
		r := min(rows, ho-r0)
		part := Slice(x, AxisRange(), AxisRange(r0*stride, (r0+r-1)*stride+k), AxisRange(), AxisRange())
		strips = append(strips, convRows(part, weight, bias, k, stride, r, wo))
	}
	return Concatenate(strips, 1)
}

// convRows is the unpadded convolution of x [B,H,W,I] giving ho×wo output
// rows: im2col then one product.
func convRows(x, weight, bias *Node, k, stride, ho, wo int) *Node {
	b, in := x.Shape().Dim(0), x.Shape().Dim(3)
	out := weight.Shape().Dim(0)
	if useWinograd(k, stride, in, out, ho, wo) {
		return convWinograd(x, weight, bias, ho, wo)
	}
	var cols *Node
	if k == 1 && stride == 1 {
		cols = x
	} else {
		taps := make([]*Node, 0, k*k)
		for dy := 0; dy < k; dy++ {
			for dx := 0; dx < k; dx++ {
				taps = append(taps, Slice(x, AxisRange(),
					AxisRange(dy, dy+(ho-1)*stride+1).Stride(stride),
					AxisRange(dx, dx+(wo-1)*stride+1).Stride(stride),
					AxisRange()))
			}
		}
		cols = Concatenate(taps, -1)
	}
	// cols [pixels, kh, kw, I] contracted with weight [O, I, kh, kw] on
	// (kh, kw, I): the weight is read in place, never transposed.
	cols = Reshape(cols, b*ho*wo, k, k, in)
	y := DotGeneral(cols, []int{1, 2, 3}, nil, weight, []int{2, 3, 1}, nil)
	if bias != nil {
		y = Add(y, ExpandLeftToRank(bias, 2))
	}
	return Reshape(y, b, ho, wo, out)
}

// ZeroPad2D pads the two spatial axes of NHWC x with p zeros on each side,
// using Concatenate (the pure-Go backend has no Pad op).
func ZeroPad2D(x *Node, p int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	zr := Zeros(x.Graph(), shapes.Make(x.DType(), b, p, w, c))
	x = Concatenate([]*Node{zr, x, zr}, 1)
	zc := Zeros(x.Graph(), shapes.Make(x.DType(), b, h+2*p, p, c))
	return Concatenate([]*Node{zc, x, zc}, 2)
}

// GroupNorm is torch.nn.GroupNorm on channels-last x ([B, ..., C]) with
// affine weight and bias [C].
func GroupNorm(ctx *context.Context, x *Node, groups int, eps float64) *Node {
	g := x.Graph()
	c := x.Shape().Dim(-1)
	return groupNormWith(x, Param(ctx, g, "weight", c), Param(ctx, g, "bias", c), groups, eps)
}

// groupNormWith is GroupNorm with given affine weight and bias [C].
//
// Formulated for the pure-Go backend, with the same values everywhere: the
// group statistics are reduced in two steps (channels within a group, then
// positions), each over adjacent axes, which the fast reducer handles (one
// reduction over the two non-adjacent axes falls back to a generic index
// walk, 3× slower); 1/σ and the weight are folded into one small scale
// tensor; the input gradient is standardize's closed form.
func groupNormWith(x, weight, bias *Node, groups int, eps float64) *Node {
	dims := x.Shape().Dimensions
	b, c := dims[0], dims[len(dims)-1]
	s, cg := x.Shape().Size()/(b*c), c/groups
	groupMean := func(t *Node) *Node { // [b,s,g,cg] → [b,1,g,1]
		sum := ReduceSum(ReduceSum(t, 3), 1)
		return Reshape(MulScalar(sum, 1/float64(s*cg)), b, 1, groups, 1)
	}
	xc, std := standardize(x, []int{b, s, groups, cg}, groupMean, eps)
	scale := Mul(Reciprocal(std), Reshape(weight, 1, 1, groups, cg))
	y := Add(Mul(xc, scale), Reshape(bias, 1, 1, groups, cg))
	return Reshape(y, dims...)
}

// LayerNorm is torch.nn.LayerNorm over the last axis.
func LayerNorm(ctx *context.Context, x *Node, eps float64) *Node {
	g := x.Graph()
	c := x.Shape().Dim(-1)
	return layerNormWith(x, Param(ctx, g, "weight", c), Param(ctx, g, "bias", c), eps)
}

// layerNormWith is LayerNorm with given affine weight and bias [C].
func layerNormWith(x, weight, bias *Node, eps float64) *Node {
	mean := func(t *Node) *Node { return ReduceAndKeep(t, ReduceMean, -1) }
	xc, std := standardize(x, x.Shape().Dimensions, mean, eps)
	r := x.Rank()
	return Add(Mul(Div(xc, std), ExpandLeftToRank(weight, r)), ExpandLeftToRank(bias, r))
}

// standardize returns x − mean and σ = √(var + eps), x reshaped to shape and
// mean the (broadcastable) mean over the normalised axes, with the two-pass
// variance as PyTorch computes it. It avoids Rsqrt, which has no gradient on
// the pure-Go backend.
//
// The gradient with respect to x is attached in closed form,
// dx = g − mean(g) − x̂·mean(g·x̂) with x̂ = (x − mean)/σ and g = ∂L/∂(x − mean)
// (that is ∂L/∂x̂ / σ), through IdentityWithCustomGradient; the statistics
// themselves carry no gradient. Autodiff through the mean and variance would
// materialise several full-size broadcasts instead (GroupNorm forward and
// backward: 20% less CPU time, measured in docs/PERFORMANCE.md).
func standardize(x *Node, shape []int, mean func(*Node) *Node, eps float64) (xc, std *Node) {
	dims := x.Shape().Dimensions
	xi := IdentityWithCustomGradient(x, func(_, g *Node) *Node {
		gs := Reshape(g, shape...)
		k := Div(mean(Mul(gs, xc)), Square(std))
		return Reshape(Sub(Sub(gs, mean(gs)), Mul(xc, k)), dims...)
	})
	xs := Reshape(xi, shape...)
	xc = Sub(xs, StopGradient(mean(xs)))
	std = StopGradient(Sqrt(AddScalar(mean(Square(xc)), eps)))
	return xc, std
}

// SiLU is x·σ(x).
func SiLU(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// GELU is the exact (erf) GELU, torch's default.
func GELU(x *Node) *Node {
	return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
}

// QuickGELU is x·σ(1.702x), used by OpenAI's CLIP.
func QuickGELU(x *Node) *Node { return Mul(x, Sigmoid(MulScalar(x, 1.702))) }

// Upsample2x is nearest-neighbour upsampling by 2 of NHWC x.
func Upsample2x(x *Node) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	x = Reshape(x, b, h, 1, w, 1, c)
	x = BroadcastToDims(x, b, h, 2, w, 2, c)
	return Reshape(x, b, 2*h, 2*w, c)
}
