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
// version this was written against (v0.26.0; without positive evidence of
// it, from the module information or simplego's recorded source path, the
// check fails closed), that the linked symbols are simplego's and
// getBufferForShape returns what its mirror says (its signature, like the
// others', is checked against simplego's source by TestLinkedSignatures),
// that the mirrored simplego
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
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
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
	if err := checkGetBuffer(b); err != nil {
		return err
	}
	dotDataType = rt.dotData
	stockExec = prev
	return selfTest(b)
}

// checkVersion requires positive evidence that the linked simplego is
// GoMLXVersion, and fails closed otherwise. The evidence is the binary's
// module information when it lists GoMLX (replaced modules are refused);
// binaries without it (test binaries list no dependencies, and a binary
// built outside module mode has none at all) fall back to the source path
// the compiler recorded for the linked setNodeExecutor, which names the
// module version ("…/github.com/gomlx/gomlx@v0.26.0/backends/simplego/…",
// with or without -trimpath). Neither: refused.
func checkVersion() error {
	if bi, ok := debug.ReadBuildInfo(); ok {
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
			return checkSymbols(false)
		}
	}
	return checkSymbols(true)
}

// checkSymbols checks that the linked functions are simplego's: the symbol
// names the runtime knows for them, and (when needPath, as the version's
// only evidence) that the source path of setNodeExecutor names
// GoMLXVersion's module directory.
func checkSymbols(needPath bool) error {
	set := runtime.FuncForPC(reflect.ValueOf(sgSetNodeExecutor).Pointer())
	get := runtime.FuncForPC(reflect.ValueOf(sgGetBufferForShape).Pointer())
	if set == nil || get == nil {
		return errors.New("the linked simplego functions are unknown to the runtime")
	}
	if n := set.Name(); n != simplegoPkg+".setNodeExecutor" {
		return fmt.Errorf("setNodeExecutor is linked to %q", n)
	}
	if n := get.Name(); n != simplegoPkg+".(*Backend).getBufferForShape" {
		return fmt.Errorf("getBufferForShape is linked to %q", n)
	}
	if !needPath {
		return nil
	}
	file, _ := set.FileLine(set.Entry())
	return checkSourcePath(file)
}

// checkSourcePath accepts a simplego source path inside GoMLXVersion's
// module directory (module cache or -trimpath form) and refuses any other
// (a replace to a local folder, a vendor folder, another version).
func checkSourcePath(file string) error {
	if !strings.Contains(filepath.ToSlash(file), gomlxModule+"@"+GoMLXVersion+"/backends/simplego/") {
		return fmt.Errorf("no module information in this binary, and simplego's source path %q does not name %s@%s: cannot confirm the GoMLX version", file, gomlxModule, GoMLXVersion)
	}
	return nil
}

// checkGetBuffer calls the linked getBufferForShape once and checks what
// it returns: the linker binds by name only, so this is the run-time check
// that it takes a shape and returns a *Buffer of that shape (a changed
// signature reads garbage here rather than in a graph).
func checkGetBuffer(b backends.Backend) error {
	want := shapes.Make(dtypes.Float32, 3, 5)
	buf := sgGetBufferForShape((*sgBackend)(ifaceData(b)), want)
	if buf == nil {
		return errors.New("getBufferForShape returned nil on a live backend")
	}
	if f, ok := buf.flat.([]float32); !buf.valid || !buf.shape.Equal(want) || !ok || len(f) != want.Size() {
		return fmt.Errorf("getBufferForShape(%s) returned a buffer of shape %s (valid %v, %T)", want, buf.shape, buf.valid, buf.flat)
	}
	return nil
}

func sameFunc(a, b nodeExecutor) bool {
	if a == nil || b == nil {
		return false
	}
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}
