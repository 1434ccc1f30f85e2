package app

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// histogram is a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.n++
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", name, h.n, name, strconv.FormatFloat(h.sum, 'g', -1, 64), name, h.n)
}

// metrics are the server's counters, written by hand in the Prometheus text
// format (version 0.0.4) so the server needs no client library.
type metrics struct {
	mu        sync.Mutex
	submits   uint64
	finishes  map[State]uint64
	rejects   map[string]uint64
	imageN    uint64
	stepSecs  *histogram
	jobSecs   *histogram
	batchJobs *histogram
	startedAt time.Time
}

func newMetrics() *metrics {
	return &metrics{
		finishes: map[State]uint64{}, rejects: map[string]uint64{},
		stepSecs:  newHistogram(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
		jobSecs:   newHistogram(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
		batchJobs: newHistogram(1, 2, 4, 8, 16),
		startedAt: time.Now(),
	}
}

func (m *metrics) submitted() {
	m.mu.Lock()
	m.submits++
	m.mu.Unlock()
}

func (m *metrics) rejected(reason string) {
	m.mu.Lock()
	m.rejects[reason]++
	m.mu.Unlock()
}

func (m *metrics) finished(s State, took time.Duration) {
	m.mu.Lock()
	m.finishes[s]++
	if took > 0 {
		m.jobSecs.observe(took.Seconds())
	}
	m.mu.Unlock()
}

func (m *metrics) images(n int) {
	m.mu.Lock()
	m.imageN += uint64(n)
	m.mu.Unlock()
}

func (m *metrics) batch(jobs int) {
	m.mu.Lock()
	m.batchJobs.observe(float64(jobs))
	m.mu.Unlock()
}

func (m *metrics) step(d time.Duration) {
	m.mu.Lock()
	m.stepSecs.observe(d.Seconds())
	m.mu.Unlock()
}

func (s *Server) serveMetrics(c *gin.Context) {
	c.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	c.Status(http.StatusOK)
	s.writeMetrics(c.Writer)
}

func (s *Server) writeMetrics(w io.Writer) {
	queued := s.q.len()
	s.mu.Lock()
	running := len(s.running)
	model := s.model.Name
	s.mu.Unlock()
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# HELP ldm_queue_depth Jobs waiting behind the running one.\n# TYPE ldm_queue_depth gauge\nldm_queue_depth %d\n", queued)
	fmt.Fprintf(w, "# HELP ldm_queue_capacity Most jobs that may wait.\n# TYPE ldm_queue_capacity gauge\nldm_queue_capacity %d\n", s.cfg.QueueSize)
	fmt.Fprintf(w, "# HELP ldm_jobs Jobs now queued or running.\n# TYPE ldm_jobs gauge\nldm_jobs{state=\"queued\"} %d\nldm_jobs{state=\"running\"} %d\n", queued, running)
	fmt.Fprintf(w, "# HELP ldm_jobs_submitted_total Jobs accepted into the queue.\n# TYPE ldm_jobs_submitted_total counter\nldm_jobs_submitted_total %d\n", m.submits)
	fmt.Fprintf(w, "# HELP ldm_jobs_finished_total Jobs finished, by final state.\n# TYPE ldm_jobs_finished_total counter\n")
	for _, st := range []State{Succeeded, Failed, Cancelled} {
		fmt.Fprintf(w, "ldm_jobs_finished_total{state=%q} %d\n", st, m.finishes[st])
	}
	fmt.Fprintf(w, "# HELP ldm_jobs_rejected_total Requests refused before queueing, by reason.\n# TYPE ldm_jobs_rejected_total counter\n")
	for _, r := range []string{"invalid", "queue_full", "shutting_down"} {
		fmt.Fprintf(w, "ldm_jobs_rejected_total{reason=%q} %d\n", r, m.rejects[r])
	}
	fmt.Fprintf(w, "# HELP ldm_images_total Images generated.\n# TYPE ldm_images_total counter\nldm_images_total %d\n", m.imageN)
	m.stepSecs.write(w, "ldm_step_seconds", "Time between denoising steps (U-Net calls with guidance and the sampler update).")
	m.jobSecs.write(w, "ldm_job_seconds", "Run time of a job, from start to its last image.")
	m.batchJobs.write(w, "ldm_batch_jobs", "Jobs run together in one model batch (request batching).")
	fmt.Fprintf(w, "# HELP ldm_model_info The loaded model.\n# TYPE ldm_model_info gauge\nldm_model_info{name=%q} 1\n", model)
	fmt.Fprintf(w, "# HELP ldm_uptime_seconds Seconds since the server started.\n# TYPE ldm_uptime_seconds gauge\nldm_uptime_seconds %g\n", time.Since(m.startedAt).Seconds())
}
