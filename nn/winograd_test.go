package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
)

// withWinograd runs fn with the Winograd threshold set to minChannels (0: off).
func withWinograd(minChannels int, fn func()) {
	prev := convWinogradMinChannels
	convWinogradMinChannels = minChannels
	defer func() { convWinogradMinChannels = prev }()
	fn()
}

// TestConv2DWinogradMatchesIm2col compares the Winograd F(2×2,3×3) path
// with im2col on random shapes (odd and even sizes, padding 0 and 1, batch
// 1 and 2, bias or none, one strip or several): the output and the
// gradients of input, weight and bias agree to float32 rounding.
func TestConv2DWinogradMatchesIm2col(t *testing.T) {
	be := testBackend(t)
	r := rand.New(rand.NewPCG(41, 42))
	for n := range 12 {
		batch, pad := 1+r.IntN(2), r.IntN(2)
		h, w := 3+r.IntN(12), 3+r.IntN(12)
		cin, cout := 1+r.IntN(20), 1+r.IntN(20)
		hasBias, strip := r.IntN(2) == 0, n%4 == 3
		xt := randTensor(r, dtypes.Float32, []int{batch, h, w, cin})
		wt := randTensor(r, dtypes.Float32, []int{cout, cin, 3, 3})
		bt := randTensor(r, dtypes.Float32, []int{cout})
		wo := w + 2*pad - 2
		eval := func() (out [][]float64) {
			err := Try(func() {
				e := MustNewExec(be, func(x, w, bias *Node) []*Node {
					if !hasBias {
						bias = nil
					}
					y := conv2DWith(x, w, bias, 3, 1, pad)
					wgt := Add(Sin(Iota(x.Graph(), y.Shape(), 1)), Cos(Iota(x.Graph(), y.Shape(), 2)))
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
		var want, got [][]float64
		withWinograd(0, func() { want = eval() })
		stripBytes := math.MaxInt
		if strip { // three output rows per strip: odd strips, Winograd rounds them up
			stripBytes = 3 * batch * wo * 9 * cin * 4
		}
		withConvStripBytes(stripBytes, func() { withWinograd(1, func() { got = eval() }) })
		for i, name := range []string{"output", "input gradient", "weight gradient", "bias gradient"}[:len(want)] {
			if len(got[i]) != len(want[i]) {
				t.Fatalf("case %d: %s has %d values, want %d", n, name, len(got[i]), len(want[i]))
			}
			worst, sc := 0.0, scale(want[i])
			for j := range want[i] {
				worst = max(worst, math.Abs(got[i][j]-want[i][j])/sc)
			}
			if worst > 1e-5 || math.IsNaN(worst) {
				t.Errorf("case %d [%d,%d,%d,%d]→%d pad %d strip %v: %s differs from im2col by %g (relative)",
					n, batch, h, w, cin, cout, pad, strip, name, worst)
			}
		}
	}
}

// TestConv2DWinogradIsUsed checks the threshold really switches the graph:
// with Winograd on, a 3×3 stride-1 convolution holds no 9-way Concatenate.
func TestConv2DWinogradIsUsed(t *testing.T) {
	be := testBackend(t)
	r := rand.New(rand.NewPCG(43, 44))
	xt := randTensor(r, dtypes.Float32, []int{1, 6, 6, 4})
	wt := randTensor(r, dtypes.Float32, []int{4, 4, 3, 3})
	for _, on := range []bool{false, true} {
		var dots int
		err := Try(func() {
			withWinograd(map[bool]int{false: 0, true: 1}[on], func() {
				e := MustNewExec(be, func(x, w *Node) *Node {
					y := conv2DWith(x, w, nil, 3, 1, 1)
					for _, nd := range x.Graph().Nodes() {
						if nd.Type() == NodeTypeDotGeneral {
							dots++
						}
					}
					return y
				})
				e.MustExec(xt, wt)[0].FinalizeAll()
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]int{false: 1, true: 17}[on] // im2col: one product; Winograd: 16 and the weight transform
		if dots != want {
			t.Errorf("winograd %v: %d DotGeneral nodes, want %d", on, dots, want)
		}
	}
}
