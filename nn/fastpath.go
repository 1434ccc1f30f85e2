package nn

import (
	"os"

	"github.com/ldm-project/ldm/internal/gemm"
	"github.com/ldm-project/ldm/internal/simplegofast"
)

// FastPath says whether the pure-Go backend's fast executors
// (internal/simplegofast, internal/gemm) are in use. Without them the
// pure-Go backend is 4–6× slower, so front ends show it (ldm info, ldm
// bench) rather than leaving it to one log line.
type FastPath struct {
	GEMM        bool   `json:"gemm"`                 // the fast float32 DotGeneral
	Elementwise bool   `json:"elementwise"`          // the fast elementwise executors
	Kernel      string `json:"kernel"`               // the GEMM micro-kernel this CPU runs
	Reason      string `json:"off_reason,omitempty"` // why GEMM is off
}

// FastPathStatus installs the fast executors as NewBackend does for a
// pure-Go backend (unless LDM_FAST_GEMM=0) and reports the outcome. Not
// safe while pure-Go graphs execute (see simplegofast.Enable).
func FastPathStatus() FastPath {
	f := FastPath{Kernel: gemm.KernelName()}
	if os.Getenv(EnvFastGEMM) == "0" {
		if simplegofast.Enabled() {
			simplegofast.Disable()
		}
		f.Reason = EnvFastGEMM + "=0"
		return f
	}
	if err := simplegofast.Enable(); err != nil {
		f.Reason = err.Error()
	}
	f.GEMM = simplegofast.Enabled()
	f.Elementwise = simplegofast.ElementwiseEnabled()
	return f
}

// String is one line: "on (GEMM kernel avx2-fma-6x16, fast elementwise)"
// or "OFF: reason (GoMLX's executors, 4–6× slower)".
func (f FastPath) String() string {
	if !f.GEMM {
		return "OFF: " + f.Reason + " (GoMLX's own executors, 4–6× slower)"
	}
	s := "on (GEMM kernel " + f.Kernel
	if f.Elementwise {
		s += ", fast elementwise"
	} else {
		s += ", GoMLX's elementwise"
	}
	return s + ")"
}
