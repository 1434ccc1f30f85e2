package nn

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Gradients GoMLX lacks or computes slowly on the pure-Go backend, plugged
// into graph.VJPRegistration (GoMLX documents that table as the place to
// change an op's gradient):
//
//   - DotGeneral and Dot: GoMLX's gradient is a broadcast Mul plus ReduceSum
//     that materialises [batch, M, N, K] tensors, 20–25× slower than two
//     matrix products on simplego. On the pure-Go backend the gradient is
//     formulated as two DotGenerals (the textbook v·Bᵀ and Aᵀ·v, batched);
//     other backends keep GoMLX's gradient.
//   - Pad and Reverse have no gradient in GoMLX; theirs are a strided Slice
//     and a Reverse of the adjoint, on every backend. An existing
//     registration (a newer GoMLX) is kept.
//
// The forward graph is not changed, so inference pays nothing. The axes of a
// DotGeneral (and the configuration of Pad and Reverse) are GoMLX-internal
// node parameters, read by reflection; if a GoMLX upgrade renames them the
// lookups fail, the stock gradient is used (slow but correct), and
// TestFastDotGeneralGradientIsUsed fails to say so.
var (
	stockDotGeneralVJP = VJPRegistration[NodeTypeDotGeneral]
	stockDotVJP        = VJPRegistration[NodeTypeDot]
)

func init() {
	VJPRegistration[NodeTypeDotGeneral] = func(node *Node, vs []*Node, out shapes.Shape) []*Node {
		if IsGo(node.Graph().Backend()) {
			if ax, ok := dotGeneralAxesOf(node); ok {
				return dotGeneralGrads(node, vs[0], ax)
			}
		}
		return stockDotGeneralVJP(node, vs, out)
	}
	VJPRegistration[NodeTypeDot] = func(node *Node, vs []*Node, out shapes.Shape) []*Node {
		if IsGo(node.Graph().Backend()) {
			if ax, ok := dotAxesOf(node); ok {
				return dotGeneralGrads(node, vs[0], ax)
			}
		}
		return stockDotVJP(node, vs, out)
	}
	if _, ok := VJPRegistration[NodeTypePad]; !ok {
		VJPRegistration[NodeTypePad] = func(node *Node, vs []*Node, _ shapes.Shape) []*Node { return padVJP(node, vs[0]) }
	}
	if _, ok := VJPRegistration[NodeTypeReverse]; !ok {
		VJPRegistration[NodeTypeReverse] = func(node *Node, vs []*Node, _ shapes.Shape) []*Node { return reverseVJP(node, vs[0]) }
	}
}

// dotAxes are the parameters of a DotGeneral.
type dotAxes struct {
	lc, lb, rc, rb []int
}

// nodeParam returns the GoMLX-internal parameter field of node (a field of
// the struct behind its unexported `inputs`), or an invalid Value.
func nodeParam(node *Node, field string) reflect.Value {
	v := reflect.ValueOf(node).Elem().FieldByName("inputs")
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	if !v.IsValid() || v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return v.FieldByName(field)
}

func intsParam(node *Node, field string) ([]int, bool) {
	v := nodeParam(node, field)
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.Int {
		return nil, false
	}
	out := make([]int, v.Len())
	for i := range out {
		out[i] = int(v.Index(i).Int())
	}
	return out, true
}

// dotGeneralAxesOf reads a DotGeneral node's axes and checks them against
// its shapes, so that a misread can only fall back to the stock gradient.
func dotGeneralAxesOf(node *Node) (ax dotAxes, ok bool) {
	if node.Type() != NodeTypeDotGeneral || len(node.Inputs()) != 2 {
		return ax, false
	}
	var ok1, ok2, ok3, ok4 bool
	ax.lc, ok1 = intsParam(node, "lhsContractingAxes")
	ax.lb, ok2 = intsParam(node, "lhsBatchAxes")
	ax.rc, ok3 = intsParam(node, "rhsContractingAxes")
	ax.rb, ok4 = intsParam(node, "rhsBatchAxes")
	if !(ok1 && ok2 && ok3 && ok4) {
		return ax, false
	}
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	if len(ax.lc) != len(ax.rc) || len(ax.lb) != len(ax.rb) || !validAxes(lhs.Rank(), ax.lc, ax.lb) || !validAxes(rhs.Rank(), ax.rc, ax.rb) {
		return ax, false
	}
	ld, rd := lhs.Shape().Dimensions, rhs.Shape().Dimensions
	var want []int
	for i := range ax.lc {
		if ld[ax.lc[i]] != rd[ax.rc[i]] {
			return ax, false
		}
	}
	for i := range ax.lb {
		if ld[ax.lb[i]] != rd[ax.rb[i]] {
			return ax, false
		}
		want = append(want, ld[ax.lb[i]])
	}
	for _, a := range crossAxes(lhs.Rank(), ax.lc, ax.lb) {
		want = append(want, ld[a])
	}
	for _, a := range crossAxes(rhs.Rank(), ax.rc, ax.rb) {
		want = append(want, rd[a])
	}
	return ax, slices.Equal(want, node.Shape().Dimensions)
}

// dotAxesOf expresses a Dot node (matrix·matrix or matrix·vector) as DotGeneral axes.
func dotAxesOf(node *Node) (dotAxes, bool) {
	if node.Type() != NodeTypeDot || len(node.Inputs()) != 2 {
		return dotAxes{}, false
	}
	lr, rr := node.Inputs()[0].Rank(), node.Inputs()[1].Rank()
	if lr == 2 && (rr == 1 || rr == 2) {
		return dotAxes{lc: []int{1}, rc: []int{0}}, true
	}
	return dotAxes{}, false
}

// validAxes reports whether contracting and batch axes are in range and distinct.
func validAxes(rank int, contracting, batch []int) bool {
	seen := make([]bool, rank)
	for _, a := range slices.Concat(contracting, batch) {
		if a < 0 || a >= rank || seen[a] {
			return false
		}
		seen[a] = true
	}
	return true
}

// crossAxes lists, in increasing order, the axes that are neither contracted nor batch.
func crossAxes(rank int, contracting, batch []int) []int {
	var out []int
	for a := range rank {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// rankIn is the position of a in the increasing order of axes.
func rankIn(axes []int, a int) int {
	n := 0
	for _, b := range axes {
		if b < a {
			n++
		}
	}
	return n
}

// dotGeneralGrads returns the gradients of y = DotGeneral(lhs, rhs) for the
// adjoint v (shaped like y: [batch…, lhs cross…, rhs cross…]), each one
// DotGeneral of v with the other operand.
func dotGeneralGrads(node, v *Node, ax dotAxes) []*Node {
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	nb := len(ax.lb)
	lx := crossAxes(lhs.Rank(), ax.lc, ax.lb)
	rx := crossAxes(rhs.Rank(), ax.rc, ax.rb)
	vBatch := seq(0, nb)
	vLhsCross := seq(nb, len(lx))
	vRhsCross := seq(nb+len(lx), len(rx))

	// dL: v's rhs-cross axes contract with rhs's cross axes; v keeps the lhs
	// cross axes, rhs keeps its contracting axes (which become lhs's).
	gl := gradProduct(lhs.Rank(), ax.lb,
		v, vBatch, vRhsCross, labels(vLhsCross, lx),
		rhs, ax.rb, rx, labels(ax.rc, ax.lc))
	// dR: symmetric.
	gr := gradProduct(rhs.Rank(), ax.rb,
		v, vBatch, vLhsCross, labels(vRhsCross, rx),
		lhs, ax.lb, lx, labels(ax.lc, ax.rc))
	return []*Node{gl, gr}
}

// labels maps axes[i] to target[i].
func labels(axes, target []int) map[int]int {
	m := make(map[int]int, len(axes))
	for i, a := range axes {
		m[a] = target[i]
	}
	return m
}

// gradProduct contracts v with other into a tensor of rank targetRank whose
// axis batchTarget[i] is the i-th batch axis and whose other axes are the
// kept axes of v and other (vKeep, oKeep: axis → target axis). Among the
// equivalent formulations (v or other first, other pre-transposed or not) it
// builds the one that moves the fewest elements through Transpose: a
// DotGeneral result comes out as [batch, first's kept axes, second's kept
// axes], each in its operand's axis order, and a transpose on the pure-Go
// backend is an element-by-element copy.
func gradProduct(targetRank int, batchTarget []int,
	v *Node, vBatch, vContract []int, vKeep map[int]int,
	other *Node, oBatch, oContract []int, oKeep map[int]int) *Node {
	kept := func(rank int, keep map[int]int) []int { // kept axes in axis order
		var out []int
		for a := range rank {
			if _, ok := keep[a]; ok {
				out = append(out, a)
			}
		}
		return out
	}
	type plan struct {
		otherFirst, pre bool
		cost            int
	}
	resultLabels := func(p plan) []int {
		out := slices.Clone(batchTarget)
		vl := make([]int, 0, len(vKeep))
		for _, a := range kept(v.Rank(), vKeep) {
			vl = append(vl, vKeep[a])
		}
		ol := make([]int, 0, len(oKeep))
		for _, a := range kept(other.Rank(), oKeep) {
			ol = append(ol, oKeep[a])
		}
		if p.pre {
			slices.Sort(ol) // pre-transposed so that its kept axes follow the target order
		}
		if p.otherFirst {
			return append(append(out, ol...), vl...)
		}
		return append(append(out, vl...), ol...)
	}
	targetPerm := func(p plan) []int {
		lab := resultLabels(p)
		perm := make([]int, targetRank)
		for pos, t := range lab {
			perm[t] = pos
		}
		return perm
	}
	best := plan{cost: -1}
	for _, pre := range []bool{false, true} {
		for _, otherFirst := range []bool{false, true} {
			p := plan{otherFirst: otherFirst, pre: pre}
			if pre {
				p.cost += other.Shape().Size()
			}
			if !isIdentity(targetPerm(p)) {
				p.cost += v.Shape().Size() / max(sizeOf(v, vContract), 1) * sizeOf(other, kept(other.Rank(), oKeep))
			}
			if best.cost < 0 || p.cost < best.cost {
				best = p
			}
		}
	}
	o, ob, oc := other, oBatch, oContract
	if best.pre {
		// other → [batch…, contracting…, kept axes in target order].
		keptAxes := kept(other.Rank(), oKeep)
		slices.SortFunc(keptAxes, func(a, b int) int { return oKeep[a] - oKeep[b] })
		perm := slices.Concat(oBatch, oContract, keptAxes)
		if !isIdentity(perm) {
			o = TransposeAllAxes(other, perm...)
		}
		ob, oc = seq(0, len(oBatch)), seq(len(oBatch), len(oContract))
	}
	var y *Node
	if best.otherFirst {
		y = DotGeneral(o, oc, ob, v, vContract, vBatch)
	} else {
		y = DotGeneral(v, vContract, vBatch, o, oc, ob)
	}
	return transposeIfNeeded(y, targetPerm(best))
}

func sizeOf(x *Node, axes []int) int {
	n := 1
	for _, a := range axes {
		n *= x.Shape().Dim(a)
	}
	return n
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if i != p {
			return false
		}
	}
	return true
}

func seq(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}

func transposeIfNeeded(x *Node, perm []int) *Node {
	if isIdentity(perm) {
		return x
	}
	return TransposeAllAxes(x, perm...)
}

// padVJP is the gradient of Pad: the adjoint at the positions x was copied
// to (a strided Slice), and for the fill value everything else.
func padVJP(node, v *Node) []*Node {
	x, fill := node.Inputs()[0], node.Inputs()[1]
	cfgs := padConfigOf(node)
	if cfgs == nil && x.Rank() > 0 {
		panic(fmt.Errorf("nn: cannot read the configuration of Pad node %s to compute its gradient (GoMLX upgrade?)", node))
	}
	g := node.Graph()
	rank := x.Rank()
	pre := make([]backends.PadAxis, rank)
	needPre := false
	starts, limits, strides := make([]int, rank), make([]int, rank), make([]int, rank)
	for a := range rank {
		var c backends.PadAxis
		if a < len(cfgs) {
			c = cfgs[a]
		}
		// Negative padding cropped x: pad the adjoint back with zeros first.
		if c.Start < 0 || c.End < 0 {
			pre[a] = backends.PadAxis{Start: max(-c.Start, 0), End: max(-c.End, 0)}
			needPre = true
		}
		d := x.Shape().Dim(a)
		starts[a] = max(c.Start, 0)
		strides[a] = c.Interior + 1
		limits[a] = starts[a] + max(d-1, 0)*strides[a] + 1
		if d == 0 {
			limits[a] = starts[a]
		}
	}
	if needPre {
		v = Pad(v, ScalarZero(g, v.DType()), pre...)
	}
	ranges := make([]SliceAxisSpec, rank)
	for a := range rank {
		ranges[a] = AxisRange(starts[a], limits[a]).Stride(strides[a])
	}
	gx := v
	if rank > 0 {
		gx = Slice(v, ranges...)
	}
	gFill := Sub(ReduceAllSum(v), ReduceAllSum(gx))
	if !fill.Shape().IsScalar() {
		gFill = BroadcastToShape(gFill, fill.Shape())
	}
	return []*Node{gx, gFill}
}

func padConfigOf(node *Node) []backends.PadAxis {
	v := nodeParam(node, "axesConfig")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem() != reflect.TypeFor[backends.PadAxis]() {
		return nil
	}
	out := make([]backends.PadAxis, v.Len())
	for i := range out {
		e := v.Index(i)
		out[i] = backends.PadAxis{
			Start:    int(e.FieldByName("Start").Int()),
			End:      int(e.FieldByName("End").Int()),
			Interior: int(e.FieldByName("Interior").Int()),
		}
	}
	return out
}

// reverseVJP is the gradient of Reverse: the adjoint reversed on the same axes.
func reverseVJP(node, v *Node) []*Node {
	axes, ok := intsParam(node, "axes")
	if !ok {
		panic(fmt.Errorf("nn: cannot read the axes of Reverse node %s to compute its gradient (GoMLX upgrade?)", node))
	}
	return []*Node{Reverse(v, axes...)}
}
