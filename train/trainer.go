package train

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/nn"
)

// Config holds the optimiser settings of a run. Zero values take the
// defaults of DefaultConfig where noted.
type Config struct {
	LR          float64 `json:"lr"`
	MinLRFrac   float64 `json:"min_lr_frac"`  // cosine floor as a fraction of LR
	WarmupSteps int     `json:"warmup_steps"` // linear warm-up from 0
	Steps       int     `json:"steps"`        // total optimiser steps (cosine length)
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	// WeightDecay is AdamW's decoupled decay, applied to matrices and
	// convolution kernels only (not to biases and norm scales).
	WeightDecay float64 `json:"weight_decay"`
	ClipNorm    float64 `json:"clip_norm"` // global-norm clipping; 0: none
	// EMADecay is the decay of the exponential moving average of the
	// weights; 0 disables it. The effective decay warms up as
	// min(decay, (1+step)/(10+step)) (the schedule of diffusers' EMAModel).
	EMADecay float64 `json:"ema_decay"`
	Accum    int     `json:"accum"` // micro-batches per optimiser step (≥ 1)
}

// DefaultConfig is AdamW as diffusers' training scripts configure it
// (β 0.9/0.999, ε 1e-8, decay 1e-2), clipping at 1 and EMA 0.999.
func DefaultConfig() Config {
	return Config{LR: 1e-4, MinLRFrac: 0.1, WarmupSteps: 100, Steps: 10000, Beta1: 0.9, Beta2: 0.999,
		Eps: 1e-8, WeightDecay: 1e-2, ClipNorm: 1, EMADecay: 0.999, Accum: 1}
}

func (c Config) validate() error {
	switch {
	case c.LR <= 0:
		return fmt.Errorf("learning rate %g must be positive", c.LR)
	case c.Steps <= 0:
		return fmt.Errorf("steps %d must be positive", c.Steps)
	case c.Accum < 1:
		return fmt.Errorf("gradient accumulation %d must be ≥ 1", c.Accum)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("Adam betas %g, %g must be in [0, 1)", c.Beta1, c.Beta2)
	case c.EMADecay < 0 || c.EMADecay >= 1:
		return fmt.Errorf("EMA decay %g must be in [0, 1)", c.EMADecay)
	}
	return nil
}

// LRAt is the learning rate of optimiser step (0-based): linear warm-up to LR
// over WarmupSteps, then a cosine down to MinLRFrac·LR at Steps.
func (c Config) LRAt(step int) float64 {
	if step < c.WarmupSteps {
		return c.LR * float64(step+1) / float64(c.WarmupSteps)
	}
	span := max(c.Steps-c.WarmupSteps, 1)
	p := math.Min(float64(step-c.WarmupSteps)/float64(span), 1)
	floor := c.LR * c.MinLRFrac
	return floor + (c.LR-floor)*0.5*(1+math.Cos(math.Pi*p))
}

// LossFn builds a scalar loss from one micro-batch's inputs. ctx is the
// training context in Reuse mode: every variable must already exist.
type LossFn func(ctx *context.Context, inputs []*Node) *Node

// Optimiser state lives beside the model in the same context.
const (
	scopeM   = "/train/adam_m"
	scopeV   = "/train/adam_v"
	scopeEMA = "/train/ema"
	scopeAcc = "/train/accum"
)

// Trainer runs optimiser steps of Loss over the variables of Ctx whose
// scope starts with one of the trainable prefixes.
type Trainer struct {
	Config  Config
	Backend backends.Backend
	Ctx     *context.Context
	Loss    LossFn
	// Step is the number of optimiser steps done (restored by a checkpoint).
	Step int
	// Losses is the mean loss of every step done, for the loss curve.
	Losses []float32
	// AfterStep, when set, runs after every successful optimiser step with
	// the step's micro-batches (a second optimiser's update on the same
	// data, such as a discriminator's); its error is the step's error.
	AfterStep func(micro [][]any) error

	vars     []*context.Variable // trainable, sorted by key
	stepExec *context.Exec
	accExec  *context.Exec
	micro    int
}

// New prepares a trainer: it selects the trainable variables (scope prefixes
// such as "/unet"; a variable of /train or FrozenScope is never trainable) and creates the
// AdamW moments, the EMA copy and, with accumulation, the gradient sums.
func New(backend backends.Backend, ctx *context.Context, cfg Config, trainable []string, loss LossFn) (*Trainer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	t := &Trainer{Config: cfg, Backend: backend, Ctx: ctx, Loss: loss}
	for v := range ctx.IterVariables() {
		if strings.HasPrefix(v.Scope(), "/train") || underScope(v.Scope(), FrozenScope) {
			continue
		}
		for _, p := range trainable {
			if underScope(v.Scope(), p) {
				t.vars = append(t.vars, v)
				break
			}
		}
	}
	if len(t.vars) == 0 {
		return nil, fmt.Errorf("no trainable variables under %v", trainable)
	}
	sort.Slice(t.vars, func(i, j int) bool { return t.vars[i].ScopeAndName() < t.vars[j].ScopeAndName() })
	err := nn.Try(func() {
		for _, v := range t.vars {
			shape := v.Shape()
			zeros := func() *tensors.Tensor { return tensors.FromShape(shape) }
			ensure(ctx, scopeM+v.Scope(), v.Name(), zeros)
			ensure(ctx, scopeV+v.Scope(), v.Name(), zeros)
			if cfg.EMADecay > 0 {
				ensure(ctx, scopeEMA+v.Scope(), v.Name(), func() *tensors.Tensor {
					return tensors.FromFlatDataAndDimensions(nn.Values(v.MustValue()), shape.Dimensions...)
				})
			}
			if cfg.Accum > 1 {
				ensure(ctx, scopeAcc+v.Scope(), v.Name(), zeros)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// underScope reports whether scope is p or inside it.
func underScope(scope, p string) bool { return scope == p || strings.HasPrefix(scope, p+"/") }

// ensure creates variable scope/name with value() unless it exists.
func ensure(ctx *context.Context, scope, name string, value func() *tensors.Tensor) *context.Variable {
	if v := ctx.GetVariableByScopeAndName(scope, name); v != nil {
		return v
	}
	return ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, value())
}

func (t *Trainer) aux(prefix string, v *context.Variable) *context.Variable {
	return t.Ctx.GetVariableByScopeAndName(prefix+v.Scope(), v.Name())
}

// NumParams is the number of trainable values.
func (t *Trainer) NumParams() int {
	n := 0
	for _, v := range t.vars {
		n += v.Shape().Size()
	}
	return n
}

// StepResult reports one optimiser step.
type StepResult struct {
	Step     int     // steps done after this one
	Loss     float32 // mean over the micro-batches
	GradNorm float32 // global norm before clipping
	LR       float64
}

// TrainStep runs one optimiser step over cfg.Accum micro-batches, each a list
// of inputs for Loss (tensors or Go values GoMLX accepts).
func (t *Trainer) TrainStep(micro [][]any) (StepResult, error) {
	if len(micro) != t.Config.Accum {
		return StepResult{}, fmt.Errorf("got %d micro-batches, want %d", len(micro), t.Config.Accum)
	}
	var sum float64
	var res StepResult
	err := nn.Try(func() {
		for i, inputs := range micro[:len(micro)-1] {
			if t.accExec == nil {
				t.accExec = context.MustNewExec(t.Backend, t.Ctx, t.accumulateGraph)
			}
			out, err := t.accExec.Exec(inputs...)
			if err != nil {
				panic(fmt.Errorf("micro-batch %d: %w", i, err))
			}
			sum += float64(scalar(out[0]))
		}
		if t.stepExec == nil {
			t.stepExec = context.MustNewExec(t.Backend, t.Ctx, t.stepGraph)
		}
		c := t.Config
		s := t.Step + 1
		lr := c.LRAt(t.Step)
		ema := math.Min(c.EMADecay, float64(1+t.Step)/float64(10+t.Step))
		hyper := []any{float32(lr), float32(1 - math.Pow(c.Beta1, float64(s))), float32(1 - math.Pow(c.Beta2, float64(s))), float32(ema)}
		out, err := t.stepExec.Exec(append(hyper, micro[len(micro)-1]...)...)
		if err != nil {
			panic(err)
		}
		sum += float64(scalar(out[0]))
		res = StepResult{Step: s, Loss: float32(sum / float64(len(micro))), GradNorm: scalar(out[1]), LR: lr}
	})
	if err != nil {
		return res, err
	}
	if math.IsNaN(float64(res.Loss)) || math.IsInf(float64(res.Loss), 0) {
		return res, fmt.Errorf("step %d: loss is %v", res.Step, res.Loss)
	}
	t.Step = res.Step
	t.Losses = append(t.Losses, res.Loss)
	if t.AfterStep != nil {
		if err := t.AfterStep(micro); err != nil {
			return res, fmt.Errorf("step %d: %w", res.Step, err)
		}
	}
	return res, nil
}

func scalar(t *tensors.Tensor) float32 {
	return tensors.MustCopyFlatData[float32](t)[0]
}

// gradients builds the loss and its gradients with respect to the trainable
// variables.
func (t *Trainer) gradients(ctx *context.Context, g *Graph, inputs []*Node) (*Node, []*Node) {
	loss := t.Loss(ctx.Reuse(), inputs)
	if loss.Shape().Size() != 1 {
		panic(fmt.Errorf("loss has shape %s, want a scalar", loss.Shape()))
	}
	loss = Reshape(loss)
	params := make([]*Node, len(t.vars))
	for i, v := range t.vars {
		params[i] = v.ValueGraph(g)
	}
	return loss, Gradient(loss, params...)
}

func (t *Trainer) accumulateGraph(ctx *context.Context, inputs []*Node) []*Node {
	g := inputs[0].Graph()
	loss, grads := t.gradients(ctx, g, inputs)
	for i, v := range t.vars {
		acc := t.aux(scopeAcc, v)
		acc.SetValueGraph(Add(acc.ValueGraph(g), grads[i]))
	}
	return []*Node{loss}
}

func (t *Trainer) stepGraph(ctx *context.Context, inputs []*Node) []*Node {
	g := inputs[0].Graph()
	lr, bc1, bc2, emaDecay := inputs[0], inputs[1], inputs[2], inputs[3]
	loss, grads := t.gradients(ctx, g, inputs[4:])
	c := t.Config
	if c.Accum > 1 {
		for i, v := range t.vars {
			acc := t.aux(scopeAcc, v)
			grads[i] = MulScalar(Add(acc.ValueGraph(g), grads[i]), 1/float64(c.Accum))
			acc.SetValueGraph(ZerosLike(grads[i]))
		}
	}
	sq := make([]*Node, len(grads))
	for i, gr := range grads {
		sq[i] = ReduceAllSum(Square(gr))
	}
	total := sq[0]
	for _, x := range sq[1:] {
		total = Add(total, x)
	}
	norm := Sqrt(total)
	scale := OnesLike(norm)
	if c.ClipNorm > 0 {
		scale = Min(scale, Div(ConstAs(norm, c.ClipNorm), AddScalar(norm, 1e-6)))
	}
	for i, v := range t.vars {
		gr := Mul(grads[i], scale)
		mv, vv := t.aux(scopeM, v), t.aux(scopeV, v)
		m := Add(MulScalar(mv.ValueGraph(g), c.Beta1), MulScalar(gr, 1-c.Beta1))
		s := Add(MulScalar(vv.ValueGraph(g), c.Beta2), MulScalar(Square(gr), 1-c.Beta2))
		mv.SetValueGraph(m)
		vv.SetValueGraph(s)
		upd := Div(Div(m, bc1), AddScalar(Sqrt(Div(s, bc2)), c.Eps))
		w := v.ValueGraph(g)
		if c.WeightDecay > 0 && v.Shape().Rank() >= 2 {
			upd = Add(upd, MulScalar(w, c.WeightDecay))
		}
		w = Sub(w, Mul(lr, upd))
		v.SetValueGraph(w)
		if c.EMADecay > 0 {
			ev := t.aux(scopeEMA, v)
			e := ev.ValueGraph(g)
			ev.SetValueGraph(Add(e, Mul(OneMinus(emaDecay), Sub(w, e))))
		}
	}
	return []*Node{loss, norm}
}

// EvalLoss computes Loss on inputs without changing anything.
func (t *Trainer) EvalLoss(inputs []any) (float32, error) {
	var loss float32
	err := nn.Try(func() {
		out, err := context.ExecOnceN(t.Backend, t.Ctx, func(ctx *context.Context, in []*Node) []*Node {
			return []*Node{Reshape(t.Loss(ctx.Reuse(), in))}
		}, inputs...)
		if err != nil {
			panic(err)
		}
		loss = scalar(out[0])
	})
	return loss, err
}

// EMAValue returns the EMA copy of the trainable variable scope/name, or
// its current value when there is no EMA (or it is not trainable).
func EMAValue(ctx *context.Context, scope, name string) (*tensors.Tensor, error) {
	if v := ctx.GetVariableByScopeAndName(scopeEMA+scope, name); v != nil {
		return v.Value()
	}
	v := ctx.GetVariableByScopeAndName(scope, name)
	if v == nil {
		return nil, errors.New("no variable " + scope + "/" + name)
	}
	return v.Value()
}
