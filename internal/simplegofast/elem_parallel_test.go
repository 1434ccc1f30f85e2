package simplegofast_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// TestElementwiseOpsParallel runs a graph of independent branches (softmax,
// GELU, SiLU, GroupNorm-like reductions, slices) with simplego executing
// ops concurrently, with the fast executors and without, and compares.
// Run it with -race too.
func TestElementwiseOpsParallel(t *testing.T) {
	if err := simplegofast.Enable(); err != nil {
		t.Fatal(err)
	}
	be, err := simplego.New("ops_parallel")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Finalize()
	r := rand.New(rand.NewPCG(3, 3))
	x := randTensor(r, 2, 4, 64, 65)
	fn := func(x *Node) *Node {
		var outs []*Node
		for i := range 6 {
			y := MulScalar(x, float64(i+1)/3)
			switch i % 3 {
			case 0:
				y = Softmax(y, -1)
			case 1:
				y = Mul(y, Logistic(y))
				y = Add(y, Erf(y))
			case 2:
				g := Reshape(y, 2, 4*64, 5, 13)
				m := ReduceAndKeep(g, ReduceMean, 1, 3)
				c := Sub(g, m)
				v := ReduceAndKeep(Mul(c, c), ReduceMax, 1, 3)
				y = Reshape(Div(c, AddScalar(v, 1)), 2, 4, 64, 65)
			}
			outs = append(outs, ReduceSum(Slice(y, AxisRange(), AxisRange(1, 3), AxisRange(0, 60).Stride(2)), -1))
		}
		return Concatenate(outs, 0)
	}
	run := func() *tensors.Tensor {
		e := MustNewExec(be, fn)
		var last *tensors.Tensor
		for range 20 {
			last = e.MustExec(x)[0]
		}
		return last
	}
	t.Setenv(simplegofast.EnvFastElementwise, "0")
	if err := simplegofast.Enable(); err != nil {
		t.Fatal(err)
	}
	n0 := simplegofast.ElemCalls()
	stock := run()
	if n := simplegofast.ElemCalls(); n != n0 {
		t.Fatalf("%d ops went to the fast executors with them disabled", n-n0)
	}
	t.Setenv(simplegofast.EnvFastElementwise, "")
	if err := simplegofast.Enable(); err != nil || !simplegofast.ElementwiseEnabled() {
		t.Fatal("elementwise executors not enabled", err)
	}
	n0 = simplegofast.ElemCalls()
	fast := run()
	if simplegofast.ElemCalls() == n0 {
		t.Fatal("no op went to the fast executors")
	}
	s, f := stock.Value().([][][]float32), fast.Value().([][][]float32)
	for i := range s {
		for j := range s[i] {
			for k := range s[i][j] {
				d := s[i][j][k] - f[i][j][k]
				if d < 0 {
					d = -d
				}
				if d > 1e-4*(1+abs(s[i][j][k])) {
					t.Fatalf("[%d,%d,%d]: fast %g, stock %g", i, j, k, f[i][j][k], s[i][j][k])
				}
			}
		}
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
