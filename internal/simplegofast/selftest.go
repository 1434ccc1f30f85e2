package simplegofast

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// dotCase is one DotGeneral: operand dimensions and axes.
type dotCase struct {
	lhs                []int
	lhsContr, lhsBatch []int
	rhs                []int
	rhsContr, rhsBatch []int
}

// selfTestCases cover the layouts the U-Net, VAE and text encoder graphs
// and their gradients produce, plus odd ones.
var selfTestCases = []dotCase{
	{[]int{7, 13}, []int{1}, nil, []int{13, 5}, []int{0}, nil},                             // plain
	{[]int{13, 7}, []int{0}, nil, []int{5, 13}, []int{1}, nil},                             // both transposed
	{[]int{2, 9, 3, 4}, []int{3}, []int{0, 2}, []int{2, 11, 3, 4}, []int{3}, []int{0, 2}},  // attention scores
	{[]int{2, 3, 9, 11}, []int{3}, []int{0, 1}, []int{2, 11, 3, 4}, []int{1}, []int{0, 2}}, // attention values
	{[]int{10, 3, 3, 4}, []int{1, 2, 3}, nil, []int{6, 4, 3, 3}, []int{2, 3, 1}, nil},      // im2col conv
	{[]int{3, 5, 2, 4}, []int{3}, []int{2, 0}, []int{2, 4, 3, 6}, []int{1}, []int{0, 2}},   // batch axes reordered
	{[]int{2, 70, 300}, []int{2}, []int{0}, []int{2, 300, 40}, []int{1}, []int{0}},         // two k blocks, edges
	{[]int{40, 5, 2}, []int{0, 2}, nil, []int{2, 40, 17}, []int{1, 0}, nil},                // weight gradient-like
	{[]int{1}, []int{0}, nil, []int{1}, []int{0}, nil},                                     // 1·1
	{[]int{4, 1, 6}, []int{2}, []int{1}, []int{1, 6, 3, 2}, []int{1}, []int{0}},            // unit batch
	{[]int{145, 20}, []int{1}, nil, []int{33, 20}, []int{1}, nil},                          // Linear, x·wᵀ
	{[]int{2, 3, 4, 5}, []int{1, 3}, []int{2}, []int{5, 4, 7, 3}, []int{3, 0}, []int{1}},   // scattered axes
}

// selfTest runs every case through the stock executor and the fast one on
// backend b, and requires agreement within 1e-4 relative (float32), and
// the same result for a float64 case (delegated).
func selfTest(b backends.Backend) error {
	r := rand.New(rand.NewPCG(7, 11))
	for i, c := range selfTestCases {
		if err := runCase(b, r, c, dtypes.Float32); err != nil {
			return fmt.Errorf("self-test case %d (%v·%v): %w", i, c.lhs, c.rhs, err)
		}
	}
	if err := runCase(b, r, selfTestCases[2], dtypes.Float64); err != nil {
		return fmt.Errorf("self-test float64 case: %w", err)
	}
	return nil
}

func runCase(b backends.Backend, r *rand.Rand, c dotCase, dtype dtypes.DType) error {
	bld := b.Builder("simplegofast_selftest")
	ls, rs := shapes.Make(dtype, c.lhs...), shapes.Make(dtype, c.rhs...)
	lp, err := bld.Parameter("lhs", ls, nil)
	if err != nil {
		return err
	}
	rp, err := bld.Parameter("rhs", rs, nil)
	if err != nil {
		return err
	}
	y, err := bld.DotGeneral(lp, clone(c.lhsContr), clone(c.lhsBatch), rp, clone(c.rhsContr), clone(c.rhsBatch))
	if err != nil {
		return err
	}
	node := (*sgNode)(ifaceData(y))
	if node.opType != backends.OpTypeDotGeneral {
		if len(node.inputs) != 1 {
			return fmt.Errorf("unexpected graph: %s node", node.opType)
		}
		node = node.inputs[0]
	}
	if node.opType != backends.OpTypeDotGeneral {
		return fmt.Errorf("unexpected graph: %s node", node.opType)
	}
	lb, err := randBuffer(b, r, ls)
	if err != nil {
		return err
	}
	rb, err := randBuffer(b, r, rs)
	if err != nil {
		return err
	}
	be := (*sgBackend)(ifaceData(b))
	inputs := []*sgBuffer{(*sgBuffer)(ifaceData(lb)), (*sgBuffer)(ifaceData(rb))}
	want, err := stockExec(be, node, inputs, []bool{false, false})
	if err != nil {
		return fmt.Errorf("stock executor: %w", err)
	}
	var got *sgBuffer
	if dtype == dtypes.Float32 {
		var ok bool
		got, ok, err = tryFast(be, node, inputs)
		if !ok {
			return fmt.Errorf("fast path not taken: %v", err)
		}
	} else {
		got, err = fastDotGeneral(be, node, inputs, []bool{false, false})
		if err != nil {
			return err
		}
	}
	if !got.shape.Equal(want.shape) {
		return fmt.Errorf("shape %s, stock %s", got.shape, want.shape)
	}
	return compareFlat(got.flat, want.flat)
}

func clone(s []int) []int { return append([]int(nil), s...) }

func randBuffer(b backends.Backend, r *rand.Rand, s shapes.Shape) (backends.Buffer, error) {
	switch s.DType {
	case dtypes.Float32:
		d := make([]float32, s.Size())
		for i := range d {
			d[i] = float32(r.NormFloat64())
		}
		return b.BufferFromFlatData(0, d, s)
	case dtypes.Float64:
		d := make([]float64, s.Size())
		for i := range d {
			d[i] = r.NormFloat64()
		}
		return b.BufferFromFlatData(0, d, s)
	}
	return nil, fmt.Errorf("dtype %s", s.DType)
}

// compareFlat requires |got-want| ≤ 1e-4·max(1, max|want|) everywhere.
func compareFlat(got, want any) error {
	g, w := toF64(got), toF64(want)
	if g == nil || w == nil || len(g) != len(w) {
		return fmt.Errorf("results of %T and %T", got, want)
	}
	scale := 1.0
	for _, v := range w {
		scale = max(scale, math.Abs(v))
	}
	for i := range w {
		if d := math.Abs(g[i] - w[i]); !(d <= 1e-4*scale) {
			return fmt.Errorf("element %d: %g, stock %g", i, g[i], w[i])
		}
	}
	return nil
}

func toF64(x any) []float64 {
	switch v := x.(type) {
	case []float32:
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return out
	case []float64:
		return v
	}
	return nil
}
