package app

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/ldm-project/ldm/ldm"
)

// BatchModel is a Model that can run several waiting requests in one model
// batch (request batching across jobs). When the loaded model implements
// it, the worker takes the next job plus up to Config.BatchJobs-1 waiting
// jobs that Compatible accepts, in queue order, and runs them together.
// *ldm.Pipeline implements it.
type BatchModel interface {
	Model
	// Compatible reports whether b can share a batch with a: same latent
	// shape, sampler, schedule and step count, so one timestep loop serves
	// both.
	Compatible(a, b ldm.Request) bool
	// GenerateBatch runs the items together. Result i belongs to item i; an
	// item whose Ctx ends drops out without stopping the others, and each
	// item's Opts.Progress hears only about that item.
	GenerateBatch(ctx context.Context, items []BatchItem) []BatchResult
}

// BatchItem is one job of a batch.
type BatchItem = ldm.BatchItem

// BatchResult is one job's outcome.
type BatchResult = ldm.BatchResult

var _ BatchModel = (*ldm.Pipeline)(nil)

// runBatch starts the jobs and runs them as one batch.
func (s *Server) runBatch(bm BatchModel, jobs []*Job) {
	var act []*active
	var items []BatchItem
	for _, j := range jobs {
		if a := s.begin(j); a != nil {
			act = append(act, a)
			items = append(items, BatchItem{Ctx: a.ctx, Req: j.Req, Opts: a.opts})
		}
	}
	if len(act) == 0 {
		return
	}
	s.metrics.batch(len(act))
	out := s.generateBatch(bm, items)
	for i, a := range act {
		var r BatchResult
		if i < len(out) {
			r = out[i]
		} else {
			r.Err = fmt.Errorf("internal error: the model returned %d results for %d jobs", len(out), len(act))
		}
		s.complete(a, r.Results, r.Err)
	}
}

func (s *Server) generateBatch(bm BatchModel, items []BatchItem) (out []BatchResult) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("generate batch panicked", "panic", r, "stack", string(debug.Stack()))
			out = make([]BatchResult, len(items))
			for i := range out {
				out[i].Err = fmt.Errorf("internal error: %v", r)
			}
		}
	}()
	return bm.GenerateBatch(s.hardCtx, items)
}
