package gemm

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkPackA(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, kind := range []string{"dense", "transposed"} {
		b.Run(kind, func(b *testing.B) {
			const m, k = 4096, 4096
			a := layout(r, kind, 1, m, k)
			dst := make([]float32, mcMax*kcMax)
			cpu0 := processCPUTime()
			n := 0
			for b.Loop() {
				for i0 := 0; i0 < m; i0 += mcMax {
					mc := min(mcMax, m-i0)
					for k0 := 0; k0 < k; k0 += kcMax {
						packA(dst, &a, 0, i0, mc, k0, kcMax)
						n += mc * kcMax
					}
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e9, "Gelem/s")
			b.ReportMetric(float64(n)/(processCPUTime()-cpu0).Seconds()/1e9, "Gelem/cpu-s")
		})
	}
}

func BenchmarkPackB(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const k, n = 2304, 1280
	saved := archPackRows
	defer func() { archPackRows = saved }()
	for _, kind := range []string{"dense", "dense-gopack", "transposed", "convweight"} {
		archPackRows = saved
		if kind == "dense-gopack" { // the row-major packer in Go, for comparison
			archPackRows, kind = nil, "dense"
		}
		b.Run(kind, func(b *testing.B) {
			op := benchOperand(r, kind, 1, k, n)
			nPanels := (n + nr - 1) / nr
			dst := make([]float32, k*nPanels*nr)
			cpu0 := processCPUTime()
			cnt := 0
			for b.Loop() {
				for k0 := 0; k0 < k; k0 += kcMax {
					kc := min(kcMax, k-k0)
					packB(dst[k0*nPanels*nr:], &op, 0, k0, kc, n, 0, nPanels, activePackBT())
					cnt += kc * n
				}
			}
			b.ReportMetric(float64(cnt)/b.Elapsed().Seconds()/1e9, "Gelem/s")
			b.ReportMetric(float64(cnt)/(processCPUTime()-cpu0).Seconds()/1e9, "Gelem/cpu-s")
		})
	}
}
