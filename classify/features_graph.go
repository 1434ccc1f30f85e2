package classify

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
	"github.com/ldm-project/ldm/train"
)

// StageFeatures builds the classifier's convolution stages on x [B,H,W,3]
// (NHWC, values in [-1, 1]; any H and W the stages divide) with the
// variables Forward uses, and returns every stage's output
// [B, H/2^(i+1), W/2^(i+1), Channels[i]]: the intermediate activations a
// perceptual loss compares, as nodes of the caller's graph so that
// gradients flow through them. Forward is these stages followed by pooling
// and the heads (TestStageFeaturesMatchForward keeps the two in step).
func StageFeatures(ctx *context.Context, cfg Config, x *Node) []*Node {
	h := x
	out := make([]*Node, 0, len(cfg.Channels))
	for i, ch := range cfg.Channels {
		s := ctx.In("stages").In(fmt.Sprint(i))
		h = nn.Conv2D(s.In("down"), h, nn.Conv2DOpts{Out: ch, Kernel: 3, Stride: 2, Pad: 1})
		h = nn.SiLU(nn.GroupNorm(s.In("norm_down"), h, cfg.Groups, 1e-5))
		r := nn.Conv2D(s.In("conv"), h, nn.Conv2DOpts{Out: ch, Kernel: 3, Pad: 1})
		h = Add(h, nn.SiLU(nn.GroupNorm(s.In("norm"), r, cfg.Groups, 1e-5)))
		out = append(out, h)
	}
	return out
}

// Weights returns a copy of the model's weights under the keys Save writes
// (stages.0.down.weight, …), to load into another context.
func (m *Model) Weights() (nn.MapSource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	src := nn.MapSource{}
	for v := range m.ctx.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return nil, err
		}
		src[nn.ScopeToKey(v.Scope(), v.Name())] = struct {
			Data  []float32
			Shape []int
		}{nn.Values(t), v.Shape().Dimensions}
	}
	return src, nil
}

// PerceptualNet is the model as the frozen feature network of a VAE's
// perceptual loss (train.VAELossOpts.Perceptual): the outputs of its
// convolution stages on NCHW images (the heads are not used). name identifies it in the
// run description, so that a resumed run is checked against it.
func (m *Model) PerceptualNet(name string) (*train.FeatureNet, error) {
	w, err := m.Weights()
	if err != nil {
		return nil, err
	}
	// Only the stages' weights: the heads take no part in the loss.
	stages := nn.MapSource{}
	for k, v := range w {
		if strings.HasPrefix(k, "stages.") {
			stages[k] = v
		}
	}
	cfg := m.Config
	return &train.FeatureNet{
		Name:    name,
		Weights: stages,
		Features: func(ctx *context.Context, x *Node) []*Node {
			return StageFeatures(ctx, cfg, Transpose(Transpose(x, 1, 2), 2, 3))
		},
	}, nil
}
