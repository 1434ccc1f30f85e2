package simplegofast

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

func TestElementwiseEnabled(t *testing.T) {
	if err := Enable(); err != nil {
		t.Fatal(err)
	}
	if !ElementwiseEnabled() {
		t.Fatal("elementwise executors not installed:", elemFailed)
	}
	for op, f := range elemExecs {
		if !sameFunc(sgNodeExecutors[op], f) {
			t.Fatalf("%s executor not installed", op)
		}
	}
	Disable()
	if ElementwiseEnabled() {
		t.Fatal("still enabled after Disable")
	}
	for op := range elemExecs {
		if !sameFunc(sgNodeExecutors[op], elemStock[op]) {
			t.Fatalf("%s executor not restored", op)
		}
	}
	t.Setenv(EnvFastElementwise, "0")
	if err := Enable(); err != nil || ElementwiseEnabled() {
		t.Fatalf("%s=0: err %v, elementwise enabled %v", EnvFastElementwise, err, ElementwiseEnabled())
	}
	t.Setenv(EnvFastElementwise, "")
	if err := Enable(); err != nil || !ElementwiseEnabled() {
		t.Fatal("re-Enable failed", err)
	}
}

// TestElementwiseVsStock compares every executor with simplego's on random
// shapes with random broadcasts and edge sizes, with and without operand
// ownership (buffer reuse).
func TestElementwiseVsStock(t *testing.T) {
	if err := Enable(); err != nil {
		t.Fatal(err)
	}
	b, err := simplego.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 7, 8, 9, 33, 64, 100, 1031}
	randDims := func() []int {
		rank := r.IntN(5)
		d := make([]int, rank)
		total := 1
		for i := range d {
			d[i] = sizes[r.IntN(len(sizes))]
			for total*d[i] > 1<<17 {
				d[i] = 1 + d[i]/4
			}
			total *= d[i]
		}
		return d
	}
	unary := []backends.OpType{backends.OpTypeExp, backends.OpTypeLogistic, backends.OpTypeErf}
	binary := []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv}
	reduce := []backends.OpType{backends.OpTypeReduceMax, backends.OpTypeReduceSum}
	var cases []elemCase
	cases = append(cases, elemSelfTestCases...)
	cases = append(cases,
		elemCase{op: backends.OpTypeExp, lhs: []int{3, 70000}}, // parallel
		elemCase{op: backends.OpTypeSub, lhs: []int{4, 300, 333}, rhs: []int{4, 300, 1}},
		elemCase{op: backends.OpTypeDiv, lhs: []int{2, 1, 40000}, rhs: []int{2, 3, 1}},
		elemCase{op: backends.OpTypeReduceMax, lhs: []int{16, 64, 1025}, axes: []int{2}},
		elemCase{op: backends.OpTypeReduceSum, lhs: []int{1, 3000, 77}, axes: []int{1}},
		elemCase{op: backends.OpTypeReduceSum, lhs: []int{5, 3000, 77}, axes: []int{1}},
		elemCase{op: backends.OpTypeSlice, lhs: []int{2, 66, 66, 320}, axes: []int{0, 1, 2, 0}, limits: []int{2, 65, 66, 320}, strides: []int{1, 1, 1, 1}},
	)
	for range 300 {
		d := randDims()
		switch k := r.IntN(5); k {
		case 4:
			if len(d) == 0 {
				continue
			}
			ax := r.IntN(len(d))
			rr := append([]int(nil), d...)
			rr[ax] = sizes[r.IntN(4)]
			cases = append(cases, elemCase{op: backends.OpTypeConcatenate, lhs: d, rhs: rr, axes: []int{ax}})
		case 3:
			if len(d) == 0 {
				continue
			}
			c := elemCase{op: backends.OpTypeSlice, lhs: d}
			for _, n := range d {
				st := r.IntN(n)
				lim := st + 1 + r.IntN(n-st)
				stride := 1
				if r.IntN(3) == 0 {
					stride = 1 + r.IntN(3)
				}
				c.axes, c.limits, c.strides = append(c.axes, st), append(c.limits, lim), append(c.strides, stride)
			}
			cases = append(cases, c)
		case 0:
			cases = append(cases, elemCase{op: unary[r.IntN(len(unary))], lhs: d})
		case 1:
			l, rr := append([]int(nil), d...), append([]int(nil), d...)
			for i := range d {
				switch r.IntN(4) {
				case 0:
					l[i] = 1
				case 1:
					rr[i] = 1
				}
			}
			if r.IntN(8) == 0 {
				l = []int{}
			}
			cases = append(cases, elemCase{op: binary[r.IntN(4)], lhs: l, rhs: rr})
		case 2:
			if len(d) == 0 {
				continue
			}
			var axes []int
			for a := range d {
				if r.IntN(2) == 0 {
					axes = append(axes, a)
				}
			}
			if len(axes) == 0 {
				axes = []int{r.IntN(len(d))}
			}
			cases = append(cases, elemCase{op: reduce[r.IntN(2)], lhs: d, axes: axes})
		}
	}
	before := elemCalls.Load()
	for _, owned := range []bool{false, true} {
		for _, c := range cases {
			if err := runElemCase(b, r, c, dtypes.Float32, owned); err != nil && !isNotTaken(err, c) {
				t.Fatalf("owned=%v: %v", owned, err)
			}
		}
		for _, c := range elemSelfTestCases[:8] {
			if err := runElemCase(b, r, c, dtypes.Float64, owned); err != nil {
				t.Fatalf("float64 owned=%v: %v", owned, err)
			}
		}
	}
	t.Logf("%d cases, %d fast executions", 2*len(cases), elemCalls.Load()-before)
}

// isNotTaken accepts "fast path not taken" for reductions over non-adjacent
// axes (delegated on purpose).
func isNotTaken(err error, c elemCase) bool {
	if c.op != backends.OpTypeReduceMax && c.op != backends.OpTypeReduceSum {
		return false
	}
	return err != nil && len(err.Error()) > 0 && containsStr(err.Error(), "fast path not taken")
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
