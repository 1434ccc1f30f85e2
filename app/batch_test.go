package app

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ldm-project/ldm/ldm"
)

// fakeBatchModel records which prompts ran together.
type fakeBatchModel struct {
	fakeModel
	mu      sync.Mutex
	batches []string
}

func (f *fakeBatchModel) record(reqs ...ldm.Request) {
	var p []string
	for _, r := range reqs {
		p = append(p, r.Prompt)
	}
	f.mu.Lock()
	f.batches = append(f.batches, strings.Join(p, "+"))
	f.mu.Unlock()
}

func (f *fakeBatchModel) Run(ctx context.Context, tasks []ldm.Task) []ldm.BatchResult {
	var reqs []ldm.Request
	for _, t := range tasks {
		reqs = append(reqs, t.Plan.Request())
	}
	f.record(reqs...)
	return f.fakeModel.Run(ctx, tasks)
}

func TestWaitingJobsWithEqualPlanKeysShareABatch(t *testing.T) {
	f := &fakeBatchModel{fakeModel: fakeModel{gate: make(chan struct{}), started: make(chan struct{}, 100)}}
	s, ts := testServer(t, &Loaded{Model: f, Name: "fake"}, Config{BatchJobs: 3})
	submit := func(prompt string, size int) string {
		r := call(t, "POST", ts.URL+"/api/v1/jobs", map[string]any{"prompt": prompt, "steps": 1, "width": size, "height": size})
		if r.Status != http.StatusAccepted {
			t.Fatalf("%s: %d %s", prompt, r.Status, r.Body)
		}
		return r.json(t)["id"].(string)
	}
	ids := []string{submit("first", 64)}
	<-f.started
	for _, j := range []struct {
		p    string
		size int
	}{{"a", 64}, {"b", 64}, {"c", 32}, {"d", 64}, {"e", 64}} {
		ids = append(ids, submit(j.p, j.size))
	}
	// Cancel b while it waits in the batch: the others must still finish.
	f.gate <- struct{}{} // "first" finishes
	<-f.started          // the batch a+b+d has started
	s.cancel(s.job(ids[2]), "cancelled by request")
	close(f.gate)
	want := map[string]State{"first": Succeeded, "a": Succeeded, "b": Cancelled, "c": Succeeded, "d": Succeeded, "e": Succeeded}
	for i, id := range ids {
		j := s.job(id)
		<-j.Done()
		if st := j.snapshot().State; st != want[j.Req.Prompt] {
			t.Errorf("job %d (%s): %s, want %s", i, j.Req.Prompt, st, want[j.Req.Prompt])
		}
	}
	f.mu.Lock()
	got := strings.Join(f.batches, " ")
	f.mu.Unlock()
	if want := "first a+b+d c e"; got != want {
		t.Errorf("batches %q, want %q (compatible jobs in queue order, at most 3)", got, want)
	}
	metrics := string(call(t, "GET", ts.URL+"/metrics", nil).Body)
	for _, line := range []string{`ldm_batch_jobs_bucket{le="1"} 3`, `ldm_batch_jobs_bucket{le="4"} 4`, "ldm_batch_jobs_sum 6\n"} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
}

// preferring is a stand-in that states its batching preference.
type preferring struct {
	fakeModel
	n int
}

func (p *preferring) PreferredBatchJobs() int { return p.n }

// TestBatchJobsDefaultIsTheModelsPreference: the batching policy belongs to
// the model (ldm.Pipeline.PreferredBatchJobs), not to the command.
func TestBatchJobsDefaultIsTheModelsPreference(t *testing.T) {
	for _, tc := range []struct {
		m         Model
		set, want int
	}{{&preferring{n: 1}, 0, 1}, {&preferring{n: 4}, 0, 4}, {&preferring{n: 1}, 3, 3}, {&fakeModel{}, 0, 4}} {
		s, _ := testServer(t, &Loaded{Model: tc.m, Name: "fake"}, Config{BatchJobs: tc.set})
		if s.cfg.BatchJobs != tc.want {
			t.Errorf("%T set %d: BatchJobs %d, want %d", tc.m, tc.set, s.cfg.BatchJobs, tc.want)
		}
	}
}
