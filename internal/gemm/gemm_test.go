package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// reference computes C[b] = A[b]·B[b] in float64 with a triple loop.
func reference(batch, m, n, k int, a, b *Operand) []float64 {
	c := make([]float64, batch*m*n)
	for bb := range batch {
		ab, bbase := a.Batch.at(bb), b.Batch.at(bb)
		for i := range m {
			for j := range n {
				var s float64
				for kk := range k {
					s += float64(a.Data[ab+a.Rows.at(i)+a.Cols.at(kk)]) * float64(b.Data[bbase+b.Rows.at(kk)+b.Cols.at(j)])
				}
				c[(bb*m+i)*n+j] = s
			}
		}
	}
	return c
}

func randData(r *rand.Rand, n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return d
}

// compare checks got against want with a tolerance scaled by the magnitude
// of the sum's terms (√k · typical |a·b|).
func compare(t *testing.T, name string, k int, got []float32, want []float64) {
	t.Helper()
	tol := 1e-5 * math.Sqrt(float64(k)) * 4
	bad := 0
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); d > tol*(1+math.Abs(w)/math.Sqrt(float64(k))) || math.IsNaN(float64(got[i])) {
			if bad < 3 {
				t.Errorf("%s: C[%d] = %g, want %g", name, i, got[i], w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values wrong", name, bad, len(want))
	}
}

// layout builds an operand of batch×rows×cols in one of several memory
// layouts: row-major, transposed, with a gap between rows, with index
// tables (a permuted column axis), or with a batch axis in the middle.
func layout(r *rand.Rand, kind string, batch, rows, cols int) Operand {
	switch kind {
	case "dense":
		return Dense(randData(r, batch*rows*cols), rows, cols, false)
	case "transposed":
		return Dense(randData(r, batch*rows*cols), rows, cols, true)
	case "padded": // rows of cols+3 values, batch entries 7 values apart
		ld := cols + 3
		bs := rows*ld + 7
		return Operand{Data: randData(r, batch*bs), Batch: Axis{Stride: bs}, Rows: Axis{Stride: ld}, Cols: Axis{Stride: 1}}
	case "tables": // [batch, rows, cols] with the columns permuted and rows reversed
		perm := r.Perm(cols)
		rowOff := make([]int, rows)
		for i := range rowOff {
			rowOff[i] = (rows - 1 - i) * cols
		}
		return Operand{Data: randData(r, batch*rows*cols), Batch: Axis{Stride: rows * cols},
			Rows: Axis{Offsets: rowOff}, Cols: Axis{Offsets: perm}}
	case "batchmid": // stored [rows, batch, cols]
		boff := make([]int, batch)
		for i := range boff {
			boff[i] = i * cols
		}
		return Operand{Data: randData(r, batch*rows*cols), Batch: Axis{Offsets: boff}, Rows: Axis{Stride: batch * cols}, Cols: Axis{Stride: 1}}
	case "colstride": // neither axis unit: stored [cols, rows, 2] using every other value
		return Operand{Data: randData(r, batch*rows*cols*2), Batch: Axis{Stride: rows * cols * 2}, Rows: Axis{Stride: 2}, Cols: Axis{Stride: rows * 2}}
	}
	panic(kind)
}

var layouts = []string{"dense", "transposed", "padded", "tables", "batchmid", "colstride"}

// withSchedules runs fn under each schedule.
func withSchedules(t *testing.T, fn func(t *testing.T)) {
	for _, sc := range []int{scheduleSharedB, scheduleSplitN} {
		t.Run([]string{"", "sharedB", "splitN"}[sc], func(t *testing.T) {
			saved := schedule
			schedule = sc
			defer func() { schedule = saved }()
			fn(t)
		})
	}
}

// withKernels runs fn under every kernel level this CPU has: AVX-512
// (wide tiles, AVX2 at the edges), AVX2 alone (as on a CPU without
// AVX-512) and pure Go.
func withKernels(t *testing.T, fn func(t *testing.T)) {
	for _, lv := range availableLevels() {
		saved := kernelLevel
		kernelLevel = lv
		name := activeKernels().name
		kernelLevel = saved
		t.Run(name, func(t *testing.T) {
			saved := kernelLevel
			kernelLevel = lv
			defer func() { kernelLevel = saved }()
			fn(t)
		})
	}
}

func availableLevels() []int {
	var lv []int
	if archWide != nil {
		lv = append(lv, levelBest)
	}
	if archKernel != nil {
		lv = append(lv, levelAVX2)
	}
	return append(lv, levelGeneric)
}

func TestShapes(t *testing.T) {
	shapes := [][4]int{ // batch, m, n, k
		{1, 1, 1, 1}, {1, 7, 13, 5}, {1, 6, 16, 1}, {1, 6, 16, 4}, {1, 5, 15, 3},
		{1, 12, 32, 17}, {1, 13, 33, 257}, {1, 129, 257, 65}, {1, 145, 17, 513},
		{1, 1, 300, 40}, {1, 300, 1, 40}, {3, 7, 13, 5}, {4, 50, 40, 9}, {2, 150, 70, 300},
	}
	if !testing.Short() {
		shapes = append(shapes, [4]int{1, 300, 500, 700}, [4]int{2, 289, 48, 1000})
	}
	withKernels(t, func(t *testing.T) {
		withSchedules(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			for _, s := range shapes {
				batch, m, n, k := s[0], s[1], s[2], s[3]
				for _, la := range layouts {
					for _, lb := range []string{"dense", "transposed", "tables", "batchmid", "colstride"} {
						if m*n*k > 1e6 && (la != "dense" || lb != "transposed") && (la != "transposed" || lb != "dense") {
							continue
						}
						a := layout(r, la, batch, m, k)
						b := layout(r, lb, batch, k, n)
						c := make([]float32, batch*m*n)
						for i := range c {
							c[i] = float32(math.NaN()) // must be overwritten
						}
						if err := BatchedMul(batch, m, n, k, a, b, c); err != nil {
							t.Fatal(err)
						}
						compare(t, fmt.Sprintf("%dx%dx%dx%d A=%s B=%s", batch, m, n, k, la, lb), k, c, reference(batch, m, n, k, &a, &b))
					}
				}
			}
		})
	})
}

// TestThreads checks that every thread count gives the same bits.
func TestThreads(t *testing.T) {
	withSchedules(t, testThreads)
}

func testThreads(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	batch, m, n, k := 3, 301, 77, 600
	a := layout(r, "dense", batch, m, k)
	b := layout(r, "transposed", batch, k, n)
	var first []float32
	for _, th := range []int{1, 2, 3, 8} {
		prev := runtime.GOMAXPROCS(th)
		c := make([]float32, batch*m*n)
		err := BatchedMul(batch, m, n, k, a, b, c)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = c
			compare(t, "threads", k, c, reference(batch, m, n, k, &a, &b))
			continue
		}
		for i := range c {
			if c[i] != first[i] {
				t.Fatalf("GOMAXPROCS=%d: C[%d] = %g, with 1 thread %g", th, i, c[i], first[i])
			}
		}
	}
}

func TestMul(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	withKernels(t, func(t *testing.T) {
		for _, s := range [][3]int{{1, 1, 1}, {7, 13, 5}, {129, 257, 65}, {64, 64, 64}} {
			m, n, k := s[0], s[1], s[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					lda, ldb, ldc := k+2, n+1, n+5
					if ta {
						lda = m + 3
					}
					if tb {
						ldb = k + 4
					}
					rowsA, rowsB := m, k
					if ta {
						rowsA = k
					}
					if tb {
						rowsB = n
					}
					a := randData(r, rowsA*lda)
					b := randData(r, rowsB*ldb)
					c := make([]float32, m*ldc)
					if err := Mul(ta, tb, m, n, k, a, lda, b, ldb, c, ldc); err != nil {
						t.Fatal(err)
					}
					opA := Operand{Data: a, Rows: Axis{Stride: lda}, Cols: Axis{Stride: 1}}
					if ta {
						opA.Rows, opA.Cols = Axis{Stride: 1}, Axis{Stride: lda}
					}
					opB := Operand{Data: b, Rows: Axis{Stride: ldb}, Cols: Axis{Stride: 1}}
					if tb {
						opB.Rows, opB.Cols = Axis{Stride: 1}, Axis{Stride: ldb}
					}
					want := reference(1, m, n, k, &opA, &opB)
					got := make([]float32, m*n)
					for i := range m {
						copy(got[i*n:(i+1)*n], c[i*ldc:i*ldc+n])
					}
					compare(t, fmt.Sprintf("Mul(%v,%v) %dx%dx%d", ta, tb, m, n, k), k, got, want)
				}
			}
		}
	})
}

func TestErrors(t *testing.T) {
	a := Dense(make([]float32, 6), 2, 3, false)
	b := Dense(make([]float32, 12), 3, 4, false)
	if err := BatchedMul(1, 2, 4, 3, a, b, make([]float32, 7)); err == nil {
		t.Error("short C accepted")
	}
	if err := BatchedMul(2, 2, 4, 3, a, b, make([]float32, 16)); err == nil {
		t.Error("short A accepted")
	}
	if err := BatchedMul(1, 2, 4, 3, a, Operand{Data: b.Data, Rows: Axis{Stride: -4}, Cols: Axis{Stride: 1}}, make([]float32, 8)); err == nil {
		t.Error("negative stride accepted")
	}
	if err := BatchedMul(1, 2, 4, 3, a, Operand{Data: b.Data, Rows: Axis{Offsets: []int{0, 4}}, Cols: Axis{Stride: 1}}, make([]float32, 8)); err == nil {
		t.Error("short offset table accepted")
	}
	if err := BatchedMul(1, -1, 4, 3, a, b, nil); err == nil {
		t.Error("negative m accepted")
	}
	// k = 0 gives zeros.
	c := []float32{1, 2, 3, 4}
	if err := BatchedMul(1, 2, 2, 0, a, b, c); err != nil || c[0] != 0 || c[3] != 0 {
		t.Errorf("k=0: %v, C = %v", err, c)
	}
}

// TestKernelLevelsAgree: the AVX-512 kernels add each element's k terms in
// the AVX2 kernel's order, so forcing the AVX2 path (what a CPU without
// AVX-512 runs) gives the same bits, in every schedule, with the wide
// tiles' row and column edges and k blocks; both match the float64
// reference (TestShapes).
func TestKernelLevelsAgree(t *testing.T) {
	if archWide == nil || archKernel == nil {
		t.Skipf("this CPU has no AVX-512F (kernel %s): only one assembly path to compare", KernelName())
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range [][4]int{{1, 6, 32, 4}, {1, 13, 70, 300}, {2, 145, 96, 513}, {1, 301, 48, 40}, {3, 37, 160, 257}} {
		batch, m, n, k := s[0], s[1], s[2], s[3]
		for _, la := range []string{"dense", "transposed", "padded"} {
			a := layout(r, la, batch, m, k)
			b := layout(r, "transposed", batch, k, n)
			withSchedules(t, func(t *testing.T) {
				var got [2][]float32
				for i, lv := range []int{levelBest, levelAVX2} {
					saved := kernelLevel
					kernelLevel = lv
					got[i] = make([]float32, batch*m*n)
					err := BatchedMul(batch, m, n, k, a, b, got[i])
					kernelLevel = saved
					if err != nil {
						t.Fatal(err)
					}
				}
				compare(t, fmt.Sprintf("avx512 %v A=%s", s, la), k, got[0], reference(batch, m, n, k, &a, &b))
				for i := range got[0] {
					if got[0][i] != got[1][i] {
						t.Fatalf("%v A=%s: C[%d] = %g with AVX-512, %g with AVX2", s, la, i, got[0][i], got[1][i])
					}
				}
			})
		}
	}
}
