package baselines

import (
	stdctx "context"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/internal/testutil"
	"github.com/ldm-project/ldm/nn"
)

var goBackend = testutil.GoBackend

// eval runs a graph function on float32 inputs and returns its outputs.
func evalGraph(t *testing.T, fn func(g *Graph, in []*Node) []*Node, inputs ...*tensors.Tensor) [][]float32 {
	t.Helper()
	b := goBackend(t)
	var out [][]float32
	err := nn.Try(func() {
		args := make([]any, len(inputs))
		for i, x := range inputs {
			args[i] = x
		}
		res, err := context.ExecOnceN(b, context.New(), func(ctx *context.Context, in []*Node) []*Node {
			return fn(in[0].Graph(), in)
		}, args...)
		if err != nil {
			panic(err)
		}
		for _, r := range res {
			out = append(out, nn.Values(r))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func f32(data []float32, dims ...int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.8g, want %.8g (±%g)", name, got, want, tol)
	}
}

func TestGaussianKLMatchesClosedForm(t *testing.T) {
	// Sample 0: N((1,0), diag(1,4)); sample 1: the prior itself.
	mean := []float32{1, 0, 0, 0}
	logvar := []float32{0, float32(math.Log(4)), 0, 0}
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node { return []*Node{GaussianKL(in[0], in[1])} },
		f32(mean, 2, 2), f32(logvar, 2, 2))
	want := 0.5*(1+1-1-0) + 0.5*(0+4-1-math.Log(4))
	near(t, "KL", float64(out[0][0]), want, 1e-6)
	near(t, "KL(prior‖prior)", float64(out[0][1]), 0, 0)
}

func TestReparameteriseAndGaussianNLL(t *testing.T) {
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		z := Reparameterise(in[0], in[1], in[2])
		nll := GaussianNLL(ZerosLike(in[3]), in[3], 0.1)
		return []*Node{z, nll}
	}, f32([]float32{1}, 1, 1), f32([]float32{float32(math.Log(4))}, 1, 1), f32([]float32{0.5}, 1, 1),
		f32([]float32{0.1, 0.1, 0.1, 0.1}, 1, 1, 2, 2))
	near(t, "μ+σε", float64(out[0][0]), 2, 1e-6)
	near(t, "NLL", float64(out[1][0]), 4*(0.01/0.02+0.5*math.Log(2*math.Pi*0.01)), 1e-5)
}

func TestQuantisePicksNearestCode(t *testing.T) {
	codebook := []float32{0, 0, 1, 1, -2, 0}
	z := []float32{0.9, 0.8, -1.5, 0.2, 0.1, -0.1, 0.6, 0.6}
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		idx, zq := Quantise(in[0], in[1])
		return []*Node{ConvertDType(idx, nn.DType), zq}
	}, f32(z, 4, 2), f32(codebook, 3, 2))
	for i, want := range []float32{1, 2, 0, 1} {
		if out[0][i] != want {
			t.Errorf("code of row %d = %v, want %v", i, out[0][i], want)
		}
	}
	for i, want := range []float32{1, 1, -2, 0, 0, 0, 1, 1} {
		near(t, "zq", float64(out[1][i]), float64(want), 0)
	}
}

func TestStraightThroughGradientIsIdentity(t *testing.T) {
	z := []float32{0.3, -1.2, 2.5}
	zq := []float32{0, -1, 3}
	w := []float32{2, -3, 5}
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		st := StraightThrough(in[0], in[1])
		loss := ReduceAllSum(Mul(st, in[2]))
		grads := Gradient(loss, in[0], in[1])
		return []*Node{st, grads[0], grads[1]}
	}, f32(z, 3), f32(zq, 3), f32(w, 3))
	for i := range z {
		near(t, "forward = zq", float64(out[0][i]), float64(zq[i]), 1e-6)
		near(t, "∂/∂z = upstream", float64(out[1][i]), float64(w[i]), 1e-6)
		near(t, "∂/∂zq = 0", float64(out[2][i]), 0, 0)
	}
}

func TestVQLossValuesAndStopGradients(t *testing.T) {
	// z − zq = (1, −2, 0, 3): mean square 14/4 for both terms.
	z := []float32{1, 0, 2, 3}
	zq := []float32{0, 2, 2, 0}
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		cb, commit := VQLosses(in[0], in[1])
		gcb := Gradient(cb, in[0], in[1])
		gcm := Gradient(commit, in[0], in[1])
		return []*Node{cb, commit, gcb[0], gcb[1], gcm[0], gcm[1]}
	}, f32(z, 2, 2), f32(zq, 2, 2))
	near(t, "codebook loss", float64(out[0][0]), 3.5, 1e-6)
	near(t, "commitment loss", float64(out[1][0]), 3.5, 1e-6)
	for i := range z {
		d := float64(z[i] - zq[i])
		near(t, "codebook ∂/∂z", float64(out[2][i]), 0, 0)
		near(t, "codebook ∂/∂e", float64(out[3][i]), -d/2, 1e-6) // 2(e−z)/4
		near(t, "commit ∂/∂z", float64(out[4][i]), d/2, 1e-6)
		near(t, "commit ∂/∂e", float64(out[5][i]), 0, 0)
	}
}

func TestCrossEntropyOfUniformLogitsIsLnK(t *testing.T) {
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		return []*Node{CrossEntropy(in[0], Const(g, []int32{3, 0}))}
	}, f32(make([]float32, 10), 2, 5))
	near(t, "CE", float64(out[0][0]), math.Log(5), 1e-6)
}

func TestEpsLossOfPerfectPredictorIsZero(t *testing.T) {
	m, err := NewDDPM(PixelUNetConfig(8), 50, "ddpm")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n, s = 4, 8
	x0 := make([]float32, n*3*s*s)
	for i := range x0 {
		x0[i] = float32(r.Float64()*2 - 1)
	}
	xt, ts, eps, err := m.Batch(r, x0, n, s)
	if err != nil {
		t.Fatal(err)
	}
	// The oracle inverts x_t = √ᾱ x0 + √(1−ᾱ) ε.
	oracle := make([]float32, len(xt))
	per := 3 * s * s
	sumSq := 0.0
	for i := range xt {
		ab := float64(m.Schedule.AlphasCumprod[int(ts[i/per])])
		oracle[i] = float32((float64(xt[i]) - math.Sqrt(ab)*float64(x0[i])) / math.Sqrt(1-ab))
		sumSq += float64(eps[i]) * float64(eps[i])
	}
	out := evalGraph(t, func(g *Graph, in []*Node) []*Node {
		return []*Node{EpsLoss(in[0], in[1]), EpsLoss(in[0], ZerosLike(in[0]))}
	}, f32(eps, n, 3, s, s), f32(oracle, n, 3, s, s))
	near(t, "perfect predictor", float64(out[0][0]), 0, 1e-8)
	near(t, "zero predictor = mean ε²", float64(out[1][0]), sumSq/float64(len(eps)), 1e-5)
}

func TestPriorIsCausal(t *testing.T) {
	b := goBackend(t)
	p := Prior{K: 5, T: 6, Width: 16, Layers: 1, Heads: 2, Scope: "prior"}
	ctx := context.New()
	if err := p.Init(b, ctx, 1); err != nil {
		t.Fatal(err)
	}
	rt := NewRuntime(b, ctx)
	fn := func(ctx *context.Context, in []*Node) []*Node { return []*Node{p.Logits(ctx, in[0])} }
	a := []int32{1, 2, 3, 4, 0, 1}
	c := []int32{1, 2, 3, 0, 4, 4} // differs from position 3 on
	oa, err := rt.Run("logits", fn, tensors.FromFlatDataAndDimensions(a, 1, 6))
	if err != nil {
		t.Fatal(err)
	}
	oc, err := rt.Run("logits", fn, tensors.FromFlatDataAndDimensions(c, 1, 6))
	if err != nil {
		t.Fatal(err)
	}
	la, lc := Floats(oa[0]), Floats(oc[0])
	for pos := range 6 {
		diff := 0.0
		for k := range 5 {
			diff = math.Max(diff, math.Abs(float64(la[pos*5+k]-lc[pos*5+k])))
		}
		// Position i predicts token i from tokens < i: positions ≤ 3 agree.
		if pos <= 3 && diff > 1e-6 {
			t.Errorf("position %d sees a later token: logits differ by %g", pos, diff)
		}
		if pos > 3 && diff == 0 {
			t.Errorf("position %d ignores earlier tokens", pos)
		}
	}
}

// TestAncestralSamplingWithTheExactPredictorRecoversThePointMass: for data
// that is one image c, the exact noise predictor is (x_t − √ᾱ_t c)/√(1−ᾱ_t),
// and the last ancestral step (ᾱ_0 = α_0, no noise) lands exactly on c.
func TestAncestralSamplingWithTheExactPredictorRecoversThePointMass(t *testing.T) {
	m, err := NewDDPM(PixelUNetConfig(8), 100, "ddpm")
	if err != nil {
		t.Fatal(err)
	}
	c := []float32{0.5, -0.25, 0.9, -0.8}
	oracle := func(x []float32, step int) ([]float32, error) {
		ab := float64(m.Schedule.AlphasCumprod[step])
		e := make([]float32, len(x))
		for i := range x {
			e[i] = float32((float64(x[i]) - math.Sqrt(ab)*float64(c[i])) / math.Sqrt(1-ab))
		}
		return e, nil
	}
	x, err := m.Ancestral(stdctx.Background(), oracle, rand.New(rand.NewPCG(5, 5)), len(c))
	if err != nil {
		t.Fatal(err)
	}
	for i := range c {
		near(t, "sample", float64(x[i]), float64(c[i]), 1e-4)
	}
	ctx, cancel := stdctx.WithCancel(stdctx.Background())
	cancel()
	if _, err := m.Ancestral(ctx, oracle, rand.New(rand.NewPCG(5, 5)), len(c)); err == nil {
		t.Error("a cancelled context must stop sampling")
	}
}

// TestNLLBoundWithTheExactPredictor: for a point mass the exact predictor
// makes every denoising KL term zero, so the bound is the prior term plus the
// decoder term, both computed here in closed form.
func TestNLLBoundWithTheExactPredictor(t *testing.T) {
	m, err := NewDDPM(PixelUNetConfig(8), 20, "ddpm")
	if err != nil {
		t.Fatal(err)
	}
	c := []float32{0, -1, 1, float32(2*200)/255 - 1} // on the 8-bit grid
	var x0Mem []float32
	oracle := func(x []float32, step int) ([]float32, error) {
		ab := float64(m.Schedule.AlphasCumprod[step])
		e := make([]float32, len(x))
		for i := range x {
			e[i] = float32((float64(x[i]) - math.Sqrt(ab)*float64(x0Mem[i])) / math.Sqrt(1-ab))
		}
		return e, nil
	}
	x0Mem = c
	got, err := m.NLL(stdctx.Background(), oracle, c, 1, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Schedule
	abT := float64(s.AlphasCumprod[len(s.Betas)-1])
	sigma := math.Sqrt(float64(s.Betas[0]))
	phi := func(z float64) float64 { return 0.5 * (1 + math.Erf(z/math.Sqrt2)) }
	want := 0.0
	for _, v := range c {
		mean := math.Sqrt(abT) * float64(v)
		want += 0.5 * (-math.Log(1-abT) + (1 - abT) + mean*mean - 1)
		// Decoder centred on the value: an interior bin has mass
		// Φ(δ/σ) − Φ(−δ/σ); an edge bin Φ(δ/σ).
		d := (1.0 / 255) / sigma
		p := phi(d) - phi(-d)
		if v == -1 || v == 1 {
			p = phi(d)
		}
		want -= math.Log(p)
	}
	near(t, "bound (nats)", got[0], want, 1e-3)
}

func TestCorruption(t *testing.T) {
	x := make([]float32, 20000)
	for i := range x {
		x[i] = 0.5
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name            string
		c               Corruption
		zeros, meanDiff float64 // expected fraction of zeros, mean |Δ| of the kept values
	}{
		{"none", Corruption{}, 0, 0},
		{"all dropped", Corruption{Dropout: 1}, 1, 0},
		{"dropout 0.25", Corruption{Dropout: 0.25}, 0.25, 0},
		{"noise 0.1", Corruption{Noise: 0.1}, 0, 0.1 * math.Sqrt(2/math.Pi)}, // E|N(0,σ²)| = σ√(2/π)
	} {
		y := tc.c.Apply(r, x)
		zeros, diff, kept := 0, 0.0, 0
		for i, v := range y {
			if v == 0 {
				zeros++
				continue
			}
			kept++
			diff += math.Abs(float64(v - x[i]))
		}
		near(t, tc.name+" dropped", float64(zeros)/float64(len(x)), tc.zeros, 0.015)
		if kept > 0 {
			near(t, tc.name+" mean |noise|", diff/float64(kept), tc.meanDiff, 0.003)
		}
	}
}
