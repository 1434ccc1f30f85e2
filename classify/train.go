package classify

import (
	stdctx "context"
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:staticcheck // the graph DSL reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/ldm-project/ldm/data"
	"github.com/ldm-project/ldm/eval"
	"github.com/ldm-project/ldm/train"
)

// Scope is where the classifier's variables live in a training context.
const Scope = "/classifier"

// Run describes a classifier training run; it is stored in every
// checkpoint so that a resume needs only the run folder.
type Run struct {
	Data string `json:"data"`
	// Model is the classifier; its heads are filled from the data's labels
	// when empty.
	Model  Config   `json:"model"`
	Fields []string `json:"fields"`
	Batch  int      `json:"batch"`
	Seed   uint64   `json:"seed"`
	// Shift moves each training image by up to ±Shift pixels (edge pixels
	// repeated); Flip mirrors half of them horizontally.
	Shift int          `json:"shift"`
	Flip  bool         `json:"flip"`
	Cache string       `json:"cache,omitempty"` // data loader cache folder
	Train train.Config `json:"train"`
}

// Trainer is a classifier run ready to Loop.
type Trainer struct {
	*train.Trainer
	Run      Run
	TrainSet *Labeled
	HeldOut  *Labeled // nil when the data has no held-out split
	ord      train.Order
}

// NewTrainer loads the data and builds a fresh classifier, or, with resume
// set to a checkpoint, continues the run stored there (its settings win;
// run.Data, when set, says where the data is now).
func NewTrainer(ctx stdctx.Context, backend backends.Backend, run Run, resume string) (*Trainer, error) {
	if resume != "" {
		dataDir := run.Data
		if err := train.ReadCheckpointExtra(resume, &run); err != nil {
			return nil, err
		}
		if dataDir != "" {
			run.Data = dataDir
		}
	}
	if run.Batch < 1 {
		return nil, fmt.Errorf("batch %d: want at least 1", run.Batch)
	}
	if run.Shift < 0 || run.Shift >= run.Model.Size/2 {
		return nil, fmt.Errorf("shift %d: want 0 to %d", run.Shift, run.Model.Size/2-1)
	}
	ds, err := data.Open(run.Data)
	if err != nil {
		return nil, err
	}
	if len(run.Model.Heads) == 0 {
		if run.Model.Heads, err = HeadsFor(ds, run.Fields); err != nil {
			return nil, err
		}
	}
	if err := run.Model.Validate(); err != nil {
		return nil, err
	}
	trainDS, heldDS, err := SplitHeldOut(ds)
	if err != nil {
		if ds.Split("train").Len() > 0 {
			return nil, err
		}
		trainDS, heldDS = ds, nil // no split column at all: train on everything
	}
	t := &Trainer{Run: run}
	if t.TrainSet, err = LoadLabeled(ctx, trainDS, run.Model.Size, run.Model.Heads, run.Cache); err != nil {
		return nil, err
	}
	if heldDS != nil {
		if t.HeldOut, err = LoadLabeled(ctx, heldDS, run.Model.Size, run.Model.Heads, run.Cache); err != nil {
			return nil, err
		}
	}
	expected, err := ExpectedKeys(backend, run.Model)
	if err != nil {
		return nil, err
	}
	gctx := context.New()
	if err := train.InitComponent(gctx, Scope, expected, run.Seed); err != nil {
		return nil, err
	}
	cfg := run.Model
	loss := func(ctx *context.Context, in []*Node) *Node {
		_, logits := Forward(ctx.In(Scope[1:]), cfg, in[0])
		var total *Node
		for h, l := range logits {
			onehot := OneHot(in[1+h], len(cfg.Heads[h].Labels), l.DType())
			ce := Neg(ReduceAllMean(ReduceSum(Mul(onehot, LogSoftmax(l)), -1)))
			if total == nil {
				total = ce
			} else {
				total = Add(total, ce)
			}
		}
		return total
	}
	if t.Trainer, err = train.New(backend, gctx, run.Train, []string{Scope}, loss); err != nil {
		return nil, err
	}
	if resume != "" {
		if err := t.Resume(resume, nil); err != nil {
			return nil, err
		}
	}
	t.ord = train.Order{N: t.TrainSet.Len(), Seed: run.Seed}
	return t, nil
}

// Batch returns the one micro-batch of step per accumulation slot: images in
// data order with the step's random shifts and flips, and their labels. It
// depends on (seed, step) only, so a resumed run sees the same batches.
func (t *Trainer) Batch(step int) ([][]any, error) {
	r := t.Run
	s := r.Model.Size
	out := make([][]any, r.Train.Accum)
	for m := range out {
		idx := make([]int, r.Batch)
		for i := range idx {
			idx[i] = t.ord.Index((step*r.Train.Accum+m)*r.Batch + i)
		}
		x := t.TrainSet.NHWC(idx)
		augment(train.StepRand(r.Seed, step, m), x, r.Batch, s, r.Shift, r.Flip)
		in := []any{tensors.FromFlatDataAndDimensions(x, r.Batch, s, s, 3)}
		for h := range r.Model.Heads {
			lab := make([]int32, r.Batch)
			for i, k := range idx {
				lab[i] = int32(max(0, t.TrainSet.Labels[h][k]))
			}
			in = append(in, tensors.FromFlatDataAndDimensions(lab, r.Batch))
		}
		out[m] = in
	}
	return out, nil
}

// augment shifts each of the b NHWC images of x by up to ±shift pixels on
// each axis (repeating edge pixels) and mirrors it with probability ½ when
// flip is set, in place.
func augment(r *rand.Rand, x []float32, b, s, shift int, flip bool) {
	per := s * s * 3
	tmp := make([]float32, per)
	for n := range b {
		dx, dy, mirror := 0, 0, false
		if shift > 0 {
			dx, dy = r.IntN(2*shift+1)-shift, r.IntN(2*shift+1)-shift
		}
		if flip {
			mirror = r.IntN(2) == 1
		}
		if dx == 0 && dy == 0 && !mirror {
			continue
		}
		img := x[n*per : (n+1)*per]
		copy(tmp, img)
		for y := range s {
			sy := min(s-1, max(0, y-dy))
			for xx := range s {
				sx := min(s-1, max(0, xx-dx))
				if mirror {
					sx = s - 1 - sx
				}
				copy(img[(y*s+xx)*3:(y*s+xx)*3+3], tmp[(sy*s+sx)*3:(sy*s+sx)*3+3])
			}
		}
	}
}

// Model returns an inference classifier holding the EMA weights (the
// current weights when the run has no EMA).
func (t *Trainer) Model() (*Model, error) {
	src, err := train.ComponentSource(t.Ctx, Scope, true)
	if err != nil {
		return nil, err
	}
	return New(t.Backend, t.Run.Model, src)
}

// Export writes the EMA weights and the config as a classifier folder.
func (t *Trainer) Export(dir string) error {
	src, err := train.ComponentSource(t.Ctx, Scope, true)
	if err != nil {
		return err
	}
	return Save(dir, t.Run.Model, src)
}

// HeadAccuracy is one head's accuracy on a labelled set.
type HeadAccuracy struct {
	Field   string  `json:"field"`
	Classes int     `json:"classes"`
	Top1    float64 `json:"top1"`
	Top5    float64 `json:"top5"`
}

// Accuracy is a classifier's accuracy on a labelled set.
type Accuracy struct {
	Step   int            `json:"step,omitempty"`
	Images int            `json:"images"`
	Heads  []HeadAccuracy `json:"heads"`
}

// Evaluate measures m on every image of set whose labels are known.
func Evaluate(m *Model, set *Labeled) (Accuracy, error) {
	p, err := m.Run(set.All(), set.Len())
	if err != nil {
		return Accuracy{}, err
	}
	acc := Accuracy{Images: set.Len()}
	for h, hd := range m.Config.Heads {
		var scores [][]float32
		var labels []int
		for i, l := range set.Labels[h] {
			if l >= 0 {
				scores, labels = append(scores, p.Logits[h][i]), append(labels, l)
			}
		}
		ha := HeadAccuracy{Field: hd.Field, Classes: len(hd.Labels)}
		if len(labels) > 0 {
			ha.Top1, _ = eval.TopKAccuracy(scores, labels, 1)
			ha.Top5, _ = eval.TopKAccuracy(scores, labels, 5)
		}
		acc.Heads = append(acc.Heads, ha)
	}
	return acc, nil
}

// EvaluateHeldOut measures the EMA weights on the held-out images (the
// training images when there are none).
func (t *Trainer) EvaluateHeldOut() (Accuracy, error) {
	m, err := t.Model()
	if err != nil {
		return Accuracy{}, err
	}
	set := t.HeldOut
	if set == nil {
		set = t.TrainSet
	}
	a, err := Evaluate(m, set)
	a.Step = t.Step
	return a, err
}
