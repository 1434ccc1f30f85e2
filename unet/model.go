package unet

import (
	"fmt"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Model is a UNet2DConditionModel: its config and the context holding its
// weights under diffusers keys. Config is fixed by New: make a new Model for
// another config.
type Model struct {
	Config Config
	Ctx    *context.Context

	plan *plan

	mu           sync.Mutex
	execs        map[backends.Backend]*context.Exec
	controlExecs map[backends.Backend]*context.Exec // with ControlNet residuals (RunWithControl)
}

// New validates cfg and returns a model without weights: load them with
// LoadWeights, or create random ones with InitWeights.
func New(cfg Config) (*Model, error) {
	p, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Ctx: context.New(), plan: p, execs: map[backends.Backend]*context.Exec{},
		controlExecs: map[backends.Backend]*context.Exec{}}, nil
}

var (
	keysBackend     backends.Backend
	keysBackendErr  error
	keysBackendOnce sync.Once
)

// ExpectedKeys returns every weight key the model reads and its shape, found
// by building the graph for a small input (nothing runs).
func (m *Model) ExpectedKeys() (map[string][]int, error) {
	keysBackendOnce.Do(func() { keysBackend, keysBackendErr = nn.NewBackend("go") })
	if keysBackendErr != nil {
		return nil, fmt.Errorf("unet: %w", keysBackendErr)
	}
	c := m.Config
	f := c.DownFactor()
	cross := m.crossDim()
	keys, err := nn.ExpectedKeys(keysBackend, func(ctx *context.Context, g *Graph) {
		sample := Parameter(g, "sample", shapes.Make(nn.DType, 1, c.InChannels, f, f))
		t := Parameter(g, "timesteps", shapes.Make(nn.DType, 1))
		ehs := Parameter(g, "encoder_hidden_states", shapes.Make(nn.DType, 1, 1, cross))
		m.Apply(ctx, sample, t, ehs)
	})
	if err != nil {
		return nil, fmt.Errorf("unet: building the graph: %w", err)
	}
	return keys, nil
}

// crossDim is the width of encoder_hidden_states the attention layers expect
// (0 when the U-Net has none).
func (m *Model) crossDim() int {
	for _, b := range slices.Concat(m.plan.down, m.plan.up) {
		if b.attn != nil {
			return b.attn.crossDim
		}
	}
	if m.plan.mid != nil {
		return m.plan.mid.attn.crossDim
	}
	return 1
}

// LoadWeights copies src (diffusers keys) into the model's context and then
// checks it against the config: missing, unexpected and misshapen weights are
// named in the error.
func (m *Model) LoadWeights(src nn.Source) error {
	if err := nn.Load(m.Ctx, src); err != nil {
		return fmt.Errorf("unet: loading weights: %w", err)
	}
	expected, err := m.ExpectedKeys()
	if err != nil {
		return err
	}
	if problems := nn.WeightMismatch(m.Ctx, expected, src.Keys()); problems != "" {
		return fmt.Errorf("unet: the weights do not match the config (wrong config.json or not a UNet2DConditionModel): %s", problems)
	}
	return nil
}

// InitWeights gives the model fresh random weights, for training from
// scratch and benchmarks: convolution and linear weights uniform in
// ±1/√fan_in (PyTorch's default bound), biases 0, norm scales 1. The same
// seed gives the same weights.
func (m *Model) InitWeights(seed uint64) error {
	expected, err := m.ExpectedKeys()
	if err != nil {
		return err
	}
	return nn.Load(m.Ctx, nn.RandomSource(expected, seed))
}

// Run evaluates the U-Net on host data with the loaded weights: sample NCHW
// [B,C,H,W], one timestep per sample or a single one for all, encoder hidden
// states [B,T,D]. It returns the NCHW output [B,out_channels,H,W]. One graph
// is compiled per backend and input shape and reused by later calls.
func (m *Model) Run(backend backends.Backend, sample []float32, sampleShape []int, timesteps []float32,
	ehs []float32, ehsShape []int) (out []float32, err error) {
	return m.RunWithControl(backend, sample, sampleShape, timesteps, ehs, ehsShape, nil, nil)
}

// RunWithControl is Run with ControlNet residuals added (see Control):
// control holds one NCHW tensor per skip connection, then the mid block's,
// with their shapes; none runs the plain U-Net.
func (m *Model) RunWithControl(backend backends.Backend, sample []float32, sampleShape []int, timesteps []float32,
	ehs []float32, ehsShape []int, control [][]float32, controlShapes [][]int) (out []float32, err error) {
	c := m.Config
	if len(sampleShape) != 4 || sampleShape[1] != c.InChannels || prod(sampleShape) != len(sample) {
		return nil, fmt.Errorf("unet: sample must be [B,%d,H,W] with matching data, got shape %v and %d values",
			c.InChannels, sampleShape, len(sample))
	}
	b := sampleShape[0]
	if err := c.CheckSize(sampleShape[2], sampleShape[3]); err != nil {
		return nil, err
	}
	if len(timesteps) != 1 && len(timesteps) != b {
		return nil, fmt.Errorf("unet: %d timesteps for a batch of %d: give one per sample or a single one", len(timesteps), b)
	}
	if len(ehsShape) != 3 || ehsShape[0] != b || ehsShape[2] != m.crossDim() || prod(ehsShape) != len(ehs) {
		return nil, fmt.Errorf("unet: encoder_hidden_states must be [%d,T,%d] with matching data, got shape %v and %d values",
			b, m.crossDim(), ehsShape, len(ehs))
	}
	if len(control) != len(controlShapes) {
		return nil, fmt.Errorf("unet: %d control residuals with %d shapes", len(control), len(controlShapes))
	}
	for i, v := range control {
		if len(controlShapes[i]) != 4 || prod(controlShapes[i]) != len(v) {
			return nil, fmt.Errorf("unet: control residual %d has shape %v and %d values", i, controlShapes[i], len(v))
		}
	}
	m.mu.Lock()
	cache := m.execs
	if len(control) > 0 {
		cache = m.controlExecs
	}
	e := cache[backend]
	if e == nil {
		err = nn.Try(func() {
			e = context.MustNewExec(backend, m.Ctx.Reuse(), func(ctx *context.Context, in []*Node) *Node {
				var ctl *Control
				if n := len(in) - 3; n > 0 {
					ctl = &Control{Down: in[3 : 3+n-1], Mid: in[3+n-1]}
				}
				return m.Apply(ctx, in[0], in[1], in[2], WithControl(ctl))
			})
		})
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("unet: %w", err)
		}
		cache[backend] = e
	}
	m.mu.Unlock()
	err = nn.Try(func() {
		args := []any{
			tensors.FromFlatDataAndDimensions(sample, sampleShape...),
			tensors.FromFlatDataAndDimensions(timesteps, len(timesteps)),
			tensors.FromFlatDataAndDimensions(ehs, ehsShape...)}
		for i, v := range control {
			args = append(args, tensors.FromFlatDataAndDimensions(v, controlShapes[i]...))
		}
		res := e.MustExec(args...)
		out = nn.Values(res[0])
		for _, r := range res {
			r.FinalizeAll()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	return out, nil
}

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
