package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// withConvStripBytes runs fn with the im2col size above which Conv2D
// computes in strips set to n bytes.
func withConvStripBytes(n int, fn func()) {
	prev := convStripBytes
	convStripBytes = n
	defer func() { convStripBytes = prev }()
	fn()
}

// TestConv2DStripsAreBitIdentical forces striping on small convolutions
// (one row per strip, and uneven strips) and checks that the
// output is bit-for-bit that of one im2col, and the gradients of input,
// weight and bias equal up to the rounding of summing strips.
func TestConv2DStripsAreBitIdentical(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(31, 32))
	for _, tc := range []struct {
		name             string
		k, stride, pad   int
		batch, h, w      int
		cin, cout        int
		bias             bool
		stripRowsToForce []int // output rows per strip (0: one im2col)
	}{
		{"3x3 s1 p1", 3, 1, 1, 2, 9, 7, 5, 6, true, []int{1, 2, 4}},
		{"3x3 s2 p1", 3, 2, 1, 1, 11, 8, 4, 3, true, []int{1, 2, 4}},
		{"3x3 s1 p0 no bias", 3, 1, 0, 2, 8, 6, 3, 4, false, []int{1, 3}},
		{"4x4 s2 p1", 4, 2, 1, 1, 10, 10, 3, 5, true, []int{1, 2}},
		{"3x3 s1 p1 wide (blocked product)", 3, 1, 1, 1, 24, 40, 64, 48, true, []int{1, 5}},
		{"1x1 (never striped)", 1, 1, 0, 1, 6, 5, 4, 3, true, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xt := randTensor(r, dtypes.Float32, []int{tc.batch, tc.h, tc.w, tc.cin})
			wt := randTensor(r, dtypes.Float32, []int{tc.cout, tc.cin, tc.k, tc.k})
			bt := randTensor(r, dtypes.Float32, []int{tc.cout})
			wo := (tc.w+2*tc.pad-tc.k)/tc.stride + 1
			rowBytes := tc.batch * wo * tc.k * tc.k * tc.cin * 4
			eval := func() (out [][]float64) {
				err := Try(func() {
					e := MustNewExec(b, func(x, w, bias *Node) []*Node {
						if !tc.bias {
							bias = nil
						}
						y := conv2DWith(x, w, bias, tc.k, tc.stride, tc.pad)
						// A loss that weighs every output differently.
						wgt := Sin(Iota(x.Graph(), y.Shape(), 1))
						wgt = Add(wgt, Cos(Iota(x.Graph(), y.Shape(), 2)))
						params := []*Node{x, w}
						if bias != nil {
							params = append(params, bias)
						}
						return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, wgt)), params...)...)
					})
					for _, res := range e.MustExec(xt, wt, bt) {
						out = append(out, flat64(res))
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			var want [][]float64
			withConvStripBytes(math.MaxInt, func() { want = eval() })
			for _, rows := range tc.stripRowsToForce {
				var got [][]float64
				withConvStripBytes(rows*rowBytes, func() { got = eval() })
				for i, name := range []string{"output", "input gradient", "weight gradient", "bias gradient"}[:len(want)] {
					if len(got[i]) != len(want[i]) {
						t.Fatalf("rows %d: %s has %d values, want %d", rows, name, len(got[i]), len(want[i]))
					}
					exact, worst, sc := true, 0.0, scale(want[i])
					for j := range want[i] {
						exact = exact && math.Float64bits(got[i][j]) == math.Float64bits(want[i][j])
						worst = max(worst, math.Abs(got[i][j]-want[i][j])/sc)
					}
					// The output is bit-identical; gradients sum the strips'
					// contributions in another order (rounding only).
					if i == 0 && !exact {
						t.Errorf("rows %d: output differs from one im2col (relative %g)", rows, worst)
					}
					if worst > 1e-6 || math.IsNaN(worst) {
						t.Errorf("rows %d: %s differs by %g (relative)", rows, name, worst)
					}
				}
			}
		})
	}
}

// TestConv2DStripsMatchFiniteDifferences reruns the finite-difference
// gradient checks with every convolution computed one output row at a time.
func TestConv2DStripsMatchFiniteDifferences(t *testing.T) {
	withConvStripBytes(1, func() { TestGradientsMatchFiniteDifferences(t) })
}

// TestConv2DStripShape checks the graph really is striped when forced: a
// 1-row threshold gives one product per output row.
func TestConv2DStripShape(t *testing.T) {
	b := testBackend(t)
	xt := tensors.FromShape(shapes.Make(dtypes.Float32, 1, 6, 5, 2))
	wt := tensors.FromShape(shapes.Make(dtypes.Float32, 3, 2, 3, 3))
	withConvStripBytes(1, func() {
		err := Try(func() {
			e := MustNewExec(b, func(x, w *Node) *Node {
				y := conv2DWith(x, w, nil, 3, 1, 1)
				if y.Type() != NodeTypeConcatenate {
					t.Errorf("striped conv output is %s, want a Concatenate of strips", y.Type())
				}
				if n := len(y.Inputs()); n != 6 {
					t.Errorf("%d strips, want 6", n)
				}
				return y
			})
			e.MustExec(xt, wt)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
