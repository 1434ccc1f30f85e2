package ldm

import "context"

// BatchItem is one request of GenerateBatch: its own context (cancelling it
// drops that item only) and options (its Progress hears about that item
// only).
type BatchItem struct {
	Ctx  context.Context
	Req  Request
	Opts Options
}

// BatchResult is one item's outcome.
type BatchResult struct {
	Results []Result
	Err     error
}

// GenerateBatch prepares each request under DefaultLimits and runs them all: those whose plans have equal keys as
// one U-Net batch, each image with the seed, prompt and infotext it would
// have had alone (see Run). Result i belongs to item i; an item that fails
// Prepare gets its error and the others run.
func (p *Pipeline) GenerateBatch(ctx context.Context, items []BatchItem) []BatchResult {
	out := make([]BatchResult, len(items))
	var tasks []Task
	var at []int
	for i, it := range items {
		pl, err := p.Prepare(it.Req, DefaultLimits)
		if err != nil {
			out[i].Err = err
			continue
		}
		tasks = append(tasks, Task{Ctx: it.Ctx, Plan: pl, Opts: it.Opts})
		at = append(at, i)
	}
	for k, r := range p.Run(ctx, tasks) {
		out[at[k]] = r
	}
	return out
}
