package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestGoBackendIsWrapped(t *testing.T) {
	b := testBackend(t)
	if _, ok := b.(*goBackend); !ok {
		t.Fatalf("NewBackend(\"go\") returned %T, want the wrapped backend", b)
	}
	if !IsGo(b) {
		t.Error("IsGo(wrapped go backend) = false")
	}
	if raw, err := newConfig("go"); err != nil || !IsGo(raw) {
		t.Errorf("IsGo(unwrapped simplego) = false (err %v)", err)
	}
	c := b.Capabilities()
	if !c.Operations[backends.OpTypePad] || !c.Operations[backends.OpTypeReverse] {
		t.Error("capabilities lack Pad or Reverse")
	}
}

// padRef pads x (dims) per axis with fill, following XLA's Pad semantics.
func padRef(x []float64, dims []int, cfg []backends.PadAxis, fill float64) ([]float64, []int, []int) {
	rank := len(dims)
	out := make([]int, rank)
	for a := range rank {
		c := cfg[a]
		out[a] = c.Start + c.End + dims[a] + max(dims[a]-1, 0)*c.Interior
	}
	size := 1
	for _, d := range out {
		size *= d
	}
	y := make([]float64, size)
	for i := range y {
		y[i] = fill
	}
	src := make([]int, len(x)) // flat output index of each input element, or -1
	idx := make([]int, rank)
	for i := range x {
		rem := i
		for a := rank - 1; a >= 0; a-- {
			idx[a] = rem % dims[a]
			rem /= dims[a]
		}
		o, ok := 0, true
		for a := range rank {
			p := cfg[a].Start + idx[a]*(cfg[a].Interior+1)
			if p < 0 || p >= out[a] {
				ok = false
			}
			o = o*out[a] + p
		}
		if ok {
			y[o] = x[i]
			src[i] = o
		} else {
			src[i] = -1
		}
	}
	return y, out, src
}

func TestPadForwardAndGradient(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(11, 12))
	dims := []int{2, 3, 4}
	for _, cfg := range [][]backends.PadAxis{
		{{Start: 1, End: 2}, {}, {Start: 0, End: 3}},
		{{}, {Start: 1, End: 1, Interior: 2}, {Interior: 1}},
		{{Start: -1, End: 1}, {Start: 2, End: -1, Interior: 1}, {Start: -2, End: -1}},
	} {
		x := make([]float64, 2*3*4)
		for i := range x {
			x[i] = r.NormFloat64()
		}
		const fill = 0.5
		want, outDims, src := padRef(x, dims, cfg, fill)
		w := make([]float64, len(want))
		for i := range w {
			w[i] = r.NormFloat64()
		}
		var got, gx []float64
		var gFill float64
		err := Try(func() {
			e := MustNewExec(b, func(x, f *Node) []*Node {
				y := Pad(x, f, cfg...)
				loss := ReduceAllSum(Mul(y, Const(x.Graph(), tensors.FromFlatDataAndDimensions(w, outDims...))))
				gr := Gradient(loss, x, f)
				return []*Node{y, gr[0], gr[1]}
			})
			res := e.MustExec(tensors.FromFlatDataAndDimensions(x, dims...), fill)
			got, gx, gFill = flat64(res[0]), flat64(res[1]), flat64(res[2])[0]
		})
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		assertClose64(t, got, want, 0)
		wantGx := make([]float64, len(x))
		wantFill := 0.0
		for _, v := range w {
			wantFill += v
		}
		for i, o := range src {
			if o >= 0 {
				wantGx[i] = w[o]
				wantFill -= w[o]
			}
		}
		assertClose64(t, gx, wantGx, 0)
		if math.Abs(gFill-wantFill) > 1e-9 {
			t.Errorf("%+v: fill gradient %g, want %g", cfg, gFill, wantFill)
		}
	}
}

func TestReverseForwardAndGradient(t *testing.T) {
	b := testBackend(t)
	var y, gx []float64
	err := Try(func() {
		e := MustNewExec(b, func(x *Node) []*Node {
			y := Reverse(x, 0, 2)
			w := Iota(x.Graph(), shapes.Make(dtypes.Float64, 2, 2, 3), 2) // weights 0,1,2 on the last axis
			return []*Node{y, Gradient(ReduceAllSum(Mul(y, w)), x)[0]}
		})
		res := e.MustExec(tensors.FromFlatDataAndDimensions([]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 2, 2, 3))
		y, gx = flat64(res[0]), flat64(res[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	assertClose64(t, y, []float64{8, 7, 6, 11, 10, 9, 2, 1, 0, 5, 4, 3}, 0)
	assertClose64(t, gx, []float64{2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0}, 0)
}

// TestNativeConvolveOnGoBackend runs GoMLX's own Convolve (with and without
// strides set) forward and backward on the wrapped backend and compares it
// with Conv2D (im2col).
func TestNativeConvolveOnGoBackend(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		name       string
		k, stride  int
		setStrides bool
		pad, h, w  int
		cin, cout  int
		batch      int
	}{
		{name: "3x3 no strides set", k: 3, stride: 1, pad: 1, h: 5, w: 6, cin: 3, cout: 4, batch: 2},
		{name: "3x3 stride 1", k: 3, stride: 1, setStrides: true, pad: 1, h: 5, w: 6, cin: 3, cout: 4, batch: 2},
		{name: "3x3 stride 2", k: 3, stride: 2, setStrides: true, pad: 1, h: 7, w: 6, cin: 3, cout: 2, batch: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xt := randTensor(r, dtypes.Float32, []int{tc.batch, tc.h, tc.w, tc.cin})
			wt := randTensor(r, dtypes.Float32, []int{tc.cout, tc.cin, tc.k, tc.k})
			both := func(native bool) (out [][]float64) {
				err := Try(func() {
					e := MustNewExec(b, func(x, w *Node) []*Node {
						var y *Node
						if native {
							c := Convolve(x, TransposeAllAxes(w, 2, 3, 1, 0)).PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}})
							if tc.setStrides {
								c = c.Strides(tc.stride)
							}
							y = c.Done()
						} else {
							y = conv2DWith(x, w, nil, tc.k, tc.stride, tc.pad)
						}
						g := Gradient(ReduceAllSum(Mul(y, y)), x, w)
						return []*Node{y, g[0], g[1]}
					})
					for _, res := range e.MustExec(xt, wt) {
						out = append(out, flat64(res))
					}
				})
				if err != nil {
					t.Fatalf("native=%v: %v", native, err)
				}
				return out
			}
			nat, im := both(true), both(false)
			for i, name := range []string{"output", "input gradient", "kernel gradient"} {
				worst := 0.0
				sc := scale(im[i])
				for j := range im[i] {
					worst = max(worst, math.Abs(nat[i][j]-im[i][j])/sc)
				}
				if worst > 1e-5 {
					t.Errorf("%s: native and im2col differ by %g (relative)", name, worst)
				}
			}
		})
	}
}

func assertClose64(t *testing.T, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > tol || math.IsNaN(d) {
			t.Fatalf("index %d: got %g, want %g", i, got[i], want[i])
		}
	}
}
