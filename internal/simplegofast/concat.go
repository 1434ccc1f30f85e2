package simplegofast

import "github.com/gomlx/gomlx/backends"

// concatExec concatenates float32 operands along the node's axis (its data,
// an int): for each operand and each block of the axes before it, one
// contiguous copy, the copies spread over goroutines.
func concatExec(backend *sgBackend, node *sgNode, inputs []*sgBuffer) (*sgBuffer, bool) {
	axis, ok := node.data.(int)
	out := node.shape
	rank := out.Rank()
	if !ok || len(inputs) == 0 || out.DType != f32 || axis < 0 || axis >= rank {
		return nil, false
	}
	outer, inner := 1, 1
	for a := range axis {
		outer *= out.Dimensions[a]
	}
	for a := axis + 1; a < rank; a++ {
		inner *= out.Dimensions[a]
	}
	srcs := make([][]float32, len(inputs))
	total := 0
	for i, in := range inputs {
		if in == nil || in.shape.DType != f32 || in.shape.Rank() != rank {
			return nil, false
		}
		x, ok := in.flat.([]float32)
		if !ok || len(x) != in.shape.Size() {
			return nil, false
		}
		for a := range rank {
			if a != axis && in.shape.Dimensions[a] != out.Dimensions[a] {
				return nil, false
			}
		}
		srcs[i] = x
		total += in.shape.Dimensions[axis]
	}
	if total != out.Dimensions[axis] {
		return nil, false
	}
	buf := sgGetBufferForShape(backend, out)
	if buf == nil {
		return nil, false
	}
	y, ok := buf.flat.([]float32)
	if !ok || len(y) != out.Size() {
		return nil, false
	}
	if len(y) == 0 {
		return buf, true
	}
	row := out.Dimensions[axis] * inner // one outer block of the output
	parallelFor(outer, row, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			off := o * row
			for _, x := range srcs {
				n := len(x) / outer
				copy(y[off:off+n], x[o*n:(o+1)*n])
				off += n
			}
		}
	})
	return buf, true
}

func fastConcatenate(b *sgBackend, n *sgNode, in []*sgBuffer, owned []bool) (*sgBuffer, error) {
	if out, ok := concatExec(b, n, in); ok {
		return counted(out)
	}
	return elemStock[backends.OpTypeConcatenate](b, n, in, owned)
}
