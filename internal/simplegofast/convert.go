package simplegofast

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/x448/float16"
)

// ConvertDType from float16 or bfloat16 to float32: what a model whose
// weights are kept in their stored 16-bit dtype (nn.Param) runs before
// every use of a weight. simplego converts one value at a time through
// x448/float16's branchy conversion; this converts with F16C (8 values an
// instruction) or a shift (bfloat16 is the top half of a float32), on
// GOMAXPROCS goroutines for large tensors. Every other conversion goes to
// simplego's executor.

// fastConvertDType is the ConvertDType executor.
func fastConvertDType(backend *sgBackend, node *sgNode, inputs []*sgBuffer, inputsOwned []bool) (*sgBuffer, error) {
	if out, ok := convertHalf(backend, node, inputs); ok {
		elemCalls.Add(1)
		return out, nil
	}
	return elemStock[backends.OpTypeConvertDType](backend, node, inputs, inputsOwned)
}

func convertHalf(backend *sgBackend, node *sgNode, inputs []*sgBuffer) (*sgBuffer, bool) {
	if len(inputs) != 1 || inputs[0] == nil || node.shape.DType != f32 {
		return nil, false
	}
	in := inputs[0]
	if in.shape.Size() != node.shape.Size() {
		return nil, false
	}
	var conv func(dst []float32, lo, hi int)
	switch x := in.flat.(type) {
	case []float16.Float16:
		if in.shape.DType != dtypes.Float16 || len(x) != in.shape.Size() {
			return nil, false
		}
		conv = func(dst []float32, lo, hi int) { halfToFloat32(dst[lo:hi], x[lo:hi]) }
	case []bfloat16.BFloat16:
		if in.shape.DType != dtypes.BFloat16 || len(x) != in.shape.Size() {
			return nil, false
		}
		conv = func(dst []float32, lo, hi int) { bf16ToFloat32(dst[lo:hi], x[lo:hi]) }
	default:
		return nil, false
	}
	out := sgGetBufferForShape(backend, node.shape)
	if out == nil {
		return nil, false
	}
	y, ok := out.flat.([]float32)
	if !ok || len(y) != node.shape.Size() {
		return nil, false
	}
	const block = 4096
	n := len(y)
	parallelFor((n+block-1)/block, block, func(lo, hi int) {
		conv(y, lo*block, min(hi*block, n))
	})
	return out, true
}

// halfToFloat32Go converts IEEE half values exactly (subnormals, ±Inf and
// NaN included; a signalling NaN comes out quiet, as with F16C).
func halfToFloat32Go(dst []float32, src []float16.Float16) {
	src = src[:len(dst)]
	for i, h := range src {
		dst[i] = halfBits(uint16(h))
	}
}

func halfBits(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN (quieted)
		if man != 0 {
			man |= 0x200
		}
		return math.Float32frombits(sign | 0xff<<23 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: man·2⁻²⁴, exact in float32.
	return copySign(float32(man)*(1.0/(1<<24)), sign)
}

func copySign(v float32, sign uint32) float32 {
	return math.Float32frombits(math.Float32bits(v) | sign)
}

// bf16ToFloat32 converts bfloat16 values (exact: the high half of a float32).
func bf16ToFloat32(dst []float32, src []bfloat16.BFloat16) {
	src = src[:len(dst)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// verifyConvert checks the executor against simplego's on every float16
// bit pattern and on bfloat16 values, bit for bit (NaNs: both NaN).
func verifyConvert(b backends.Backend) error {
	be := (*sgBackend)(ifaceData(b))
	for _, dt := range []dtypes.DType{dtypes.BFloat16} { // simplego v0.26.0 has no Float16
		bld := b.Builder("simplegofast_convert_selftest")
		s := shapes.Make(dt, 256, 256)
		p, err := bld.Parameter("x", s, nil)
		if err != nil {
			return err
		}
		y, err := bld.ConvertDType(p, dtypes.Float32)
		if err != nil {
			return err
		}
		node := (*sgNode)(ifaceData(y))
		if node.opType != backends.OpTypeConvertDType {
			return fmt.Errorf("unexpected graph: %s node", node.opType)
		}
		var flat any
		if dt == dtypes.Float16 {
			x := make([]float16.Float16, s.Size())
			for i := range x {
				x[i] = float16.Float16(i)
			}
			flat = x
		} else {
			x := make([]bfloat16.BFloat16, s.Size())
			for i := range x {
				x[i] = bfloat16.BFloat16(i)
			}
			flat = x
		}
		buf, err := b.BufferFromFlatData(0, flat, s)
		if err != nil {
			return err
		}
		in := []*sgBuffer{(*sgBuffer)(ifaceData(buf))}
		want, err := elemStock[backends.OpTypeConvertDType](be, node, in, []bool{false})
		if err != nil {
			return fmt.Errorf("stock ConvertDType: %w", err)
		}
		got, ok := convertHalf(be, node, in)
		if !ok {
			return errors.New("fast ConvertDType not taken")
		}
		g, w := got.flat.([]float32), want.flat.([]float32)
		for i := range w {
			gn, wn := g[i] != g[i], w[i] != w[i]
			if gn != wn || !gn && math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				return fmt.Errorf("ConvertDType %s 0x%04x: %g (0x%08x), stock %g (0x%08x)", dt, i, g[i], math.Float32bits(g[i]), w[i], math.Float32bits(w[i]))
			}
		}
		_ = b.BufferFinalize(buf)
	}
	return nil
}
