package simplegofast

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/x448/float16"
)

// Weights kept as float16 bits. simplego v0.26.0 has no float16 dtype, so
// nn keeps such a weight as a uint16 tensor of its bits and decodes it in
// the graph as Gather(HalfTable(), bits as [n, 1]): a table lookup, correct on every
// backend and executor. This executor computes exactly that Gather (a
// rank-1 float32 table indexed by uint16 values) with a plain lookup, and,
// when the table is HalfTable's, with F16C conversions instead; any other
// Gather goes to simplego's executor.

// gatherNodeData mirrors simplego.gatherNode, the data of a Gather node.
type gatherNodeData struct {
	indexVectorAxis                                                  int
	offsetOutputAxes, collapsedSlicesAxes, startIndexMap, sliceSizes []int
	indicesAreSorted                                                 bool
}

// gatherDataType is the verified dynamic type of a Gather node's data.
var gatherDataType reflect.Type

var (
	halfTableOnce sync.Once
	halfTable     []float32
)

// HalfTable is the float32 value of every float16 bit pattern (65536
// values): Gather(HalfTable(), bits) decodes float16 bits exactly
// (signalling NaNs come out quiet, as with F16C). The slice is shared:
// callers must not change it.
func HalfTable() []float32 {
	halfTableOnce.Do(func() {
		halfTable = make([]float32, 1<<16)
		for i := range halfTable {
			halfTable[i] = halfBits(uint16(i))
		}
	})
	return halfTable
}

// verifyGatherLayout builds the decoding Gather on b and checks its node
// data's type and layout.
func verifyGatherLayout(b backends.Backend) (*sgNode, error) {
	bld := b.Builder("simplegofast_gather_probe")
	tab, err := bld.Parameter("table", shapes.Make(dtypes.Float32, 1<<16), nil)
	if err != nil {
		return nil, err
	}
	idx, err := bld.Parameter("bits", shapes.Make(dtypes.Uint16, 900, 1), nil)
	if err != nil {
		return nil, err
	}
	y, err := bld.Gather(tab, idx, 1, []int{}, []int{0}, []int{0}, []int{1}, false)
	if err != nil {
		return nil, err
	}
	node := (*sgNode)(ifaceData(y))
	if node.opType != backends.OpTypeGather || node.data == nil {
		return nil, fmt.Errorf("unexpected Gather graph: %s node", node.opType)
	}
	rt := reflect.TypeOf(node.data)
	if rt.Kind() != reflect.Pointer || rt.Elem().PkgPath() != simplegoPkg || rt.Elem().Name() != "gatherNode" {
		return nil, fmt.Errorf("Gather node data is a %s, expected *simplego.gatherNode", rt)
	}
	if err := sameStruct(rt.Elem(), reflect.TypeFor[gatherNodeData](), nil); err != nil {
		return nil, fmt.Errorf("simplego.gatherNode: %w", err)
	}
	p := (*gatherNodeData)(ifaceData(node.data))
	if fmt.Sprint(p.indexVectorAxis, p.offsetOutputAxes, p.collapsedSlicesAxes, p.startIndexMap, p.sliceSizes) != "1 [] [0] [0] [1]" {
		return nil, fmt.Errorf("simplego.gatherNode holds %+v", *p)
	}
	gatherDataType = rt
	return node, nil
}

// fastGather is the Gather executor.
func fastGather(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool) (*sgBuffer, error) {
	if out, ok := gatherLookup(backend, node, inputs); ok {
		elemCalls.Add(1)
		return out, nil
	}
	return elemStock[backends.OpTypeGather](backend, node, inputs, inputsOwned)
}

// gatherLookup computes out[i] = table[bits[i]] for a rank-1 float32 table
// of 65536 values and uint16 indices [n, 1] (the form nn builds: simplego's
// shape inference limits the index vector axis to the table's rank); ok
// false for anything else.
func gatherLookup(backend *sgBackend, node *sgNode, inputs []*sgBuffer) (*sgBuffer, bool) {
	if len(inputs) != 2 || inputs[0] == nil || inputs[1] == nil || node.shape.DType != f32 ||
		gatherDataType == nil || node.data == nil || reflect.TypeOf(node.data) != gatherDataType {
		return nil, false
	}
	tb, ib := inputs[0], inputs[1]
	table, ok1 := tb.flat.([]float32)
	bits, ok2 := ib.flat.([]uint16)
	r := ib.shape.Rank()
	if !ok1 || !ok2 || tb.shape.DType != f32 || tb.shape.Rank() != 1 || len(table) != 1<<16 ||
		ib.shape.DType != dtypes.Uint16 || r != 2 || ib.shape.Dimensions[r-1] != 1 || len(bits) != ib.shape.Size() ||
		node.shape.Rank() != r-1 || node.shape.Size() != len(bits) {
		return nil, false
	}
	for a := range r - 1 {
		if node.shape.Dimensions[a] != ib.shape.Dimensions[a] {
			return nil, false
		}
	}
	p := (*gatherNodeData)(ifaceData(node.data))
	if p.indexVectorAxis != r-1 || len(p.offsetOutputAxes) != 0 || len(p.collapsedSlicesAxes) != 1 || p.collapsedSlicesAxes[0] != 0 ||
		len(p.startIndexMap) != 1 || p.startIndexMap[0] != 0 || len(p.sliceSizes) != 1 || p.sliceSizes[0] != 1 {
		return nil, false
	}
	out := sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != len(bits) {
		return nil, false
	}
	half := len(bits) >= 1<<14 && isHalfTable(table)
	const block = 4096
	n := len(y)
	parallelFor((n+block-1)/block, block, func(lo, hi int) {
		lo, hi = lo*block, min(hi*block, n)
		if half {
			halfToFloat32(y[lo:hi], unsafe.Slice((*float16.Float16)(unsafe.Pointer(&bits[lo])), hi-lo))
			return
		}
		for i, b := range bits[lo:hi] {
			y[lo+i] = table[b]
		}
	})
	return out, true
}

// isHalfTable reports whether table holds HalfTable's values (bit for
// bit), so that converting the indices as float16 gives the lookup's result.
func isHalfTable(table []float32) bool {
	ref := HalfTable()
	if len(table) != len(ref) {
		return false
	}
	if &table[0] == &ref[0] {
		return true
	}
	for i, v := range table {
		if math.Float32bits(v) != math.Float32bits(ref[i]) {
			return false
		}
	}
	return true
}

// verifyGather checks the executor against simplego's: every float16 bit
// pattern through HalfTable (the F16C path), and random indices into a
// random table (the lookup), bit for bit.
func verifyGather(b backends.Backend) error {
	node, err := verifyGatherLayout(b)
	if err != nil {
		return err
	}
	be := (*sgBackend)(ifaceData(b))
	r := rand.New(rand.NewPCG(3, 5))
	for _, random := range []bool{false, true} {
		table := HalfTable()
		bits := make([]uint16, 3*300)
		if random {
			table = make([]float32, 1<<16)
			for i := range table {
				table[i] = float32(r.NormFloat64())
			}
			for i := range bits {
				bits[i] = uint16(r.IntN(1 << 16))
			}
		}
		tbuf, err := b.BufferFromFlatData(0, table, shapes.Make(dtypes.Float32, 1<<16))
		if err != nil {
			return err
		}
		ibuf, err := b.BufferFromFlatData(0, bits, shapes.Make(dtypes.Uint16, 900, 1))
		if err != nil {
			return err
		}
		in := []*sgBuffer{(*sgBuffer)(ifaceData(tbuf)), (*sgBuffer)(ifaceData(ibuf))}
		want, err := elemStock[backends.OpTypeGather](be, node, in, []bool{false, false})
		if err != nil {
			return fmt.Errorf("stock Gather: %w", err)
		}
		got, ok := gatherLookup(be, node, in)
		if !ok {
			return errors.New("fast Gather not taken")
		}
		g, w := got.flat.([]float32), want.flat.([]float32)
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				return fmt.Errorf("Gather element %d (index %d): %g, stock %g", i, bits[i], g[i], w[i])
			}
		}
		// The F16C path on every bit pattern (the executor takes it from 2¹⁴ values on).
		if !random {
			all := make([]float16.Float16, 1<<16)
			for i := range all {
				all[i] = float16.Float16(i)
			}
			y := make([]float32, len(all))
			halfToFloat32(y, all)
			for i, v := range y {
				if math.Float32bits(v) != math.Float32bits(table[i]) {
					return fmt.Errorf("float16 0x%04x converts to 0x%08x, the table holds 0x%08x", i, math.Float32bits(v), math.Float32bits(table[i]))
				}
			}
		}
		_ = b.BufferFinalize(tbuf)
		_ = b.BufferFinalize(ibuf)
	}
	return nil
}
