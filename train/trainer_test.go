package train

import (
	stdctx "context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// tinyRun is a two-layer MLP regressing a fixed random linear map, with
// its data order and noise drawn as the real runs draw them.
type tinyRun struct {
	t    *Trainer
	ord  Order
	x, y [][]float32
}

const tinyIn, tinyOut, tinyBatch = 8, 4, 4

func newTinyRun(t *testing.T, cfg Config) *tinyRun {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	exp := map[string][]int{"l1.weight": {16, tinyIn}, "l1.bias": {16}, "l2.weight": {tinyOut, 16}, "l2.bias": {tinyOut}}
	if err := InitComponent(ctx, "/mlp", exp, 7); err != nil {
		t.Fatal(err)
	}
	loss := func(ctx *context.Context, in []*Node) *Node {
		c := ctx.In("mlp")
		h := nn.SiLU(nn.Linear(c.In("l1"), in[0], 16, true))
		return ReduceAllMean(Square(Sub(nn.Linear(c.In("l2"), h, tinyOut, true), in[1])))
	}
	tr, err := New(b, ctx, cfg, []string{"/mlp"}, loss)
	if err != nil {
		t.Fatal(err)
	}
	r := &tinyRun{t: tr, ord: Order{N: 24, Seed: 3}}
	rnd := StepRand(9, 0, 0)
	w := Normal(rnd, tinyIn*tinyOut)
	for range 24 {
		x := Normal(rnd, tinyIn)
		y := make([]float32, tinyOut)
		for o := range y {
			for i := range x {
				y[o] += w[o*tinyIn+i] * x[i]
			}
		}
		r.x, r.y = append(r.x, x), append(r.y, y)
	}
	return r
}

func (r *tinyRun) batch(step int) ([][]any, error) {
	acc := r.t.Config.Accum
	out := make([][]any, acc)
	for m := range out {
		var xs, ys []float32
		noise := Normal(StepRand(5, step, m), tinyBatch*tinyIn)
		for b := range tinyBatch {
			i := r.ord.Index((step*acc+m)*tinyBatch + b)
			for j, v := range r.x[i] {
				xs = append(xs, v+0.01*noise[b*tinyIn+j])
			}
			ys = append(ys, r.y[i]...)
		}
		out[m] = []any{tensors.FromFlatDataAndDimensions(xs, tinyBatch, tinyIn), tensors.FromFlatDataAndDimensions(ys, tinyBatch, tinyOut)}
	}
	return out, nil
}

func tinyConfig() Config {
	c := DefaultConfig()
	c.LR, c.WarmupSteps, c.Steps, c.Accum, c.EMADecay, c.ClipNorm = 1e-2, 3, 40, 2, 0.9, 0.5
	return c
}

func TestTrainerLossDecreasesOnTinyOverfitSet(t *testing.T) {
	c := tinyConfig()
	c.LR, c.Steps, c.ClipNorm = 3e-2, 150, 0
	r := newTinyRun(t, c)
	if err := r.t.Loop(stdctx.Background(), 150, r.batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	first, last := mean(r.t.Losses[:5]), mean(r.t.Losses[145:])
	if !(last < 0.1*first) {
		t.Fatalf("loss %.4f → %.4f: want a tenth or less", first, last)
	}
}

func mean(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s / float64(len(x))
}

func TestResumeReproducesTheUninterruptedRun(t *testing.T) {
	const n = 10
	dir := t.TempDir()
	straight := newTinyRun(t, tinyConfig())
	if err := straight.t.Loop(stdctx.Background(), 2*n, straight.batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}

	first := newTinyRun(t, tinyConfig())
	if err := first.t.Loop(stdctx.Background(), n, first.batch, LoopOptions{Dir: dir, Every: n, Keep: 1}); err != nil {
		t.Fatal(err)
	}
	// "Kill": the first trainer is dropped; a fresh process resumes.
	resumed := newTinyRun(t, tinyConfig())
	if err := resumed.t.Resume(Latest(dir), nil); err != nil {
		t.Fatal(err)
	}
	if resumed.t.Step != n {
		t.Fatalf("resumed at step %d, want %d", resumed.t.Step, n)
	}
	if err := resumed.t.Loop(stdctx.Background(), 2*n, resumed.batch, LoopOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(resumed.t.Losses) != 2*n {
		t.Fatalf("%d losses after resume, want %d", len(resumed.t.Losses), 2*n)
	}
	for i := range straight.t.Losses {
		if d := math.Abs(float64(straight.t.Losses[i] - resumed.t.Losses[i])); d > 1e-6 {
			t.Errorf("step %d: loss %.9g straight, %.9g resumed", i+1, straight.t.Losses[i], resumed.t.Losses[i])
		}
	}
	for v := range straight.t.Ctx.IterVariables() {
		w := resumed.t.Ctx.GetVariableByScopeAndName(v.Scope(), v.Name())
		a, b := nn.Values(v.MustValue()), nn.Values(w.MustValue())
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s/%s[%d]: %g straight, %g resumed", v.Scope(), v.Name(), i, a[i], b[i])
			}
		}
	}
}

func TestLRScheduleWarmsUpThenDecaysToTheFloor(t *testing.T) {
	c := Config{LR: 1, MinLRFrac: 0.1, WarmupSteps: 10, Steps: 110}
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 0.1}, {9, 1}, {10, 1}, {60, 0.55}, {110, 0.1}, {500, 0.1}} {
		if got := c.LRAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LRAt(%d) = %g, want %g", tc.step, got, tc.want)
		}
	}
}

// An interrupted run writes a final checkpoint, and says so when it cannot:
// the steps since the last checkpoint would otherwise be lost silently.
func TestInterruptReportsAFailedFinalCheckpoint(t *testing.T) {
	r := newTinyRun(t, tinyConfig())
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o644); err != nil { // a file where the folder should be
		t.Fatal(err)
	}
	ctx, cancel := stdctx.WithCancel(stdctx.Background())
	err := r.t.Loop(ctx, 100, r.batch, LoopOptions{Dir: dir, Every: 1000, Progress: func(p Progress) {
		if p.Step == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, stdctx.Canceled) || !strings.Contains(err.Error(), "checkpoint of step 3 could not be written") {
		t.Fatalf("err %v: want the cancellation and the failed checkpoint", err)
	}
}
