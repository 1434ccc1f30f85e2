package nn

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// halfSource serves float16 ("F16") or bfloat16 ("BF16") tensors as a
// weights file does with --weights-dtype f16, and their exact float32
// values for the reference load.
type halfSource struct {
	dtype string
	bits  map[string][]uint16
	shape map[string][]int
}

func (s halfSource) Keys() []string {
	var k []string
	for key := range s.bits {
		k = append(k, key)
	}
	return k
}

func (s halfSource) decode(b uint16) float32 {
	if s.dtype == "BF16" {
		return math.Float32frombits(uint32(b) << 16)
	}
	return halfBitsRef(b)
}

func (s halfSource) Float32(key string) ([]float32, []int, error) {
	out := make([]float32, len(s.bits[key]))
	for i, b := range s.bits[key] {
		out[i] = s.decode(b)
	}
	return out, s.shape[key], nil
}

func (s halfSource) StoredHalf(key string) (string, []int, bool) {
	return s.dtype, s.shape[key], true
}

func (s halfSource) HalfInto(key string, dst []byte) error {
	for i, b := range s.bits[key] {
		binary.LittleEndian.PutUint16(dst[2*i:], b)
	}
	return nil
}

// f32Only hides the HalfSource methods.
type f32Only struct{ halfSource }

func (f32Only) StoredHalf(string) (string, []int, bool) { return "", nil, false }

// halfBitsRef decodes IEEE binary16 the slow way, for the test.
func halfBitsRef(h uint16) float32 {
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	var v float64
	switch e {
	case 0:
		v = m / 1024 * math.Pow(2, -14)
	case 0x1f:
		v = math.Inf(1)
		if m != 0 {
			v = math.NaN()
		}
	default:
		v = (1 + m/1024) * math.Pow(2, float64(e-15))
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

// TestHalfWeights: weights kept as float16 bits or bfloat16 (Load with a
// HalfSource) give bit for bit the outputs of the same values loaded as
// float32, through Linear and Conv2D (Param decodes them exactly), stay
// 16-bit and non-trainable, and Values decodes them.
func TestHalfWeights(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(4, 2))
	for _, dt := range []string{"F16", "BF16"} {
		src := halfSource{dtype: dt, bits: map[string][]uint16{}, shape: map[string][]int{}}
		add := func(key string, dims ...int) {
			n := 1
			for _, d := range dims {
				n *= d
			}
			bits := make([]uint16, n)
			for i := range bits {
				v := float32(r.NormFloat64() * 0.3)
				if dt == "BF16" {
					bits[i] = uint16(math.Float32bits(v) >> 16)
				} else {
					bits[i] = uint16(r.IntN(0x7c00)) | uint16(r.IntN(2))<<15 // every finite pattern, subnormals included
					if i%3 != 0 {
						bits[i] = f32ToHalfTrunc(v)
					}
				}
			}
			src.bits[key], src.shape[key] = bits, dims
		}
		add("lin.weight", 5, 7)
		add("lin.bias", 5)
		add("conv.weight", 4, 5, 3, 3)
		add("conv.bias", 4)
		x := make([]float32, 2*6*6*7)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		run := func(s Source) ([]float32, *context.Context) {
			ctx := context.New()
			if err := Load(ctx, s); err != nil {
				t.Fatal(err)
			}
			var out []float32
			err := Try(func() {
				e := context.MustNewExec(b, ctx.Reuse(), func(ctx *context.Context, x *Node) *Node {
					y := Linear(ctx.In("lin"), x, 5, true)
					return Conv2D(ctx.In("conv"), y, Conv2DOpts{Out: 4, Kernel: 3, Pad: 1})
				})
				out = Values(e.MustExec(tensors.FromFlatDataAndDimensions(x, 2, 6, 6, 7))[0])
			})
			if err != nil {
				t.Fatal(err)
			}
			return out, ctx
		}
		got, ctx := run(src)
		want, _ := run(f32Only{src})
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: output %d = %g with 16-bit weights, %g with float32", dt, i, got[i], want[i])
			}
		}
		for v := range ctx.IterVariables() {
			if v.Shape().DType == dtypes.Float32 || v.Trainable {
				t.Errorf("%s: weight %s is %s, trainable %v", dt, v.Name(), v.Shape().DType, v.Trainable)
			}
			key := ScopeToKey(v.Scope(), v.Name())
			ref, _, _ := src.Float32(key)
			vals := Values(v.MustValue())
			for i := range ref {
				if math.Float32bits(vals[i]) != math.Float32bits(ref[i]) {
					t.Fatalf("%s: Values(%s)[%d] = %g, want %g", dt, key, i, vals[i], ref[i])
				}
			}
		}
	}
}

// f32ToHalfTrunc is a float16 near v (truncated; normal range only).
func f32ToHalfTrunc(v float32) uint16 {
	b := math.Float32bits(v)
	e := int(b>>23&0xff) - 127 + 15
	if e <= 0 {
		return uint16(b>>16) & 0x8000
	}
	return uint16(b>>16)&0x8000 | uint16(e)<<10 | uint16(b>>13&0x3ff)
}

// TestMaterializeWeights: after MaterializeWeights the weights live in the
// pure-Go backend's shared buffers (no host copy left to collect) and the
// layer gives the same bits.
func TestMaterializeWeights(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(8, 1))
	src := MapSource{}
	w := make([]float32, 6*4)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	src["lin.weight"] = struct {
		Data  []float32
		Shape []int
	}{w, []int{6, 4}}
	x := []float32{1, -2, 0.5, 3, 0.25, -1, 2, 4}
	run := func(materialize bool) []float32 {
		ctx := context.New()
		if err := Load(ctx, src); err != nil {
			t.Fatal(err)
		}
		if materialize {
			if err := MaterializeWeights(b, ctx); err != nil {
				t.Fatal(err)
			}
			for v := range ctx.IterVariables() {
				if tv, _ := v.Value(); !tv.IsShared() {
					t.Errorf("%s not in a shared buffer", v.Name())
				}
			}
		}
		var out []float32
		if err := Try(func() {
			e := context.MustNewExec(b, ctx.Reuse(), func(ctx *context.Context, x *Node) *Node { return Linear(ctx.In("lin"), x, 6, false) })
			out = Values(e.MustExec(tensors.FromFlatDataAndDimensions(x, 2, 4))[0])
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, m := run(false), run(true)
	for i := range a {
		if a[i] != m[i] {
			t.Fatalf("output %d: %g materialized, %g not", i, m[i], a[i])
		}
	}
}
