package simplegofast_test

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// BenchmarkElementwise times the softmax ops at the attention-score size
// of the 32×32-latent U-Net ([16, 1024, 1024]: batch 2 × 8 heads) and a few
// other elementwise ops, with simplego's executors ("stock") and this
// package's ("fast"), as graphs on the pure-Go backend.
//
//	go test ./internal/simplegofast -run '^$' -bench Elementwise -benchtime=3x
func BenchmarkElementwise(b *testing.B) {
	const h, q, k = 16, 1024, 1024
	type op struct {
		name string
		dims [][]int
		fn   func(xs []*Node) *Node
	}
	s := []int{h, q, k}
	row := []int{h, q, 1}
	ops := []op{
		{"Exp", [][]int{s}, func(x []*Node) *Node { return Exp(x[0]) }},
		{"ReduceMax_last", [][]int{s}, func(x []*Node) *Node { return ReduceMax(x[0], -1) }},
		{"ReduceSum_last", [][]int{s}, func(x []*Node) *Node { return ReduceSum(x[0], -1) }},
		{"Sub_rowbcast", [][]int{s, row}, func(x []*Node) *Node { return Sub(x[0], x[1]) }},
		{"Div_rowbcast", [][]int{s, row}, func(x []*Node) *Node { return Div(x[0], x[1]) }},
		{"Add_same", [][]int{s, s}, func(x []*Node) *Node { return Add(x[0], x[1]) }},
		{"Mul_chanbcast_2x4096x320", [][]int{{2, 4096, 320}, {1, 1, 320}}, func(x []*Node) *Node { return Mul(x[0], x[1]) }},
		{"Logistic_2x4096x1280", [][]int{{2, 4096, 1280}}, func(x []*Node) *Node { return Logistic(x[0]) }},
		{"Erf_2x4096x1280", [][]int{{2, 4096, 1280}}, func(x []*Node) *Node { return Erf(x[0]) }},
		{"Slice_im2col_2x66x66x320", [][]int{{2, 66, 66, 320}}, func(x []*Node) *Node { return Slice(x[0], AxisRange(), AxisRange(1, 65), AxisRange(2, 66)) }},
		{"Concat_skip_2x4096x(640+320)", [][]int{{2, 4096, 640}, {2, 4096, 320}}, func(x []*Node) *Node { return Concatenate(x, -1) }},
		{"Softmax_last", [][]int{s}, func(x []*Node) *Node { return Softmax(x[0], -1) }},
	}
	be := backend(b)
	r := rand.New(rand.NewPCG(1, 1))
	for _, o := range ops {
		var args []any
		for _, d := range o.dims {
			args = append(args, randTensor(r, d...))
		}
		e := MustNewExec(be, func(xs []*Node) *Node { return o.fn(xs) })
		for _, fast := range []bool{false, true} {
			name := o.name + "/stock"
			if fast {
				name = o.name + "/fast"
			}
			b.Run(name, func(b *testing.B) {
				if fast {
					b.Setenv(simplegofast.EnvFastElementwise, "")
				} else {
					b.Setenv(simplegofast.EnvFastElementwise, "0")
				}
				if err := simplegofast.Enable(); err != nil {
					b.Fatal(err)
				}
				if simplegofast.ElementwiseEnabled() != fast {
					b.Fatal("could not switch the elementwise executors")
				}
				for _, t := range e.MustExec(args...) {
					t.FinalizeAll()
				}
				cpu0 := cpuTime()
				for b.Loop() {
					for _, t := range e.MustExec(args...) {
						t.FinalizeAll()
					}
				}
				if cpu := cpuTime() - cpu0; cpu > 0 {
					b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
				}
			})
		}
	}
}
