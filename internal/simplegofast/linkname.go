package simplegofast

import (
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // the symbols below live there
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// This file reaches into GoMLX's pure-Go backend (simplego, v0.26.0), whose
// op-executor table and node types are unexported. The Go linker forbids
// pulling unexported symbols only from the standard library (Go ≥ 1.23), so
// the //go:linkname pulls below link; if GoMLX renames one of them the build
// fails at link time (never silently at run time).
//
// The types mirror simplego's memory layouts; verifyLayouts (layout.go)
// compares every field's name, type and offset with the real ones through
// reflection before anything here is used, and Enable refuses to install
// the executor otherwise.

// sgBackend stands for *simplego.Backend, only ever passed through.
type sgBackend struct{}

// sgBuilder stands for *simplego.Builder, never dereferenced.
type sgBuilder struct{}

// sgBuffer mirrors simplego.Buffer.
type sgBuffer struct {
	shape shapes.Shape
	valid bool
	flat  any
}

// sgNode mirrors simplego.Node.
type sgNode struct {
	builderIdx int
	inputs     []*sgNode

	opType  backends.OpType
	shape   shapes.Shape
	builder *sgBuilder

	multiOutputsShapes []shapes.Shape
	multiOutputsNodes  []*sgNode
	isNodeSelectOutput bool
	selectOutputIdx    int

	data any
}

// dotGeneralNodeData mirrors simplego.dotGeneralNodeData, the data of a
// DotGeneral node: the axes as given (negative ones made positive) and the
// sizes of the normalised product [batch, lhsCross, contracting] ×
// [batch, rhsCross, contracting] → [batch, lhsCross, rhsCross].
type dotGeneralNodeData struct {
	lhsContractingAxes, lhsBatchAxes                       []int
	rhsContractingAxes, rhsBatchAxes                       []int
	batchSize, lhsCrossSize, rhsCrossSize, contractingSize int
	lhsBlockedShape, rhsBlockedShape, outputBlockedShape   shapes.Shape
}

// nodeExecutor is simplego's nodeExecutor on the mirrored types.
type nodeExecutor func(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool) (*sgBuffer, error)

// priorityUser is simplego's registerPriority for "custom user overrides",
// the highest it defines.
const priorityUser = 100

//go:linkname sgSetNodeExecutor github.com/gomlx/gomlx/backends/simplego.setNodeExecutor
func sgSetNodeExecutor(opType backends.OpType, priority int, executor nodeExecutor)

//go:linkname sgNodeExecutors github.com/gomlx/gomlx/backends/simplego.nodeExecutors
var sgNodeExecutors [backends.OpTypeLast]nodeExecutor

//go:linkname sgGetBufferForShape github.com/gomlx/gomlx/backends/simplego.(*Backend).getBufferForShape
func sgGetBufferForShape(b *sgBackend, shape shapes.Shape) *sgBuffer

// ifaceData returns the data word of a non-nil interface holding a pointer.
func ifaceData(x any) unsafe.Pointer {
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&x))[1]
}
