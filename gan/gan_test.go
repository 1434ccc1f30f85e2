package gan

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

func evalGraph(t *testing.T, fn func(ctx *context.Context, in []*Node) []*Node, inputs ...any) [][]float32 {
	t.Helper()
	return evalIn(t, context.New(), fn, inputs...)
}

func evalIn(t *testing.T, ctx *context.Context, fn func(ctx *context.Context, in []*Node) []*Node, inputs ...any) [][]float32 {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	err = nn.Try(func() {
		res, err := context.ExecOnceN(b, ctx, fn, inputs...)
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

func TestLossesAtKnownPoints(t *testing.T) {
	for _, tc := range []struct {
		name       string
		real, fake float32
		wantD      float64
		wantG      float64
	}{
		// D = σ(0) = ½ everywhere: −ln ½ − ln ½.
		{"D=1/2", 0, 0, 2 * math.Ln2, math.Ln2},
		// A confident, correct discriminator: 2·ln(1+e^−10); the generator
		// then pays −ln σ(−10) = ln(1+e^10).
		{"confident", 10, -10, 2 * math.Log1p(math.Exp(-10)), math.Log1p(math.Exp(10))},
		// Large logits must not overflow.
		{"fooled", -100, 100, 200, 0},
	} {
		out := evalGraph(t, func(ctx *context.Context, in []*Node) []*Node {
			return []*Node{DiscriminatorLoss(in[0], in[1]), GeneratorLoss(in[1])}
		}, []float32{tc.real, tc.real}, []float32{tc.fake, tc.fake})
		if d := math.Abs(float64(out[0][0]) - tc.wantD); d > 1e-4*math.Max(1, tc.wantD) {
			t.Errorf("%s: D loss %g, want %g", tc.name, out[0][0], tc.wantD)
		}
		if d := math.Abs(float64(out[1][0]) - tc.wantG); d > 1e-4*math.Max(1, tc.wantG) {
			t.Errorf("%s: G loss %g, want %g", tc.name, out[1][0], tc.wantG)
		}
	}
}

func TestBatchNormAndLeakyReLU(t *testing.T) {
	// Two channels over a batch of 4: (1,2,3,4) and (10,10,10,14).
	x := []float32{1, 10, 2, 10, 3, 10, 4, 14}
	ctx := context.New()
	ctx.In("bn").VariableWithValue("weight", []float32{1, 1})
	ctx.In("bn").VariableWithValue("bias", []float32{0, 0})
	out := evalIn(t, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
		return []*Node{BatchNorm(ctx.In("bn"), in[0], 0), LeakyReLU(in[1], 0.2)}
	}, tensors.FromFlatDataAndDimensions(x, 4, 2), []float32{-2, 3})
	// Channel 0: mean 2.5, biased variance 1.25.
	for i, v := range []float64{1, 2, 3, 4} {
		want := (v - 2.5) / math.Sqrt(1.25)
		if math.Abs(float64(out[0][2*i])-want) > 1e-5 {
			t.Errorf("bn[%d,0] = %g, want %g", i, out[0][2*i], want)
		}
	}
	// Channel 1: mean 11, variance 3: (14−11)/√3.
	if math.Abs(float64(out[0][7])-3/math.Sqrt(3)) > 1e-5 {
		t.Errorf("bn[3,1] = %g, want √3", out[0][7])
	}
	if out[1][0] != -0.4 || out[1][1] != 3 {
		t.Errorf("LeakyReLU(−2, 3) = %v, want [-0.4 3]", out[1])
	}
}

// TestEachPlayerLowersItsLoss trains the discriminator against a fixed
// generator, then the generator against the fixed discriminator: each
// player's loss must fall (the alternating game itself need not).
func TestEachPlayerLowersItsLoss(t *testing.T) {
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	m := GAN{Config: Config{Size: 16, Z: 8, Channels: []int{8, 16}}, Scope: "gan"}
	ctx := context.New()
	if err := m.Init(b, ctx, 1); err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig()
	cfg.LR, cfg.Beta1, cfg.WarmupSteps, cfg.Steps, cfg.EMADecay, cfg.WeightDecay = 2e-3, 0.5, 0, 30, 0, 0
	d, g, err := m.Trainers(b, ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	r := rand.New(rand.NewPCG(3, 4))
	realX := make([]float32, n*3*16*16)
	for i := range realX {
		realX[i] = float32(math.Sin(float64(i)/7)) * 0.8
	}
	real := tensors.FromFlatDataAndDimensions(realX, n, 3, 16, 16)
	z := func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions(train.Normal(r, n*8), n, 8) }
	var dl []float32
	for range 20 {
		res, err := d.TrainStep([][]any{{real, z()}})
		if err != nil {
			t.Fatal(err)
		}
		dl = append(dl, res.Loss)
	}
	var gl []float32
	for range 20 {
		res, err := g.TrainStep([][]any{{z()}})
		if err != nil {
			t.Fatal(err)
		}
		gl = append(gl, res.Loss)
	}
	t.Logf("D loss %.3f → %.3f, G loss %.3f → %.3f", dl[0], dl[19], gl[0], gl[19])
	if !(dl[19] < 0.5*dl[0]) {
		t.Errorf("discriminator loss %.3f → %.3f, want halved", dl[0], dl[19])
	}
	if !(gl[19] < 0.7*gl[0]) {
		t.Errorf("generator loss %.3f → %.3f, want below 0.7×", gl[0], gl[19])
	}
	// One alternating step runs both.
	if _, _, err := Step(d, g, real, z(), z()); err != nil {
		t.Fatal(err)
	}
}
