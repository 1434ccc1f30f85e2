package simplegofast

import (
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Fast float32 executors for the elementwise ops and reductions that
// dominate the U-Net after the products (the attention softmax above all:
// ReduceMax, Sub, Exp, ReduceSum, Div over [batch·heads, q, k] scores).
//
// simplego's own executors walk broadcasts with a per-element iterator and
// call math.Exp in float64; these split a broadcast into rows with a fixed
// pattern (both operands contiguous, or one of them constant along the
// row), compute rows with tight loops, exp with an AVX2/FMA kernel
// (expf.go: ≤ 1 ulp from float32(math.Exp(float64(x))) in the tests), and
// spread large tensors over GOMAXPROCS goroutines. They follow simplego's
// buffer conventions (an owned input of the output's shape is reused and
// its slot set to nil) and hand everything they don't handle (other dtypes,
// reductions over non-adjacent axes, anything unexpected) to the executor
// registered before them.

// binKind is the arithmetic of a binary executor.
type binKind int

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
)

const f32 = dtypes.Float32

// unaryExec runs f over the float32 operand into the output buffer (the
// operand itself when owned); ok false leaves inputs untouched.
func unaryExec(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool, f func(dst, src []float32)) (*sgBuffer, bool) {
	if len(inputs) != 1 || len(inputsOwned) != 1 || inputs[0] == nil || node.shape.DType != f32 {
		return nil, false
	}
	in := inputs[0]
	x, ok := in.flat.([]float32)
	if !ok || in.shape.DType != f32 || len(x) != in.shape.Size() || !in.shape.Equal(node.shape) {
		return nil, false
	}
	out := in
	if !inputsOwned[0] {
		if out = sgGetBufferForShape(backend, node.shape); out == nil {
			return nil, false
		}
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != len(x) {
		return nil, false
	}
	const block = 1024
	parallelFor((len(x)+block-1)/block, block*4, func(lo, hi int) {
		lo, hi = lo*block, min(hi*block, len(x))
		f(y[lo:hi], x[lo:hi])
	})
	if inputsOwned[0] {
		inputs[0] = nil
	}
	return out, true
}

// logisticFloat32 sets dst[i] = 1/(1+exp(-x)) as simplego does: with
// e = exp(−|x|) (which never overflows), 1/(1+e) for x ≥ 0 and e/(1+e)
// below; branch-free (the sign of x is random in activations). dst may be
// src.
func logisticFloat32(dst, src []float32) {
	const one = 0x3f800000
	var e [256]float32
	for len(dst) > 0 {
		n := min(len(dst), len(e))
		x, y, t := src[:n], dst[:n], e[:n]
		for i, v := range x {
			t[i] = math.Float32frombits(math.Float32bits(v) | 1<<31)
		}
		expFloat32(t, t)
		for i, v := range x {
			neg := uint32(int32(math.Float32bits(v)) >> 31) // all ones when the sign is set
			eb := math.Float32bits(t[i])
			num := math.Float32frombits(one ^ ((one ^ eb) & neg))
			y[i] = num / (1 + t[i])
		}
		dst, src = dst[n:], src[n:]
	}
}

// bcastStrides gives the strides of operand shape s over the output
// dimensions (0 along broadcast axes), or ok false if s does not broadcast
// to out the way simplego's binary ops allow (same rank, or size 1).
func bcastStrides(s, out shapes.Shape) (strides []int, ok bool) {
	rank := out.Rank()
	strides = make([]int, rank)
	if s.Size() == 1 {
		return strides, true
	}
	if s.Rank() != rank {
		return nil, false
	}
	st := 1
	for a := rank - 1; a >= 0; a-- {
		d := s.Dimensions[a]
		switch {
		case d == out.Dimensions[a] && d != 1:
			strides[a] = st
		case d == 1 || d == out.Dimensions[a]:
		default:
			return nil, false
		}
		st *= d
	}
	return strides, true
}

// binaryExec computes lhs (kind) rhs with broadcasting.
func binaryExec(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool, kind binKind) (*sgBuffer, bool) {
	if len(inputs) != 2 || len(inputsOwned) != 2 || inputs[0] == nil || inputs[1] == nil || node.shape.DType != f32 {
		return nil, false
	}
	lhs, rhs := inputs[0], inputs[1]
	a, ok1 := lhs.flat.([]float32)
	b, ok2 := rhs.flat.([]float32)
	if !ok1 || !ok2 || lhs.shape.DType != f32 || rhs.shape.DType != f32 ||
		len(a) != lhs.shape.Size() || len(b) != rhs.shape.Size() {
		return nil, false
	}
	outShape := node.shape
	ls, okl := bcastStrides(lhs.shape, outShape)
	rs, okr := bcastStrides(rhs.shape, outShape)
	if !okl || !okr {
		return nil, false
	}
	// Merge axes (dropping unit ones) while both operands stay affine.
	type ax struct{ d, ls, rs int }
	var m []ax
	for i, d := range outShape.Dimensions {
		if d == 1 {
			continue
		}
		if k := len(m) - 1; k >= 0 && m[k].ls == ls[i]*d && m[k].rs == rs[i]*d {
			m[k] = ax{m[k].d * d, ls[i], rs[i]}
			continue
		}
		m = append(m, ax{d, ls[i], rs[i]})
	}
	if len(m) == 0 {
		m = append(m, ax{1, 0, 0})
	}
	inner := m[len(m)-1]
	outer := m[:len(m)-1]
	rows := 1
	for _, o := range outer {
		rows *= o.d
	}
	if rows*inner.d != outShape.Size() {
		return nil, false
	}

	var out *sgBuffer
	taken := -1
	switch {
	case inputsOwned[1] && rhs.shape.Equal(outShape):
		out, taken = rhs, 1
	case inputsOwned[0] && lhs.shape.Equal(outShape):
		out, taken = lhs, 0
	default:
		if out = sgGetBufferForShape(backend, outShape); out == nil {
			return nil, false
		}
	}
	c, ok := out.flat.([]float32)
	if !ok || len(c) != outShape.Size() {
		return nil, false
	}
	n := inner.d
	parallelFor(rows, n, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			la, rb, r := 0, 0, row
			for k := len(outer) - 1; k >= 0; k-- {
				i := r % outer[k].d
				r /= outer[k].d
				la += i * outer[k].ls
				rb += i * outer[k].rs
			}
			binRow(kind, c[row*n:(row+1)*n], a[la:], b[rb:], inner.ls, inner.rs)
		}
	})
	if taken >= 0 {
		inputs[taken] = nil
	}
	return out, true
}

// binRow sets dst[i] = a[i·as] (kind) b[i·bs], as and bs 0 or 1.
func binRow(kind binKind, dst, a, b []float32, as, bs int) {
	n := len(dst)
	switch {
	case as == 1 && bs == 1:
		a, b = a[:n], b[:n]
		switch kind {
		case binAdd:
			for i := range dst {
				dst[i] = a[i] + b[i]
			}
		case binSub:
			for i := range dst {
				dst[i] = a[i] - b[i]
			}
		case binMul:
			for i := range dst {
				dst[i] = a[i] * b[i]
			}
		case binDiv:
			divVV(dst, a, b)
		}
	case as == 1:
		a, v := a[:n], b[0]
		switch kind {
		case binAdd:
			for i := range dst {
				dst[i] = a[i] + v
			}
		case binSub:
			for i := range dst {
				dst[i] = a[i] - v
			}
		case binMul:
			for i := range dst {
				dst[i] = a[i] * v
			}
		case binDiv:
			divVS(dst, a, v)
		}
	case bs == 1:
		v, b := a[0], b[:n]
		switch kind {
		case binAdd:
			for i := range dst {
				dst[i] = v + b[i]
			}
		case binSub:
			for i := range dst {
				dst[i] = v - b[i]
			}
		case binMul:
			for i := range dst {
				dst[i] = v * b[i]
			}
		case binDiv:
			for i := range dst {
				dst[i] = v / b[i]
			}
		}
	default:
		var v float32
		switch kind {
		case binAdd:
			v = a[0] + b[0]
		case binSub:
			v = a[0] - b[0]
		case binMul:
			v = a[0] * b[0]
		case binDiv:
			v = a[0] / b[0]
		}
		for i := range dst {
			dst[i] = v
		}
	}
}

// reduceExec computes ReduceMax (isMax) or ReduceSum over axes that are
// adjacent once unit axes are ignored: the operand is [outer, red, inner].
func reduceExec(backend *sgBackend, node *sgNode, inputs []*sgBuffer, isMax bool) (*sgBuffer, bool) {
	if len(inputs) != 1 || inputs[0] == nil || node.shape.DType != f32 {
		return nil, false
	}
	in := inputs[0]
	x, ok := in.flat.([]float32)
	axes, ok2 := node.data.([]int)
	if !ok || !ok2 || len(axes) == 0 || in.shape.DType != f32 || len(x) != in.shape.Size() || len(x) == 0 {
		return nil, false
	}
	dims := in.shape.Dimensions
	reduced := make([]bool, len(dims))
	for _, a := range axes {
		if a < 0 || a >= len(dims) || reduced[a] {
			return nil, false
		}
		reduced[a] = true
	}
	outer, red, inner := 1, 1, 1
	stage := 0 // 0: before the reduced axes, 1: in them, 2: after
	scattered := false
	for a, d := range dims {
		if d == 1 {
			continue
		}
		switch {
		case reduced[a] && stage <= 1:
			stage = 1
			red *= d
		case reduced[a]:
			scattered = true // reduced axes not adjacent
		case stage == 0:
			outer *= d
		default:
			stage = 2
			inner *= d
		}
	}
	if scattered {
		return reduceScattered(backend, node, x, dims, reduced, isMax)
	}
	if node.shape.Size() != outer*inner {
		return nil, false
	}
	out := sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != outer*inner {
		return nil, false
	}
	init := float32(0)
	if isMax {
		init, ok = f32.LowestValue().(float32)
		if !ok {
			return nil, false
		}
	}
	switch {
	case inner == 1:
		parallelFor(outer, red, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				if isMax {
					y[o] = maxRow(x[o*red:(o+1)*red], init)
				} else {
					y[o] = sumRow(x[o*red : (o+1)*red])
				}
			}
		})
	case outer > 1:
		parallelFor(outer, red*inner, func(lo, hi int) {
			for o := lo; o < hi; o++ {
				reduceCols(y[o*inner:(o+1)*inner], x[o*red*inner:], inner, red, init, isMax)
			}
		})
	default:
		const cb = 256
		parallelFor((inner+cb-1)/cb, red*cb, func(lo, hi int) {
			j0, j1 := lo*cb, min(hi*cb, inner)
			reduceCols(y[j0:j1], x[j0:], inner, red, init, isMax)
		})
	}
	return out, true
}

// reduceScattered reduces over axes that are not adjacent (GroupNorm's
// [batch, pixels, groups, channels/group] over pixels and channels): the
// operand's axes, unit ones dropped, are merged into runs of reduced and
// kept axes; the last run is reduced row by row (a reduced run) or added
// onto the output row (a kept run). Goroutines split the first run when it
// is kept (each then owns its outputs); otherwise it runs on one.
func reduceScattered(backend *sgBackend, node *sgNode, x []float32, dims []int, reduced []bool, isMax bool) (*sgBuffer, bool) {
	type run struct {
		d, outStride int // outStride 0 for reduced runs
		red          bool
	}
	var runs []run
	for a, d := range dims {
		if d == 1 {
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k].red == reduced[a] {
			runs[k].d *= d
			continue
		}
		runs = append(runs, run{d: d, red: reduced[a]})
	}
	outSize := 1
	for k := len(runs) - 1; k >= 0; k-- {
		if !runs[k].red {
			runs[k].outStride = outSize
			outSize *= runs[k].d
		}
	}
	if len(runs) < 3 || outSize != node.shape.Size() {
		return nil, false
	}
	out := sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != outSize {
		return nil, false
	}
	init := float32(0)
	if isMax {
		if init, ok = f32.LowestValue().(float32); !ok {
			return nil, false
		}
	}
	for j := range y {
		y[j] = init
	}
	last := runs[len(runs)-1]
	mid := runs[:len(runs)-1]
	n := last.d
	rowsPer := 1 // rows under one index of the first run
	for _, r := range mid[1:] {
		rowsPer *= r.d
	}
	do := func(row0, row1 int) {
		for row := row0; row < row1; row++ {
			o, r := 0, row
			for k := len(mid) - 1; k >= 0; k-- {
				o += (r % mid[k].d) * mid[k].outStride
				r /= mid[k].d
			}
			src := x[row*n : (row+1)*n]
			switch {
			case last.red && isMax:
				y[o] = max(y[o], maxRow(src, init))
			case last.red:
				y[o] += sumRow(src)
			case isMax:
				dst := y[o : o+n]
				for j, v := range src {
					dst[j] = max(dst[j], v)
				}
			default:
				dst := y[o : o+n]
				for j, v := range src {
					dst[j] += v
				}
			}
		}
	}
	if runs[0].red {
		do(0, runs[0].d*rowsPer)
	} else {
		parallelFor(runs[0].d, rowsPer*n, func(lo, hi int) { do(lo*rowsPer, hi*rowsPer) })
	}
	return out, true
}

// reduceCols sets dst[j] to the reduction over r < red of x[r·stride+j],
// in order (the order simplego sums in).
func reduceCols(dst, x []float32, stride, red int, init float32, isMax bool) {
	for j := range dst {
		dst[j] = init
	}
	n := len(dst)
	for r := range red {
		row := x[r*stride : r*stride+n]
		if isMax {
			for j, v := range row {
				dst[j] = max(dst[j], v)
			}
		} else {
			for j, v := range row {
				dst[j] += v
			}
		}
	}
}

// sumRow sums x with eight partial sums.
func sumRow(x []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s0 += v[0]
		s1 += v[1]
		s2 += v[2]
		s3 += v[3]
		s4 += v[4]
		s5 += v[5]
		s6 += v[6]
		s7 += v[7]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// maxRowGo is max(init, x...) with Go's max (NaN wins), in four lanes.
func maxRowGo(x []float32, init float32) float32 {
	m0, m1, m2, m3 := init, init, init, init
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		m0 = max(m0, v[0])
		m1 = max(m1, v[1])
		m2 = max(m2, v[2])
		m3 = max(m3, v[3])
	}
	for ; i < len(x); i++ {
		m0 = max(m0, x[i])
	}
	return max(max(m0, m1), max(m2, m3))
}

// The executors: ours when it can, the previous one otherwise.

func fastExp(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := unaryExec(b, n, in, owned, expFloat32); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeExp](b, n, in, owned)
}

func fastLogistic(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := unaryExec(b, n, in, owned, logisticFloat32); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeLogistic](b, n, in, owned)
}

func fastErf(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := unaryExec(b, n, in, owned, erfFloat32); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeErf](b, n, in, owned)
}

func fastAdd(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := binaryExec(b, n, in, owned, binAdd); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeAdd](b, n, in, owned)
}

func fastSub(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := binaryExec(b, n, in, owned, binSub); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeSub](b, n, in, owned)
}

func fastMul(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := binaryExec(b, n, in, owned, binMul); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeMul](b, n, in, owned)
}

func fastDiv(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := binaryExec(b, n, in, owned, binDiv); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeDiv](b, n, in, owned)
}

func fastReduceMax(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := reduceExec(b, n, in, true); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeReduceMax](b, n, in, owned)
}

func fastReduceSum(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := reduceExec(b, n, in, false); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeReduceSum](b, n, in, owned)
}

func counted(out *sgBuffer) (*sgBuffer, error) {
	elemCalls.Add(1)
	return out, nil
}
