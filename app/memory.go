package app

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ldm-project/ldm/ldm"
)

// MemoryEstimator is a Model that predicts a request's peak memory
// (*ldm.Pipeline does, from its configs and the request's shapes).
type MemoryEstimator interface {
	EstimateMemory(req ldm.Request) ldm.MemoryEstimate
}

// countWeights has a model count its weights now, before any job runs on
// it (EstimateMemory counts them once).
func countWeights(m Model) {
	if me, ok := m.(MemoryEstimator); ok {
		me.EstimateMemory(ldm.Request{})
	}
}

// MachineMemory is the memory this process may use: the cgroup's limit
// when one is set, else the machine's total; 0 when neither can be read.
func MachineMemory() int64 {
	if data, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && n > 0 {
			return min(n, memTotal())
		}
	}
	return memTotal()
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// defaultMemoryShare of MachineMemory is the default budget: the rest is
// left to the system and to the server's own buffers (queued requests,
// kept images).
const defaultMemoryShare = 0.75

// errOverBudget is a request refused because its estimate exceeds the
// budget: 413, naming the field to lower.
type errOverBudget struct{ *ldm.FieldError }

func (e *errOverBudget) Unwrap() error { return e.FieldError }

// checkMemory refuses a request whose estimated peak exceeds the budget.
func (s *Server) checkMemory(m Model, req ldm.Request) error {
	me, ok := m.(MemoryEstimator)
	if !ok || s.cfg.MaxMemory <= 0 {
		return nil
	}
	est := me.EstimateMemory(req)
	if est.Peak() <= s.cfg.MaxMemory {
		return nil
	}
	// Name the field whose lowering helps most: the batches' kept images,
	// then the batch, then the size.
	field, hint := "width", "lower width and height"
	one := req
	one.BatchSize, one.BatchCount = 1, 1
	switch {
	case req.BatchCount > 1 && func() bool { r := req; r.BatchCount = 1; return me.EstimateMemory(r).Peak() <= s.cfg.MaxMemory }():
		field, hint = "batch_count", "lower batch_count"
	case req.BatchSize > 1 && me.EstimateMemory(one).Peak() <= s.cfg.MaxMemory:
		field, hint = "batch_size", "lower batch_size"
	case req.Height > req.Width:
		field = "height"
	}
	return &errOverBudget{&ldm.FieldError{Field: field, Msg: fmt.Sprintf(
		"the request needs about %s, more than the server's memory budget of %s (--max-memory): %s",
		est, ldm.FormatBytes(s.cfg.MaxMemory), hint)}}
}

func isOverBudget(err error) bool {
	var e *errOverBudget
	return errors.As(err, &e)
}

// ParseBytes reads a size such as "12G", "512MiB", "8GB" or "1073741824"
// (binary units either way).
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mul := int64(1)
	for _, u := range []struct {
		suffix string
		mul    int64
	}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mul = strings.TrimSuffix(t, u.suffix), u.mul
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f <= 0 || f*float64(mul) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size: use e.g. 12G or 512M", s)
	}
	return int64(f * float64(mul)), nil
}
