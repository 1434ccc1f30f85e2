package simplegofast

import (
	"testing"

	"github.com/x448/float16"
)

// BenchmarkHalfDecode: decoding float16 weights to float32 as the Gather
// executor does (F16C), against the table lookup it replaces, on one
// 1280×1280×3×3 convolution weight (14.7 M values).
func BenchmarkHalfDecode(b *testing.B) {
	const n = 1280 * 1280 * 9
	src := make([]float16.Float16, n)
	for i := range src {
		src[i] = float16.Float16(uint16(i*7919) & 0x7bff)
	}
	dst := make([]float32, n)
	tab := HalfTable()
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"f16c", func() { halfToFloat32(dst, src) }},
		{"lookup", func() {
			for i, h := range src {
				dst[i] = tab[h]
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.f()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/value")
		})
	}
}
