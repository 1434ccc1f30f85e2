package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are the products of the SD1.5 U-Net (batch 2, 64×64 latents)
// plus the classic square one. The layouts are the ones the graph feeds
// DotGeneral: im2col patches row-major, the conv weight [O,I,kh,kw] read
// with the contracted axes permuted (an offset table), attention keys
// transposed.
var benchShapes = []struct {
	name           string
	batch, m, n, k int
	la, lb         string
}{
	{"1024cube", 1, 1024, 1024, 1024, "dense", "dense"},
	{"conv_8192x2880x320", 1, 8192, 320, 2880, "dense", "convweight"},
	{"conv_2048x5760x640", 1, 2048, 640, 5760, "dense", "convweight"},
	{"linear_8192x320x320", 1, 8192, 320, 320, "dense", "transposed"},
	{"attn_qk_16x4096x4096x40", 16, 4096, 4096, 40, "dense", "transposed"},
	{"attn_pv_16x4096x40x4096", 16, 4096, 40, 4096, "dense", "dense"},
	// Low resolution convolutions: a big weight against few pixels, with
	// k in im2col order (the weight gathered) or in the weight's order (the
	// pixels gathered).
	{"conv_128x11520x1280", 1, 128, 1280, 11520, "dense", "convweight"},
	{"conv_128x11520x1280_wk", 1, 128, 1280, 11520, "im2colT", "transposed"},
	{"conv_32x11520x1280", 1, 32, 1280, 11520, "dense", "convweight"},
	{"conv_32x11520x1280_wk", 1, 32, 1280, 11520, "im2colT", "transposed"},
	{"linear_154x768x3072", 1, 154, 3072, 768, "dense", "transposed"},
}

func benchOperand(r *rand.Rand, kind string, batch, rows, cols int) Operand {
	switch kind {
	case "convweight":
	case "im2colT":
		// rows = pixels, cols = I·3·3 in the weight's (I, kh, kw) order,
		// stored [pixels, kh, kw, I].
		in := cols / 9
		offs := make([]int, cols)
		for i := range in {
			for t := range 9 {
				offs[i*9+t] = t*in + i
			}
		}
		return Operand{Data: randData(r, batch*rows*cols), Batch: Axis{Stride: rows * cols},
			Rows: Axis{Stride: cols}, Cols: Axis{Offsets: offs}}
	default:
		return layout(r, kind, batch, rows, cols)
	}
	// rows = I·3·3 contracted in (kh, kw, I) order, cols = O; stored [O, I, 3, 3].
	in := rows / 9
	offs := make([]int, rows)
	for t := range 9 {
		for i := range in {
			offs[t*in+i] = i*9 + t
		}
	}
	return Operand{Data: randData(r, batch*rows*cols), Batch: Axis{Stride: rows * cols},
		Rows: Axis{Offsets: offs}, Cols: Axis{Stride: rows}}
}

func BenchmarkGemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		b.Run(fmt.Sprintf("%s/%s", KernelName(), s.name), func(b *testing.B) {
			a := benchOperand(r, s.la, s.batch, s.m, s.k)
			bb := benchOperand(r, s.lb, s.batch, s.k, s.n)
			c := make([]float32, s.batch*s.m*s.n)
			cpu0 := processCPUTime()
			for b.Loop() {
				if err := BatchedMul(s.batch, s.m, s.n, s.k, a, bb, c); err != nil {
					b.Fatal(err)
				}
			}
			flops := 2 * float64(s.batch*s.m*s.n) * float64(s.k)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu := processCPUTime() - cpu0; cpu > 0 {
				// Per core actually used: unaffected by other processes
				// sharing the machine (as long as caches aren't thrashed).
				b.ReportMetric(flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
			}
		})
	}
}

// BenchmarkKernel measures the micro-kernels alone on L1-resident panels.
func BenchmarkKernel(b *testing.B) {
	const kc = 256
	r := rand.New(rand.NewPCG(1, 1))
	a, bb := randData(r, kc*mr), randData(r, 2*kc*nr)
	c := make([]float32, 2*mr*nr)
	run := func(name string, tile int, kern func()) {
		b.Run(name, func(b *testing.B) {
			cpu0 := processCPUTime()
			for b.Loop() {
				for range 100 {
					kern()
				}
			}
			flops := 2 * float64(tile*kc) * 100 * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu := processCPUTime() - cpu0; cpu > 0 {
				b.ReportMetric(flops/cpu.Seconds()/1e9, "GFLOP/cpu-s")
			}
		})
	}
	if archWide != nil {
		run(archWideName, 2*mr*nr, func() { archWide(kc, a, bb, c, 2*nr, true) })
	}
	if archKernel != nil {
		run(archKernelName, mr*nr, func() { archKernel(kc, a, bb, c, nr, true) })
	}
	run("generic-go", mr*nr, func() { genericKernel(kc, a, bb, c, nr, true) })
}

// BenchmarkGemmLevels times the SD1.5 products with each kernel level in
// turn, alternating, so that a shared machine's load hits them alike.
func BenchmarkGemmLevels(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		a := benchOperand(r, s.la, s.batch, s.m, s.k)
		bb := benchOperand(r, s.lb, s.batch, s.k, s.n)
		c := make([]float32, s.batch*s.m*s.n)
		for _, lv := range availableLevels() {
			if lv == levelGeneric {
				continue
			}
			saved := kernelLevel
			kernelLevel = lv
			name := activeKernels().name
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				cpu0 := processCPUTime()
				for b.Loop() {
					if err := BatchedMul(s.batch, s.m, s.n, s.k, a, bb, c); err != nil {
						b.Fatal(err)
					}
				}
				flops := 2 * float64(s.batch*s.m*s.n) * float64(s.k)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if cpu := processCPUTime() - cpu0; cpu > 0 {
					b.ReportMetric(flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
				}
			})
			kernelLevel = saved
		}
	}
}
