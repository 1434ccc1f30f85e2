// Package simplegofast replaces the float32 DotGeneral of GoMLX's pure-Go
// backend (simplego) with internal/gemm's blocked AVX2/FMA SGEMM.
//
// simplego keeps its op executors in an unexported table filled through
// setNodeExecutor(op, priority, executor); Enable reaches it with
// //go:linkname and registers its executor with simplego's "user override"
// priority. The executor handles every float32 DotGeneral (any batch,
// contracting and cross axes, in any order: the packing step of the GEMM
// reads them through strides or offset tables) and hands every other dtype,
// and anything unexpected, to the executor that was there before.
//
// Before installing anything, Enable checks that the GoMLX module is the
// version this was written against (v0.26.0), that the mirrored simplego
// types have exactly the real ones' field names, types and offsets, and
// that its products agree with GoMLX's on a set of shapes and axis layouts;
// if any check fails the stock executor stays and the reason is logged once.
// The table is process-wide: once enabled, every simplego backend uses it.
//
// Enable also installs float32 executors for Exp, Logistic, Erf, Add, Sub,
// Mul, Div (with broadcasting), ReduceMax, ReduceSum, Slice and Concatenate
// (elementwise.go, slice.go, concat.go; exp, erf, row division and row max
// in AVX2/FMA assembly with pure-Go fallbacks), after their own self-test
// against simplego's executors and a layout check of the Slice node data;
// they delegate other dtypes and unexpected cases to simplego's. LDM_FAST_ELEMWISE=0 leaves
// them out (for comparisons); Disable takes them out with the DotGeneral.
package simplegofast

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// GoMLXVersion is the only GoMLX release whose internals this package knows.
const GoMLXVersion = "v0.26.0"

const gomlxModule = "github.com/gomlx/gomlx"

var (
	mu       sync.Mutex
	enabled  atomic.Bool
	verified bool  // checks and self-test passed
	failed   error // checks or self-test failed: never retried
)

// Enable installs the fast DotGeneral executor in simplego, after the checks
// described in the package documentation. It returns nil when the executor
// is (already) installed, and otherwise why not: then GoMLX's own executor
// is left in place. Safe to call more than once and from several
// goroutines, but not while simplego graphs are executing.
func Enable() error {
	mu.Lock()
	defer mu.Unlock()
	if enabled.Load() {
		enableElemLocked()
		return nil
	}
	if failed != nil {
		return failed
	}
	if !verified {
		if err := verify(); err != nil {
			failed = fmt.Errorf("simplegofast: %w", err)
			slog.Warn("simplegofast: keeping GoMLX's DotGeneral executor", "reason", err)
			return failed
		}
		verified = true
	}
	sgSetNodeExecutor(backends.OpTypeDotGeneral, priorityUser, fastDotGeneral)
	if !sameFunc(sgNodeExecutors[backends.OpTypeDotGeneral], fastDotGeneral) {
		failed = errors.New("simplegofast: simplego did not take the executor (a higher priority one is registered)")
		slog.Warn("simplegofast: keeping GoMLX's DotGeneral executor", "reason", failed)
		return failed
	}
	enabled.Store(true)
	enableElemLocked()
	return nil
}

// Disable puts back the executor that Enable replaced (for comparisons).
// Not safe while simplego graphs are executing.
func Disable() {
	mu.Lock()
	defer mu.Unlock()
	disableElemLocked()
	if !enabled.Load() {
		return
	}
	sgSetNodeExecutor(backends.OpTypeDotGeneral, priorityUser, stockExec)
	enabled.Store(false)
}

// Enabled reports whether the fast executor is installed.
func Enabled() bool { return enabled.Load() }

// verify runs the checks: GoMLX version, simplego layouts, self-test.
func verify() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic during checks: %v", r)
		}
	}()
	if err := checkVersion(); err != nil {
		return err
	}
	prev := sgNodeExecutors[backends.OpTypeDotGeneral]
	if prev == nil {
		return errors.New("simplego has no DotGeneral executor registered")
	}
	b, err := simplego.New("")
	if err != nil {
		return fmt.Errorf("creating a simplego backend for the checks: %w", err)
	}
	defer b.Finalize()
	rt, err := probe(b)
	if err != nil {
		return err
	}
	if err := verifyLayouts(rt); err != nil {
		return fmt.Errorf("simplego internals differ from what this package mirrors: %w", err)
	}
	dotDataType = rt.dotData
	stockExec = prev
	return selfTest(b)
}

// checkVersion accepts GoMLXVersion, and a binary without module
// information (tests); it refuses other versions and replaced modules.
func checkVersion() error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	for _, d := range bi.Deps {
		if d.Path != gomlxModule {
			continue
		}
		if d.Replace != nil {
			return fmt.Errorf("%s is replaced by %s %s; only %s %s is known", gomlxModule, d.Replace.Path, d.Replace.Version, gomlxModule, GoMLXVersion)
		}
		if d.Version != GoMLXVersion {
			return fmt.Errorf("%s is %s; only %s is known", gomlxModule, d.Version, GoMLXVersion)
		}
		return nil
	}
	return nil
}

func sameFunc(a, b nodeExecutor) bool {
	if a == nil || b == nil {
		return false
	}
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}
