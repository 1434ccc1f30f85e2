package simplegofast_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/ldm-project/ldm/internal/simplegofast"
	"github.com/ldm-project/ldm/nn"
)

// backend is nn's pure-Go backend (it has the Pad op that gradients of
// Slice need); nn's DotGeneral gradient is two DotGenerals, the transposed
// products this package must get right.
func backend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withAndWithout runs fn with the stock executor and with the fast one and
// returns both results.
func withAndWithout(t *testing.T, fn func() []*tensors.Tensor) (stock, fast []*tensors.Tensor) {
	t.Helper()
	simplegofast.Disable()
	n0 := simplegofast.FastCalls()
	stock = fn()
	if n := simplegofast.FastCalls(); n != n0 {
		t.Fatalf("%d products went to gemm with the hook disabled", n-n0)
	}
	if err := simplegofast.Enable(); err != nil {
		t.Fatal(err)
	}
	fast = fn()
	if simplegofast.FastCalls() == n0 {
		t.Fatal("no product went to gemm with the hook enabled")
	}
	return stock, fast
}

func flat(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	var out []float64
	switch v := x.Value().(type) {
	case float32:
		return []float64{float64(v)}
	case float64:
		return []float64{v}
	}
	tensors.ConstFlatData(x, func(f []float32) {
		for _, v := range f {
			out = append(out, float64(v))
		}
	})
	return out
}

func agree(t *testing.T, name string, stock, fast []*tensors.Tensor) {
	t.Helper()
	if len(stock) != len(fast) {
		t.Fatalf("%s: %d results, stock %d", name, len(fast), len(stock))
	}
	for i := range stock {
		if !stock[i].Shape().Equal(fast[i].Shape()) {
			t.Fatalf("%s: result %d shape %s, stock %s", name, i, fast[i].Shape(), stock[i].Shape())
		}
		w, g := flat(t, stock[i]), flat(t, fast[i])
		scale := 1.0
		for _, v := range w {
			scale = max(scale, math.Abs(v))
		}
		for j := range w {
			if d := math.Abs(g[j] - w[j]); !(d <= 1e-4*scale) {
				t.Fatalf("%s: result %d element %d = %g, stock %g", name, i, j, g[j], w[j])
			}
		}
	}
}

func randTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(d, dims...)
}

// randomCase draws a DotGeneral with random batch, contracting and cross
// axes placed in random order in each operand.
func randomCase(r *rand.Rand) (lhsDims []int, lc, lb []int, rhsDims []int, rc, rb []int) {
	nb, nc := r.IntN(3), 1+r.IntN(3)
	nlx, nrx := r.IntN(3), r.IntN(3)
	dim := func() int { return 1 + r.IntN(9) }
	batch, contr := make([]int, nb), make([]int, nc)
	for i := range batch {
		batch[i] = dim()
	}
	for i := range contr {
		contr[i] = dim()
	}
	contr[0] += r.IntN(2) * 30 // sometimes more than one k block in all
	place := func(ncross int) (dims []int, c, b []int) {
		rank := nb + nc + ncross
		perm := r.Perm(rank)
		dims = make([]int, rank)
		for i := range nb {
			dims[perm[i]] = batch[i]
			b = append(b, perm[i])
		}
		for i := range nc {
			dims[perm[nb+i]] = contr[i]
			c = append(c, perm[nb+i])
		}
		for i := range ncross {
			dims[perm[nb+nc+i]] = dim()
			if i == 0 {
				dims[perm[nb+nc+i]] += r.IntN(2) * 20 // more than one register tile
			}
		}
		return
	}
	lhsDims, lc, lb = place(nlx)
	rhsDims, rc, rb = place(nrx)
	return
}

func TestGraphDotGeneral(t *testing.T) {
	b := backend(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		ld, lc, lb, rd, rc, rb := randomCase(r)
		name := fmt.Sprintf("%d: %v c%v b%v · %v c%v b%v", i, ld, lc, lb, rd, rc, rb)
		x, y := randTensor(r, ld...), randTensor(r, rd...)
		e := MustNewExec(b, func(x, y *Node) *Node {
			return DotGeneral(x, slices.Clone(lc), slices.Clone(lb), y, slices.Clone(rc), slices.Clone(rb))
		})
		stock, fast := withAndWithout(t, func() []*tensors.Tensor { return e.MustExec(x, y) })
		agree(t, name, stock, fast)
	}
}

func TestGraphEinsum(t *testing.T) {
	b := backend(t)
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		eq   string
		x, y []int
	}{
		{"ij,jk->ik", []int{33, 70}, []int{70, 19}},
		{"ij,kj->ik", []int{33, 70}, []int{19, 70}},
		{"ji,jk->ik", []int{70, 33}, []int{70, 19}},
		{"bqhd,bkhd->bhqk", []int{2, 37, 3, 8}, []int{2, 29, 3, 8}},
		{"bhqk,bkhd->bqhd", []int{2, 3, 37, 29}, []int{2, 29, 3, 8}},
		{"bij,bjk->bik", []int{4, 7, 300}, []int{4, 300, 21}},
	}
	for _, c := range cases {
		x, y := randTensor(r, c.x...), randTensor(r, c.y...)
		e := MustNewExec(b, func(x, y *Node) *Node { return Einsum(c.eq, x, y) })
		stock, fast := withAndWithout(t, func() []*tensors.Tensor { return e.MustExec(x, y) })
		agree(t, c.eq, stock, fast)
	}
}

// TestGraphGradients differentiates DotGenerals (nn's VJP: two more
// DotGenerals with transposed layouts) and nn's layers.
func TestGraphGradients(t *testing.T) {
	b := backend(t)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		ld, lc, lb, rd, rc, rb := randomCase(r)
		name := fmt.Sprintf("grad %d: %v c%v b%v · %v c%v b%v", i, ld, lc, lb, rd, rc, rb)
		x, y := randTensor(r, ld...), randTensor(r, rd...)
		e := MustNewExec(b, func(x, y *Node) []*Node {
			z := DotGeneral(x, slices.Clone(lc), slices.Clone(lb), y, slices.Clone(rc), slices.Clone(rb))
			loss := ReduceAllSum(Mul(z, z))
			return append([]*Node{loss}, Gradient(loss, x, y)...)
		})
		stock, fast := withAndWithout(t, func() []*tensors.Tensor { return e.MustExec(x, y) })
		agree(t, name, stock, fast)
	}
	// An im2col convolution and an attention, as nn builds them.
	x := randTensor(r, 2, 9, 9, 5)
	w := randTensor(r, 7, 5, 3, 3)
	e := MustNewExec(b, func(x, w *Node) []*Node {
		dims := x.Shape().Dimensions
		var taps []*Node
		for dy := range 3 {
			for dx := range 3 {
				taps = append(taps, Slice(x, AxisRange(), AxisRange(dy, dy+dims[1]-2), AxisRange(dx, dx+dims[2]-2), AxisRange()))
			}
		}
		cols := Reshape(Concatenate(taps, -1), dims[0]*(dims[1]-2)*(dims[2]-2), 3, 3, dims[3])
		y := DotGeneral(cols, []int{1, 2, 3}, nil, w, []int{2, 3, 1}, nil)
		loss := ReduceAllSum(Mul(y, y))
		return append([]*Node{loss}, Gradient(loss, x, w)...)
	})
	stock, fast := withAndWithout(t, func() []*tensors.Tensor { return e.MustExec(x, w) })
	agree(t, "conv gradient", stock, fast)

	q, k, v := randTensor(r, 2, 13, 16), randTensor(r, 2, 11, 16), randTensor(r, 2, 11, 16)
	e = MustNewExec(b, func(q, k, v *Node) []*Node {
		out := nn.Attention(q, k, v, 2, false)
		loss := ReduceAllSum(Mul(out, out))
		return append([]*Node{loss}, Gradient(loss, q, k, v)...)
	})
	stock, fast = withAndWithout(t, func() []*tensors.Tensor { return e.MustExec(q, k, v) })
	agree(t, "attention gradient", stock, fast)
}
