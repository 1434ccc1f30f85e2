package simplegofast

import (
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/ldm-project/ldm/internal/gemm"
)

var (
	// stockExec is the DotGeneral executor that was registered before ours
	// (simplego's execDotGeneral): everything but float32 goes there.
	stockExec nodeExecutor

	// dotDataType is the verified dynamic type of a DotGeneral node's data.
	dotDataType reflect.Type

	runtimeErrOnce sync.Once

	// fastCalls counts the products done by internal/gemm (tests).
	fastCalls atomic.Int64
)

// fastDotGeneral is the DotGeneral executor: float32 products go to
// internal/gemm, anything else (and anything unexpected) to stockExec.
func fastDotGeneral(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool) (*sgBuffer, error) {
	out, ok, err := tryFast(backend, node, inputs)
	if ok {
		return out, nil
	}
	if err != nil {
		runtimeErrOnce.Do(func() {
			slog.Warn("simplegofast: fast DotGeneral failed, using GoMLX's for this product", "error", err)
		})
	}
	return stockExec(backend, node, inputs, inputsOwned)
}

// tryFast computes the product with internal/gemm when it can; ok is false
// when the stock executor must do it (err says why if it is a failure
// rather than a case left to it on purpose).
func tryFast(backend *sgBackend, node *sgNode, inputs []*sgBuffer) (out *sgBuffer, ok bool, err error) {
	if len(inputs) != 2 || inputs[0] == nil || inputs[1] == nil || node.data == nil ||
		reflect.TypeOf(node.data) != dotDataType || node.shape.DType != dtypes.Float32 {
		return nil, false, nil
	}
	lhs, rhs := inputs[0], inputs[1]
	if lhs.shape.DType != dtypes.Float32 || rhs.shape.DType != dtypes.Float32 {
		return nil, false, nil
	}
	lhsFlat, ok1 := lhs.flat.([]float32)
	rhsFlat, ok2 := rhs.flat.([]float32)
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	params := (*dotGeneralNodeData)(ifaceData(node.data))
	pl, err := plan(lhs.shape, rhs.shape, params)
	if err != nil {
		return nil, false, err
	}
	if want := shapes.Make(dtypes.Float32, pl.batch, pl.m, pl.n); !node.shape.Equal(want) {
		return nil, false, fmt.Errorf("node shape %s, expected %s", node.shape, want)
	}
	pl.a.Data, pl.b.Data = lhsFlat, rhsFlat
	out = sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false, fmt.Errorf("no output buffer (backend finalized?)")
	}
	c, okc := out.flat.([]float32)
	if !okc || len(c) != pl.batch*pl.m*pl.n {
		return nil, false, fmt.Errorf("output buffer of %T[%d] for %s", out.flat, len(c), node.shape)
	}
	if err := gemm.BatchedMul(pl.batch, pl.m, pl.n, pl.k, pl.a, pl.b, c); err != nil {
		return nil, false, err
	}
	fastCalls.Add(1)
	return out, true, nil
}

// product is a DotGeneral expressed as a batched matrix product of gemm
// operands (Data left unset).
type product struct {
	batch, m, n, k int
	a, b           gemm.Operand
}

// plan maps a DotGeneral onto gemm operands the way simplego normalises it:
// the batch index runs over the batch axes in the order given, the cross
// index over the remaining axes in increasing order, the contracted index
// over the contracting axes in the order given (lhs and rhs pairwise).
// Every axis layout is expressed with strides, or offset tables for axes
// that don't merge into one stride; nothing is transposed in memory.
func plan(lhsShape, rhsShape shapes.Shape, p *dotGeneralNodeData) (pl product, err error) {
	if len(p.lhsContractingAxes) != len(p.rhsContractingAxes) || len(p.lhsBatchAxes) != len(p.rhsBatchAxes) {
		return pl, fmt.Errorf("mismatched axes %v/%v, %v/%v", p.lhsContractingAxes, p.rhsContractingAxes, p.lhsBatchAxes, p.rhsBatchAxes)
	}
	lb, lc, lx, err := split(lhsShape, p.lhsBatchAxes, p.lhsContractingAxes)
	if err != nil {
		return pl, fmt.Errorf("lhs %s: %w", lhsShape, err)
	}
	rb, rc, rx, err := split(rhsShape, p.rhsBatchAxes, p.rhsContractingAxes)
	if err != nil {
		return pl, fmt.Errorf("rhs %s: %w", rhsShape, err)
	}
	for i := range lb.dims {
		if lb.dims[i] != rb.dims[i] {
			return pl, fmt.Errorf("batch dimensions %v and %v differ", lb.dims, rb.dims)
		}
	}
	for i := range lc.dims {
		if lc.dims[i] != rc.dims[i] {
			return pl, fmt.Errorf("contracting dimensions %v and %v differ", lc.dims, rc.dims)
		}
	}
	pl.batch, pl.k, pl.m, pl.n = lb.size(), lc.size(), lx.size(), rx.size()
	lc, rc = contractionOrder(lc, rc, lx, rx, pl.m, pl.n)
	if pl.batch != p.batchSize || pl.k != p.contractingSize || pl.m != p.lhsCrossSize || pl.n != p.rhsCrossSize {
		return pl, fmt.Errorf("sizes batch=%d k=%d m=%d n=%d disagree with the node's %d, %d, %d, %d",
			pl.batch, pl.k, pl.m, pl.n, p.batchSize, p.contractingSize, p.lhsCrossSize, p.rhsCrossSize)
	}
	pl.a = gemm.Operand{Batch: lb.axis(), Rows: lx.axis(), Cols: lc.axis()}
	pl.b = gemm.Operand{Batch: rb.axis(), Rows: rc.axis(), Cols: rx.axis()}
	return pl, nil
}

// contractionOrder reorders the contracted axis pairs (any common order
// gives the same product) to make packing cheap: the candidates are the
// given order and the orders that make lhs's or rhs's contracted axes run
// through memory in order; the estimate counts values packed, weighted by
// how they are gathered.
func contractionOrder(lc, rc, lx, rx axes, m, n int) (axes, axes) {
	if len(lc.dims) < 2 {
		return lc, rc
	}
	cost := func(lc, rc axes) float64 {
		k := float64(lc.size())
		ak, bk := lc.axis(), rc.axis()
		am, bn := lx.axis(), rx.axis()
		var a, b float64
		switch {
		case ak.Offsets == nil && ak.Stride == 1 && am.Offsets == nil:
			a = 0 // read in place
		case ak.Offsets == nil && am.Offsets == nil:
			a = 1
		default:
			a = 2
		}
		switch {
		case bk.Offsets == nil && bk.Stride == 1 && bn.Offsets == nil:
			b = 0.5 // transposed panels, packed with in-register transposes
		case bn.Offsets == nil && bn.Stride == 1 && bk.Offsets == nil:
			b = 1
		default:
			b = 2
		}
		return a*float64(m)*k + b*k*float64(n)
	}
	best, bestL, bestR := cost(lc, rc), lc, rc
	for _, byLhs := range []bool{true, false} {
		perm := make([]int, len(lc.dims))
		for i := range perm {
			perm[i] = i
		}
		key := rc.strides
		if byLhs {
			key = lc.strides
		}
		slices.SortStableFunc(perm, func(i, j int) int { return key[j] - key[i] })
		l, r := lc.permute(perm), rc.permute(perm)
		if c := cost(l, r); c < best {
			best, bestL, bestR = c, l, r
		}
	}
	return bestL, bestR
}

func (g axes) permute(perm []int) axes {
	out := axes{dims: make([]int, len(perm)), strides: make([]int, len(perm))}
	for i, p := range perm {
		out.dims[i], out.strides[i] = g.dims[p], g.strides[p]
	}
	return out
}

// axes is a group of axes of a row-major tensor flattened into one index
// (the first one slowest).
type axes struct{ dims, strides []int }

func (g axes) size() int {
	n := 1
	for _, d := range g.dims {
		n *= d
	}
	return n
}

// axis expresses the flattened index as a stride when the axes merge, and
// as an offset table otherwise.
func (g axes) axis() gemm.Axis {
	var dims, strides []int
	for i, d := range g.dims {
		if d != 1 {
			dims = append(dims, d)
			strides = append(strides, g.strides[i])
		}
	}
	if len(dims) == 0 {
		return gemm.Axis{}
	}
	affine := true
	for i := 0; i+1 < len(dims); i++ {
		if strides[i] != dims[i+1]*strides[i+1] {
			affine = false
			break
		}
	}
	if affine {
		return gemm.Axis{Stride: strides[len(strides)-1]}
	}
	offs := []int{0}
	for i, d := range dims {
		next := make([]int, 0, len(offs)*d)
		for _, o := range offs {
			for j := range d {
				next = append(next, o+j*strides[i])
			}
		}
		offs = next
	}
	return gemm.Axis{Offsets: offs}
}

// split sorts the axes of shape into batch (given order), contracting
// (given order) and cross (increasing order) groups, with row-major strides.
func split(shape shapes.Shape, batch, contracting []int) (b, c, x axes, err error) {
	rank := shape.Rank()
	strides := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		strides[a] = s
		s *= shape.Dimensions[a]
	}
	used := make([]bool, rank)
	take := func(list []int) (g axes, err error) {
		for _, a := range list {
			if a < 0 || a >= rank || used[a] {
				return g, fmt.Errorf("bad or repeated axis %d in %v", a, list)
			}
			used[a] = true
			g.dims = append(g.dims, shape.Dimensions[a])
			g.strides = append(g.strides, strides[a])
		}
		return g, nil
	}
	if b, err = take(batch); err != nil {
		return
	}
	if c, err = take(contracting); err != nil {
		return
	}
	for a := range rank {
		if !used[a] {
			x.dims = append(x.dims, shape.Dimensions[a])
			x.strides = append(x.strides, strides[a])
		}
	}
	return
}
