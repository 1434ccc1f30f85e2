package classify

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

func randomClassifier(t *testing.T) *Model {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Task: "custom", Size: 16, Channels: []int{8, 16}, Groups: 4,
		Heads: []Head{{Field: "color", Labels: []string{"red", "green", "blue"}}}}
	exp, err := ExpectedKeys(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(b, cfg, nn.RandomSource(exp, 5))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The last of StageFeatures, averaged over positions, is Forward's feature
// vector: the stages a perceptual loss compares are the classifier's own.
func TestStageFeaturesMatchForward(t *testing.T) {
	m := randomClassifier(t)
	const n, s = 2, 16
	x := train.Normal(train.StepRand(1, 0, 0), n*s*s*3)
	for i := range x {
		x[i] = float32(math.Tanh(float64(x[i])))
	}
	p, err := m.Run(x, n)
	if err != nil {
		t.Fatal(err)
	}
	w, err := m.Weights()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := nn.Load(ctx, w); err != nil {
		t.Fatal(err)
	}
	out, err := context.ExecOnceN(m.Backend, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
		st := StageFeatures(ctx, m.Config, in[0])
		if len(st) != len(m.Config.Channels) {
			t.Errorf("%d stages, want %d", len(st), len(m.Config.Channels))
		}
		return []*Node{ReduceMean(st[len(st)-1], 1, 2)}
	}, tensors.FromFlatDataAndDimensions(x, n, s, s, 3))
	if err != nil {
		t.Fatal(err)
	}
	got := nn.Values(out[0])
	for i := range n {
		for j, want := range p.Features[i] {
			if d := math.Abs(float64(got[i*m.Config.FeatureDim()+j]) - want); d > 1e-5 {
				t.Fatalf("image %d feature %d: %g from the stages, %g from Forward", i, j, got[i*m.Config.FeatureDim()+j], want)
			}
		}
	}
}

// PerceptualNet hands train the stages' weights only and runs them on NCHW
// images of any size the stages divide (the VAE trains on crops).
func TestPerceptualNetUsesTheStagesOnNCHWImages(t *testing.T) {
	m := randomClassifier(t)
	net, err := m.PerceptualNet("custom")
	if err != nil {
		t.Fatal(err)
	}
	if net.Name != "custom" {
		t.Errorf("name %q", net.Name)
	}
	for _, k := range net.Weights.Keys() {
		if !strings.HasPrefix(k, "stages.") {
			t.Errorf("perceptual weights include %s", k)
		}
	}
	ctx := context.New()
	if err := nn.Load(ctx, net.Weights); err != nil {
		t.Fatal(err)
	}
	out, err := context.ExecOnceN(m.Backend, ctx.Reuse(), func(ctx *context.Context, in []*Node) []*Node {
		return net.Features(ctx, in[0])
	}, tensors.FromShape(shapes.Make(nn.DType, 3, 3, 8, 12)))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{3, 4, 6, 8}, {3, 2, 3, 16}}
	for i, o := range out {
		if d := o.Shape().Dimensions; len(d) != 4 || d[0] != want[i][0] || d[1] != want[i][1] || d[2] != want[i][2] || d[3] != want[i][3] {
			t.Errorf("stage %d: %v, want %v", i, d, want[i])
		}
	}
}
