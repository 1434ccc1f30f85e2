package nn

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
)

// TestExecutorStress runs small training-like graphs many times on the
// pure-Go backend configuration named by $NN_EXECUTOR_STRESS (for example
// "go:ops_parallel", "go:ops_sequential" or "go" with no op mode), failing
// with a goroutine dump if one run hangs. It is skipped unless that variable
// is set; see docs/PERFORMANCE.md for how it was used.
//
//	NN_EXECUTOR_STRESS=go:ops_parallel go test ./nn/ -run ExecutorStress -v
func TestExecutorStress(t *testing.T) {
	config := os.Getenv("NN_EXECUTOR_STRESS")
	if config == "" {
		t.Skip("set NN_EXECUTOR_STRESS to a backend config (e.g. go:ops_parallel) to run")
	}
	runs := 200
	if v, err := strconv.Atoi(os.Getenv("NN_EXECUTOR_RUNS")); err == nil && v > 0 {
		runs = v
	}
	b, err := newConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	b = wrap(b) // the same fix-ups as NewBackend (and the fast executors, if any), without its config rewriting
	r := rand.New(rand.NewPCG(41, 1))
	x := randTensor(r, DType, []int{2, 16, 16, 32})
	w1, w2 := randTensor(r, DType, []int{32, 32, 3, 3}), randTensor(r, DType, []int{32, 32, 3, 3})
	gamma, beta := randTensor(r, DType, []int{32}), randTensor(r, DType, []int{32})
	proj := randTensor(r, DType, []int{6, 32, 32})

	graphs := []struct {
		name string
		fn   any
		args []any
	}{
		// conv → GroupNorm → SiLU, twice, forward and backward.
		{"conv+groupnorm", func(x, w1, w2, gamma, beta *Node) []*Node {
			y := SiLU(groupNormWith(conv2DWith(x, w1, nil, 3, 1, 1), gamma, beta, 8, 1e-5))
			y = SiLU(groupNormWith(conv2DWith(y, w2, nil, 3, 1, 1), gamma, beta, 8, 1e-5))
			return Gradient(ReduceAllSum(Mul(y, y)), x, w1, w2, gamma, beta)
		}, []any{x, w1, w2, gamma, beta}},
		// Six independent branches (product, GELU) at once: the shape in which
		// nested work inside concurrently running ops competes for workers.
		{"wide", func(x, proj *Node) []*Node {
			flat := Reshape(x, 2*16*16, 32)
			var sum *Node
			for i := range 6 {
				p := Reshape(Slice(proj, AxisRange(i, i+1)), 32, 32)
				br := GELU(Product(flat, p))
				if sum == nil {
					sum = br
				} else {
					sum = Add(sum, br)
				}
			}
			return Gradient(ReduceAllSum(Mul(sum, sum)), x, proj)
		}, []any{x, proj}},
	}
	for _, gr := range graphs {
		var e *Exec
		if err := Try(func() {
			switch fn := gr.fn.(type) {
			case func(x, w1, w2, gamma, beta *Node) []*Node:
				e = MustNewExec(b, fn)
			case func(x, proj *Node) []*Node:
				e = MustNewExec(b, fn)
			}
		}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		timeout := 120 * time.Second
		if v, err := time.ParseDuration(os.Getenv("NN_EXECUTOR_TIMEOUT")); err == nil {
			timeout = v
		}
		go func() {
			select {
			case <-done:
			case <-time.After(timeout):
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				fmt.Fprintf(os.Stderr, "HANG: %s on %s did not finish %d runs in %s\n%s", gr.name, config, runs, timeout, buf[:n])
				os.Exit(3)
			}
		}()
		start, cpu0 := time.Now(), processCPUTime()
		err := Try(func() {
			for range runs {
				for _, t := range e.MustExec(gr.args...) {
					t.FinalizeAll()
				}
			}
		})
		close(done)
		if err != nil {
			t.Fatalf("%s: %v", gr.name, err)
		}
		wall, cpu := time.Since(start), processCPUTime()-cpu0
		t.Logf("%s on %s: %d runs, %.1f ms/run wall, %.1f cpu-ms/run", gr.name, config, runs,
			wall.Seconds()*1e3/float64(runs), cpu.Seconds()*1e3/float64(runs))
	}
}
