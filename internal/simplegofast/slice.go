package simplegofast

import (
	"fmt"
	"reflect"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// sliceNodeData mirrors simplego.sliceNode, the data of a Slice node.
type sliceNodeData struct {
	starts, limits, strides []int
}

// sliceDataType is the verified dynamic type of a Slice node's data
// (*simplego.sliceNode), set by verifySliceLayout.
var sliceDataType reflect.Type

// verifySliceLayout builds a Slice on b and checks that its node data is a
// *simplego.sliceNode laid out as sliceNodeData.
func verifySliceLayout(b backends.Backend) error {
	bld := b.Builder("simplegofast_slice_probe")
	x, err := bld.Parameter("x", shapes.Make(dtypes.Float32, 4, 5), nil)
	if err != nil {
		return err
	}
	y, err := bld.Slice(x, []int{1, 0}, []int{3, 5}, []int{1, 2})
	if err != nil {
		return err
	}
	node := (*sgNode)(ifaceData(y))
	if node.opType != backends.OpTypeSlice || node.data == nil {
		return fmt.Errorf("unexpected Slice graph: %s node", node.opType)
	}
	rt := reflect.TypeOf(node.data)
	if rt.Kind() != reflect.Pointer || rt.Elem().PkgPath() != simplegoPkg || rt.Elem().Name() != "sliceNode" {
		return fmt.Errorf("Slice node data is a %s, expected *simplego.sliceNode", rt)
	}
	if err := sameStruct(rt.Elem(), reflect.TypeFor[sliceNodeData](), nil); err != nil {
		return fmt.Errorf("simplego.sliceNode: %w", err)
	}
	sliceDataType = rt
	p := (*sliceNodeData)(ifaceData(node.data))
	if fmt.Sprint(p.starts, p.limits, p.strides) != "[1 0] [3 5] [1 2]" {
		return fmt.Errorf("simplego.sliceNode holds %v %v %v", p.starts, p.limits, p.strides)
	}
	return nil
}

// sliceExec copies the float32 slice: axes merged where the operand's
// strides allow, contiguous rows with copy, strided ones element by element.
func sliceExec(backend *sgBackend, node *sgNode, inputs []*sgBuffer) (*sgBuffer, bool) {
	if len(inputs) != 1 || inputs[0] == nil || node.shape.DType != f32 || sliceDataType == nil ||
		node.data == nil || reflect.TypeOf(node.data) != sliceDataType {
		return nil, false
	}
	in := inputs[0]
	x, ok := in.flat.([]float32)
	rank := in.shape.Rank()
	if !ok || in.shape.DType != f32 || len(x) != in.shape.Size() || node.shape.Rank() != rank {
		return nil, false
	}
	p := (*sliceNodeData)(ifaceData(node.data))
	if len(p.starts) != rank || len(p.strides) != rank {
		return nil, false
	}
	type ax struct{ d, s int }
	var m []ax
	off, st := 0, 1
	ss := make([]int, rank)
	for a := rank - 1; a >= 0; a-- {
		ss[a] = st
		st *= in.shape.Dimensions[a]
	}
	for a := range rank {
		d, start, stride := node.shape.Dimensions[a], p.starts[a], p.strides[a]
		if d < 0 || start < 0 || stride < 1 || (d > 0 && start+(d-1)*stride >= in.shape.Dimensions[a]) {
			return nil, false
		}
		off += start * ss[a]
		if d == 1 {
			continue
		}
		s := ss[a] * stride
		if k := len(m) - 1; k >= 0 && m[k].s == s*d {
			m[k] = ax{m[k].d * d, s}
			continue
		}
		m = append(m, ax{d, s})
	}
	if len(m) == 0 {
		m = append(m, ax{1, 1})
	}
	out := sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != node.shape.Size() {
		return nil, false
	}
	if len(y) == 0 {
		return out, true
	}
	inner, outer := m[len(m)-1], m[:len(m)-1]
	rows, n := len(y)/inner.d, inner.d
	parallelFor(rows, n, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			o, r := off, row
			for k := len(outer) - 1; k >= 0; k-- {
				o += (r % outer[k].d) * outer[k].s
				r /= outer[k].d
			}
			dst := y[row*n : (row+1)*n]
			if inner.s == 1 {
				copy(dst, x[o:o+n])
				continue
			}
			src := x[o : o+(n-1)*inner.s+1]
			for i := range dst {
				dst[i] = src[i*inner.s]
			}
		}
	})
	return out, true
}

func fastSlice(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := sliceExec(b, n, in); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeSlice](b, n, in, owned)
}
