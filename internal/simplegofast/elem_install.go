package simplegofast

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// EnvFastElementwise switches the fast elementwise executors off when "0"
// (the fast DotGeneral stays, for comparisons).
const EnvFastElementwise = "LDM_FAST_ELEMWISE"

// elemExecs are the elementwise executors Enable installs next to the
// DotGeneral one.
var elemExecs = map[backends.OpType]nodeExecutor{
	backends.OpTypeExp:          fastExp,
	backends.OpTypeLogistic:     fastLogistic,
	backends.OpTypeErf:          fastErf,
	backends.OpTypeAdd:          fastAdd,
	backends.OpTypeSub:          fastSub,
	backends.OpTypeMul:          fastMul,
	backends.OpTypeDiv:          fastDiv,
	backends.OpTypeReduceMax:    fastReduceMax,
	backends.OpTypeReduceSum:    fastReduceSum,
	backends.OpTypeSlice:        fastSlice,
	backends.OpTypeConcatenate:  fastConcatenate,
	backends.OpTypeConvertDType: fastConvertDType,
	backends.OpTypeGather:       fastGather,
}

var (
	// elemStock holds the executors registered before ours (simplego's).
	elemStock [backends.OpTypeLast]nodeExecutor

	elemEnabled  atomic.Bool
	elemVerified bool
	elemFailed   error

	// elemCalls counts the ops computed by the fast elementwise executors.
	elemCalls atomic.Int64
)

// enableElemLocked installs the elementwise executors (mu held, the
// DotGeneral checks passed) after their self-test; a failure is logged
// once and leaves simplego's.
func enableElemLocked() {
	if os.Getenv(EnvFastElementwise) == "0" {
		disableElemLocked()
		return
	}
	if elemEnabled.Load() || elemFailed != nil {
		return
	}
	if !elemVerified {
		if err := verifyElem(); err != nil {
			elemFailed = fmt.Errorf("simplegofast: %w", err)
			slog.Warn("simplegofast: keeping GoMLX's elementwise executors", "reason", err)
			return
		}
		elemVerified = true
	}
	for op, f := range elemExecs {
		sgSetNodeExecutor(op, priorityUser, f)
	}
	for op, f := range elemExecs {
		if !sameFunc(sgNodeExecutors[op], f) {
			for op := range elemExecs {
				sgSetNodeExecutor(op, priorityUser, elemStock[op])
			}
			elemFailed = fmt.Errorf("simplegofast: simplego did not take the %s executor", op)
			slog.Warn("simplegofast: keeping GoMLX's elementwise executors", "reason", elemFailed)
			return
		}
	}
	elemEnabled.Store(true)
}

// disableElemLocked puts simplego's elementwise executors back (mu held).
func disableElemLocked() {
	if !elemEnabled.Load() {
		return
	}
	for op := range elemExecs {
		sgSetNodeExecutor(op, priorityUser, elemStock[op])
	}
	elemEnabled.Store(false)
}

// ElementwiseEnabled reports whether the fast elementwise executors are
// installed.
func ElementwiseEnabled() bool { return elemEnabled.Load() }

// verifyElem records the executors in place and compares ours with them on
// shapes covering every row pattern, unit and odd sizes, and a float64
// case (delegated).
func verifyElem() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic during the elementwise self-test: %v", r)
		}
	}()
	for op := range elemExecs {
		prev := sgNodeExecutors[op]
		if prev == nil {
			return fmt.Errorf("simplego has no %s executor registered", op)
		}
		if !sameFunc(prev, elemExecs[op]) {
			elemStock[op] = prev
		}
		if elemStock[op] == nil {
			return errors.New("the stock executors are unknown")
		}
	}
	b, err := simplego.New("")
	if err != nil {
		return fmt.Errorf("creating a simplego backend for the checks: %w", err)
	}
	defer b.Finalize()
	if err := verifySliceLayout(b); err != nil {
		return fmt.Errorf("simplego internals differ from what this package mirrors: %w", err)
	}
	if err := verifyConvert(b); err != nil {
		return err
	}
	if err := verifyGather(b); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(5, 9))
	for _, c := range elemSelfTestCases {
		if err := runElemCase(b, r, c, dtypes.Float32, false); err != nil {
			return err
		}
	}
	return runElemCase(b, r, elemSelfTestCases[1], dtypes.Float64, false)
}

// elemCase is one op on operands of the given dimensions (axes for
// reductions).
type elemCase struct {
	op       backends.OpType
	lhs, rhs []int
	axes     []int // reductions; Slice: starts; Concatenate: the axis
	limits   []int // Slice
	strides  []int // Slice
}

var elemSelfTestCases = []elemCase{
	{op: backends.OpTypeExp, lhs: []int{3, 33}},
	{op: backends.OpTypeExp, lhs: []int{7}},
	{op: backends.OpTypeLogistic, lhs: []int{5, 13}},
	{op: backends.OpTypeErf, lhs: []int{3, 43}},
	{op: backends.OpTypeAdd, lhs: []int{4, 9}, rhs: []int{4, 9}},
	{op: backends.OpTypeAdd, lhs: []int{2, 3, 4, 5}, rhs: []int{1, 1, 1, 5}},
	{op: backends.OpTypeAdd, lhs: []int{}, rhs: []int{3, 7}},
	{op: backends.OpTypeSub, lhs: []int{2, 5, 33}, rhs: []int{2, 5, 1}},
	{op: backends.OpTypeSub, lhs: []int{1, 5, 1}, rhs: []int{3, 5, 7}},
	{op: backends.OpTypeSub, lhs: []int{3, 1, 4}, rhs: []int{1, 6, 1}},
	{op: backends.OpTypeMul, lhs: []int{2, 1, 3, 8}, rhs: []int{2, 7, 1, 8}},
	{op: backends.OpTypeMul, lhs: []int{6, 4}, rhs: []int{}},
	{op: backends.OpTypeDiv, lhs: []int{4, 3, 17}, rhs: []int{4, 3, 1}},
	{op: backends.OpTypeDiv, lhs: []int{1}, rhs: []int{9}},
	{op: backends.OpTypeReduceMax, lhs: []int{4, 3, 17}, axes: []int{2}},
	{op: backends.OpTypeReduceMax, lhs: []int{4, 3, 17}, axes: []int{0, 1}},
	{op: backends.OpTypeReduceMax, lhs: []int{4, 3, 17}, axes: []int{1}},
	{op: backends.OpTypeReduceMax, lhs: []int{4, 3, 17}, axes: []int{0, 2}},
	{op: backends.OpTypeReduceSum, lhs: []int{2, 64, 4, 5}, axes: []int{1, 3}}, // GroupNorm
	{op: backends.OpTypeReduceSum, lhs: []int{3, 4, 1, 5, 6}, axes: []int{0, 3}},
	{op: backends.OpTypeReduceSum, lhs: []int{4, 3, 17}, axes: []int{2}},
	{op: backends.OpTypeReduceSum, lhs: []int{2, 1, 9, 5}, axes: []int{1, 2}},
	{op: backends.OpTypeReduceSum, lhs: []int{4, 3, 17}, axes: []int{0}},
	{op: backends.OpTypeReduceSum, lhs: []int{7, 33}, axes: []int{0, 1}},
	{op: backends.OpTypeSlice, lhs: []int{4, 9, 9, 3}, axes: []int{1, 0, 2, 0}, limits: []int{3, 8, 9, 3}, strides: []int{1, 1, 1, 1}},
	{op: backends.OpTypeSlice, lhs: []int{4, 9, 9, 3}, axes: []int{0, 1, 0, 1}, limits: []int{4, 9, 9, 3}, strides: []int{2, 2, 3, 1}},
	{op: backends.OpTypeSlice, lhs: []int{5, 7}, axes: []int{2, 3}, limits: []int{3, 4}, strides: []int{1, 1}},
	{op: backends.OpTypeSlice, lhs: []int{6, 33}, axes: []int{0, 0}, limits: []int{6, 33}, strides: []int{1, 1}},
	{op: backends.OpTypeConcatenate, lhs: []int{2, 3, 5}, rhs: []int{2, 4, 5}, axes: []int{1}},
	{op: backends.OpTypeConcatenate, lhs: []int{3, 7}, rhs: []int{1, 7}, axes: []int{0}},
	{op: backends.OpTypeConcatenate, lhs: []int{2, 2, 9}, rhs: []int{2, 2, 1}, axes: []int{2}},
}

// runElemCase builds the op on backend b, runs simplego's executor and
// ours on the same random operands, and compares: bit for bit for the
// binary ops, ReduceMax and Slice, within 2e-6 relative for Exp, Logistic
// and Erf and
// 1e-5 of Σ|x| for ReduceSum. With owned, our executor may take its
// operands (tests).
func runElemCase(b backends.Backend, r *rand.Rand, c elemCase, dtype dtypes.DType, owned bool) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("self-test %s %v %v %v: %w", c.op, c.lhs, c.rhs, c.axes, err)
		}
	}()
	bld := b.Builder("simplegofast_elem_selftest")
	shs := []shapes.Shape{shapes.Make(dtype, c.lhs...)}
	switch c.op {
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv, backends.OpTypeConcatenate:
		shs = append(shs, shapes.Make(dtype, c.rhs...))
	}
	var params []backends.Op
	for i, s := range shs {
		p, err := bld.Parameter(fmt.Sprintf("x%d", i), s, nil)
		if err != nil {
			return err
		}
		params = append(params, p)
	}
	var y backends.Op
	switch c.op {
	case backends.OpTypeExp:
		y, err = bld.Exp(params[0])
	case backends.OpTypeLogistic:
		y, err = bld.Logistic(params[0])
	case backends.OpTypeErf:
		y, err = bld.Erf(params[0])
	case backends.OpTypeAdd:
		y, err = bld.Add(params[0], params[1])
	case backends.OpTypeSub:
		y, err = bld.Sub(params[0], params[1])
	case backends.OpTypeMul:
		y, err = bld.Mul(params[0], params[1])
	case backends.OpTypeDiv:
		y, err = bld.Div(params[0], params[1])
	case backends.OpTypeReduceMax:
		y, err = bld.ReduceMax(params[0], c.axes...)
	case backends.OpTypeReduceSum:
		y, err = bld.ReduceSum(params[0], c.axes...)
	case backends.OpTypeConcatenate:
		y, err = bld.Concatenate(c.axes[0], params...)
	case backends.OpTypeSlice:
		y, err = bld.Slice(params[0], clone(c.axes), clone(c.limits), clone(c.strides))
	default:
		return fmt.Errorf("no case for %s", c.op)
	}
	if err != nil {
		return err
	}
	node := (*sgNode)(ifaceData(y))
	if node.opType != c.op {
		return fmt.Errorf("unexpected graph: %s node", node.opType)
	}
	be := (*sgBackend)(ifaceData(b))
	var stockIn, fastIn []*sgBuffer
	var sums []float64
	for _, s := range shs {
		bs, err := randBuffer(b, r, s)
		if err != nil {
			return err
		}
		bf, err := randBuffer(b, r, s) // a copy, for the fast executor to own
		if err != nil {
			return err
		}
		sb, fb := (*sgBuffer)(ifaceData(bs)), (*sgBuffer)(ifaceData(bf))
		if err := copyFlat(fb.flat, sb.flat); err != nil {
			return err
		}
		stockIn, fastIn = append(stockIn, sb), append(fastIn, fb)
		var sum float64
		for _, v := range toF64(sb.flat) {
			sum += math.Abs(v)
		}
		sums = append(sums, sum)
	}
	notOwned := make([]bool, len(shs))
	want, err := elemStock[c.op](be, node, stockIn, notOwned)
	if err != nil {
		return fmt.Errorf("stock executor: %w", err)
	}
	ownedFlags := make([]bool, len(shs))
	for i := range ownedFlags {
		ownedFlags[i] = owned
	}
	before := elemCalls.Load()
	got, err := elemExecs[c.op](be, node, fastIn, ownedFlags)
	if err != nil {
		return err
	}
	if dtype == dtypes.Float32 {
		if elemCalls.Load() == before {
			return errors.New("fast path not taken")
		}
	}
	if !got.shape.Equal(want.shape) {
		return fmt.Errorf("shape %s, stock %s", got.shape, want.shape)
	}
	g, w := toF64(got.flat), toF64(want.flat)
	if g == nil || len(g) != len(w) {
		return fmt.Errorf("results of %T and %T", got.flat, want.flat)
	}
	for i := range w {
		var tol float64
		switch c.op {
		case backends.OpTypeExp, backends.OpTypeLogistic, backends.OpTypeErf:
			tol = 2e-6 * math.Abs(w[i])
		case backends.OpTypeReduceSum:
			tol = 1e-5 * sums[0]
		}
		if d := math.Abs(g[i] - w[i]); !(d <= tol) {
			return fmt.Errorf("element %d: %g, stock %g", i, g[i], w[i])
		}
	}
	return nil
}

func copyFlat(dst, src any) error {
	switch d := dst.(type) {
	case []float32:
		copy(d, src.([]float32))
	case []float64:
		copy(d, src.([]float64))
	default:
		return fmt.Errorf("dtype %T", dst)
	}
	return nil
}
