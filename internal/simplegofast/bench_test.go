package simplegofast_test

import (
	"math/rand/v2"
	"os"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// BenchmarkDotGeneral times the U-Net's matrix products as graphs on the
// pure-Go backend, with GoMLX's DotGeneral ("stock") and with this
// package's ("fast"), in the layouts nn builds them. The stock runs take
// seconds each: they run only with LDM_BENCH_STOCK=1.
//
//	go test ./internal/simplegofast -run '^$' -bench DotGeneral -benchtime=1x
func BenchmarkDotGeneral(b *testing.B) {
	type shape struct {
		name  string
		x, y  []int
		flops float64
		fn    func(x, y *Node) *Node
	}
	shapes := []shape{
		{"1024cube", []int{1024, 1024}, []int{1024, 1024}, 2 * 1024 * 1024 * 1024,
			func(x, y *Node) *Node { return DotGeneral(x, []int{1}, nil, y, []int{0}, nil) }},
		{"conv_8192x2880x320", []int{8192, 3, 3, 320}, []int{320, 320, 3, 3}, 2 * 8192 * 2880 * 320,
			func(x, y *Node) *Node { return DotGeneral(x, []int{1, 2, 3}, nil, y, []int{2, 3, 1}, nil) }},
		{"conv_2048x5760x640", []int{2048, 3, 3, 640}, []int{640, 640, 3, 3}, 2 * 2048 * 5760 * 640,
			func(x, y *Node) *Node { return DotGeneral(x, []int{1, 2, 3}, nil, y, []int{2, 3, 1}, nil) }},
		{"conv_128x11520x1280", []int{128, 3, 3, 1280}, []int{1280, 1280, 3, 3}, 2 * 128 * 11520 * 1280,
			func(x, y *Node) *Node { return DotGeneral(x, []int{1, 2, 3}, nil, y, []int{2, 3, 1}, nil) }},
		{"linear_8192x320x320", []int{2, 4096, 320}, []int{320, 320}, 2 * 8192 * 320 * 320,
			func(x, y *Node) *Node { return DotGeneral(x, []int{2}, nil, y, []int{1}, nil) }},
		{"attn_qk_16x4096x4096x40", []int{2, 4096, 8, 40}, []int{2, 4096, 8, 40}, 2 * 16 * 4096 * 4096 * 40,
			func(x, y *Node) *Node { return Einsum("bqhd,bkhd->bhqk", x, y) }},
		{"attn_pv_16x4096x40x4096", []int{2, 8, 4096, 4096}, []int{2, 4096, 8, 40}, 2 * 16 * 4096 * 4096 * 40,
			func(x, y *Node) *Node { return Einsum("bhqk,bkhd->bqhd", x, y) }},
	}
	be := backend(b)
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range shapes {
		x, y := randTensor(r, s.x...), randTensor(r, s.y...)
		e := MustNewExec(be, s.fn)
		for _, fast := range []bool{false, true} {
			name := s.name + "/stock"
			if fast {
				name = s.name + "/fast"
			}
			b.Run(name, func(b *testing.B) {
				if !fast && os.Getenv("LDM_BENCH_STOCK") == "" {
					b.Skip("GoMLX's DotGeneral takes seconds per product: set LDM_BENCH_STOCK=1")
				}
				if fast {
					if err := simplegofast.Enable(); err != nil {
						b.Fatal(err)
					}
				} else {
					simplegofast.Disable()
					defer simplegofast.Enable()
				}
				for _, t := range e.MustExec(x, y) { // warm up (compiles on first use)
					t.FinalizeAll()
				}
				cpu0 := cpuTime()
				for b.Loop() {
					for _, t := range e.MustExec(x, y) {
						t.FinalizeAll()
					}
				}
				b.ReportMetric(s.flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if cpu := cpuTime() - cpu0; cpu > 0 {
					b.ReportMetric(s.flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}
