package nn

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // the pure-Go backend, always available
	"github.com/gomlx/gomlx/backends/xla"        // XLA, used when a PJRT plugin is present
)

// EnvBackend overrides the backend choice ("go", "xla", or a full GoMLX
// config such as "go:ops_parallel").
const EnvBackend = "LDM_BACKEND"

// DefaultGoConfig is the pure-Go backend configuration. simplego's parallel
// op executor deadlocks when more independent ops that split their own work
// through its worker pool (its DotGeneral, Erf) run at once than it has
// workers (2×cores): reproduced every time by TestExecutorStress's "wide"
// graph on 2 cores. The fast executors of internal/simplegofast avoid the
// pool (no hang in 3000 runs), but any op falling back to simplego's can
// still hang, an op's panic there kills the process, and it was not
// measurably faster (docs/PERFORMANCE.md). Sequential op order still runs
// each op on all cores.
const DefaultGoConfig = "go:ops_sequential"

var logOnce sync.Once

// NewBackend returns the compute backend. name is "", "auto", "go", "xla" or
// a GoMLX backend config string; "" falls back to $LDM_BACKEND, then "auto".
// "auto" uses XLA when a PJRT plugin can be found and the pure-Go backend
// otherwise; it never tries to download a plugin and never panics.
func NewBackend(name string) (b backends.Backend, err error) {
	if name == "" {
		name = os.Getenv(EnvBackend)
	}
	if name == "" {
		name = "auto"
	}
	switch {
	case name == "auto":
		b, err = newXLA("xla")
		if err != nil {
			reason := err.Error()
			b, err = newConfig(DefaultGoConfig)
			if err == nil {
				logOnce.Do(func() {
					slog.Info("backend: XLA unavailable, using the pure-Go backend", "reason", firstLine(reason))
				})
			}
			return wrap(b), err
		}
	case name == "go" || strings.HasPrefix(name, "go:"):
		b, err = newConfig(goConfig(name))
	case name == "xla" || strings.HasPrefix(name, "xla:"):
		b, err = newXLA(name)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w (install a PJRT plugin and set PJRT_PLUGIN_LIBRARY_PATH, or give the plugin's absolute path, e.g. "+
				"xla:/…/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so; or use --backend go)", name, err)
		}
	default:
		return nil, fmt.Errorf("unknown backend %q: use \"auto\", \"go\" or \"xla\"", name)
	}
	if err != nil {
		return nil, err
	}
	logOnce.Do(func() { slog.Info("backend selected", "backend", b.Name(), "description", b.Description()) })
	return wrap(b), nil
}

// goConfig completes a pure-Go backend config: without an explicit op mode
// simplego runs independent ops in parallel whenever one graph executes at a
// time, and that mode deadlocks on graphs with ≥ 2×cores independent
// matrix products (or Erf) in flight (measured: docs/PERFORMANCE.md), so
// ops_sequential is added unless ops_parallel is asked for explicitly.
func goConfig(name string) string {
	if name == "go" || name == "go:" {
		return DefaultGoConfig
	}
	if strings.Contains(name, "ops_sequential") || strings.Contains(name, "ops_parallel") {
		return name
	}
	return name + ",ops_sequential"
}

// newXLA builds an XLA backend without letting GoMLX reach for the network:
// GoMLX reads GOMLX_NO_AUTO_INSTALL only when its package initialises, so
// the download is switched off through its API.
func newXLA(config string) (backends.Backend, error) {
	xla.EnableAutoInstall(false)
	return newConfig(config)
}

// newConfig calls GoMLX, turning its panics (an unknown name panics) into errors.
func newConfig(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return backends.NewWithConfig(config)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// IsGo reports whether b is the pure-Go backend, for the few places where the
// fastest formulation differs by backend.
func IsGo(b backends.Backend) bool {
	if _, ok := b.(*goBackend); ok {
		return true
	}
	return isGoName(b)
}

// isGoName recognises the pure-Go backend by name: simplego's Name is
// "SimpleGo (go)" and its String is "go".
func isGoName(b backends.Backend) bool {
	return b != nil && (b.String() == "go" || strings.HasPrefix(b.Name(), "go") || strings.HasSuffix(b.Name(), "(go)"))
}

// ReleaseBuffers lets the pure-Go backend's pooled buffers go before a
// different graph runs (the VAE decode after the U-Net): simplego keeps
// freed buffers in a sync.Pool per shape, which only a GC empties (two, for
// its victim cache). Without it the decode's buffers are fresh memory on top
// of the U-Net's pooled ones; with it they reuse the same heap pages. SD1.5
// at 512² (`ldm bench --parts unet,vae`): peak RSS 13.3 → 7.7 GB, the
// decode's first run 36.6 → 24.1 s, since touching fresh memory costs
// ≈ 2.7 s/GiB on these VMs. The heap is mostly pointer-free float buffers,
// so the collections are cheap. A no-op on other backends.
func ReleaseBuffers(b backends.Backend) {
	if b != nil && IsGo(b) {
		runtime.GC()
		runtime.GC()
	}
}

var (
	defaultBackend    backends.Backend
	defaultBackendErr error
	defaultOnce       sync.Once
)

// DefaultBackend returns a process-wide backend chosen by NewBackend("").
func DefaultBackend() (backends.Backend, error) {
	defaultOnce.Do(func() { defaultBackend, defaultBackendErr = NewBackend("") })
	return defaultBackend, defaultBackendErr
}

// wrap is where backend fix-ups plug in: the pure-Go backend gets the ops it
// lacks (see goBackend); XLA is returned as is.
var wrap = wrapGo
