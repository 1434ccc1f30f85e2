package nn

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Micro-benchmarks of the layers on the backend chosen by $LDM_BACKEND
// (default: the pure-Go backend). Each reports GFLOP/s counting 2 flops per
// multiply-add of the matrix products; a forward+backward step counts 3× the
// forward flops (the input and weight gradients each cost one forward). See
// docs/PERFORMANCE.md, "nn micro-benchmarks".
//
//	go test ./nn/ -run '^$' -bench . -benchtime 3x -count 3

var benchBackendOnce = sync.OnceValues(func() (backends.Backend, error) { return NewBackend("") })

// benchBackend is NewBackend(""): $LDM_BACKEND, or the pure-Go backend.
func benchBackend(b *testing.B) backends.Backend {
	b.Helper()
	be, err := benchBackendOnce()
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// runBench compiles fn (the first call), then times b.N calls and reports
// GFLOP/s for flops per call.
func runBench[F ExecGraphFn](b *testing.B, flops float64, fn F, inputs ...any) {
	b.Helper()
	be := benchBackend(b)
	var e *Exec
	compile := func() {
		e = MustNewExec(be, fn)
		for _, t := range e.MustExec(inputs...) { // compile and warm up
			t.FinalizeAll()
		}
	}
	if os.Getenv("NN_BENCH_STOCK_VJP") != "" { // measure GoMLX's own DotGeneral gradient
		compile0 := compile
		compile = func() { withStockGradients(compile0) }
	}
	if err := Try(compile); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPUTime()
	for range b.N {
		for _, t := range e.MustExec(inputs...) {
			t.FinalizeAll()
		}
	}
	elapsed, cpu := time.Since(start), processCPUTime()-cpu0
	b.StopTimer()
	if flops > 0 {
		b.ReportMetric(flops*float64(b.N)/elapsed.Seconds()/1e9, "GFLOP/s")
	}
	b.ReportMetric(elapsed.Seconds()*1e3/float64(b.N), "ms/op")
	// CPU time per op is less sensitive than wall time to other processes
	// sharing the cores (a 2-core machine can spend at most 2 cpu-ms per ms).
	if cpu > 0 {
		b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
	}
}

func benchTensor(seed uint64, dims ...int) *tensors.Tensor {
	return randTensor(rand.New(rand.NewPCG(seed, 1)), dtypes.Float32, dims)
}

// convBench is one convolution size: [1,hw,hw,cin] → cout, k×k, stride s, pad k/2.
type convBench struct {
	hw, cin, cout, k, stride int
}

func (c convBench) flops() float64 {
	ho := (c.hw+2*(c.k/2)-c.k)/c.stride + 1
	return 2 * float64(ho*ho) * float64(c.cin*c.cout*c.k*c.k)
}

func (c convBench) run(b *testing.B, backward bool, conv func(x, w, bias *Node, k, stride, pad int) *Node) {
	x := benchTensor(1, 1, c.hw, c.hw, c.cin)
	w := benchTensor(2, c.cout, c.cin, c.k, c.k)
	bias := benchTensor(3, c.cout)
	if !backward {
		runBench(b, c.flops(), func(x, w, bias *Node) *Node { return conv(x, w, bias, c.k, c.stride, c.k/2) }, x, w, bias)
		return
	}
	runBench(b, 3*c.flops(), func(x, w, bias *Node) []*Node {
		y := conv(x, w, bias, c.k, c.stride, c.k/2)
		return Gradient(ReduceAllSum(Mul(y, y)), x, w, bias)
	}, x, w, bias)
}

var conv3x3 = convBench{hw: 64, cin: 128, cout: 128, k: 3, stride: 1}

// BenchmarkConv3x3Fwd is Conv2D [1,64,64,128]→128, 3×3, stride 1 (1.21 GFLOP).
func BenchmarkConv3x3Fwd(b *testing.B) { conv3x3.run(b, false, conv2DWith) }

// BenchmarkConv3x3FwdBwd adds the gradients with respect to input, weight and bias.
func BenchmarkConv3x3FwdBwd(b *testing.B) { conv3x3.run(b, true, conv2DWith) }

// BenchmarkConv3x3Stride2 is the down-sampling conv, [1,64,64,128]→[1,32,32,128].
func BenchmarkConv3x3Stride2(b *testing.B) {
	c := convBench{hw: 64, cin: 128, cout: 128, k: 3, stride: 2}
	b.Run("fwd", func(b *testing.B) { c.run(b, false, conv2DWith) })
	b.Run("fwdbwd", func(b *testing.B) { c.run(b, true, conv2DWith) })
}

// BenchmarkConv1x1 is [1,64,64,128]→128, 1×1.
func BenchmarkConv1x1(b *testing.B) {
	c := convBench{hw: 64, cin: 128, cout: 128, k: 1, stride: 1}
	b.Run("fwd", func(b *testing.B) { c.run(b, false, conv2DWith) })
	b.Run("fwdbwd", func(b *testing.B) { c.run(b, true, conv2DWith) })
}

// BenchmarkMatMul1024 is Product of two 1024×1024 matrices (2.15 GFLOP).
func BenchmarkMatMul1024(b *testing.B) {
	const n = 1024
	x, w := benchTensor(1, n, n), benchTensor(2, n, n)
	b.Run("fwd", func(b *testing.B) {
		runBench(b, 2*n*n*n, func(x, w *Node) *Node { return Product(x, w) }, x, w)
	})
	b.Run("fwdbwd", func(b *testing.B) {
		runBench(b, 3*2*n*n*n, func(x, w *Node) []*Node {
			y := Product(x, w)
			return Gradient(ReduceAllSum(Mul(y, y)), x, w)
		}, x, w)
	})
}

// BenchmarkAttention is Attention with B=8, T=256, C=64, one head (the
// shape of shared/notes/pure-go-backend.md): 134 MFLOP forward.
func BenchmarkAttention(b *testing.B) {
	const bs, t, c = 8, 256, 64
	q, k, v := benchTensor(1, bs, t, c), benchTensor(2, bs, t, c), benchTensor(3, bs, t, c)
	flops := 2 * 2 * float64(bs*t*t*c)
	b.Run("fwd", func(b *testing.B) {
		runBench(b, flops, func(q, k, v *Node) *Node { return Attention(q, k, v, 1, false) }, q, k, v)
	})
	b.Run("fwdbwd", func(b *testing.B) {
		runBench(b, 3*flops, func(q, k, v *Node) []*Node {
			y := Attention(q, k, v, 1, false)
			return Gradient(ReduceAllSum(Mul(y, y)), q, k, v)
		}, q, k, v)
	})
}

// BenchmarkGroupNorm is GroupNorm(32 groups) on [1,64,64,128] (no flops
// reported: it is memory-bound; compare ms/op).
func BenchmarkGroupNorm(b *testing.B) {
	x := benchTensor(1, 1, 64, 64, 128)
	gamma, beta := benchTensor(2, 128), benchTensor(3, 128)
	gn := func(x, gamma, beta *Node) *Node {
		return groupNormWith(x, gamma, beta, 32, 1e-5)
	}
	b.Run("fwd", func(b *testing.B) { runBench(b, 0, gn, x, gamma, beta) })
	b.Run("fwdbwd", func(b *testing.B) {
		runBench(b, 0, func(x, gamma, beta *Node) []*Node {
			y := gn(x, gamma, beta)
			return Gradient(ReduceAllSum(Mul(y, y)), x, gamma, beta)
		}, x, gamma, beta)
	})
}

// BenchmarkConv3x3Winograd times the two paths of a 3×3 stride-1 Conv2D
// forward at the SD VAE decoder's shapes (at 256² output), im2col and
// Winograd F(2×2,3×3) alternating; compare their cpu-ms/op minimums.
func BenchmarkConv3x3Winograd(b *testing.B) {
	for _, c := range []convBench{
		{hw: 32, cin: 512, cout: 512, k: 3, stride: 1},
		{hw: 128, cin: 256, cout: 256, k: 3, stride: 1},
		{hw: 256, cin: 128, cout: 128, k: 3, stride: 1},
	} {
		for _, path := range []struct {
			name string
			min  int
		}{{"im2col", 0}, {"winograd", 1}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", c.hw, c.hw, c.cin, path.name), func(b *testing.B) {
				withWinograd(path.min, func() { c.run(b, false, conv2DWith) })
			})
		}
	}
}

// BenchmarkConv3x3WinogradFwdBwd is BenchmarkConv3x3FwdBwd's convolution
// (forward and the three gradients) on both paths, as a training step runs it.
func BenchmarkConv3x3WinogradFwdBwd(b *testing.B) {
	for _, path := range []struct {
		name string
		min  int
	}{{"im2col", 0}, {"winograd", 1}} {
		b.Run(path.name, func(b *testing.B) {
			withWinograd(path.min, func() { conv3x3.run(b, true, conv2DWith) })
		})
	}
}
