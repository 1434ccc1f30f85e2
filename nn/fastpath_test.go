package nn

import (
	"strings"
	"testing"

	"github.com/ldm-project/ldm/internal/simplegofast"
)

// TestFastPathStatus: on by default, with the kernel named; LDM_FAST_GEMM=0
// turns it off and says so.
func TestFastPathStatus(t *testing.T) {
	f := FastPathStatus()
	if !f.GEMM || !f.Elementwise || f.Kernel == "" || f.Reason != "" {
		t.Fatalf("default: %+v", f)
	}
	if s := f.String(); !strings.HasPrefix(s, "on (GEMM kernel "+f.Kernel) {
		t.Errorf("String() = %q", s)
	}
	t.Setenv(EnvFastGEMM, "0")
	f = FastPathStatus()
	if f.GEMM || simplegofast.Enabled() || !strings.Contains(f.String(), "OFF: LDM_FAST_GEMM=0") {
		t.Errorf("%s=0: %+v, %q", EnvFastGEMM, f, f)
	}
	t.Setenv(EnvFastGEMM, "")
	if f = FastPathStatus(); !f.GEMM {
		t.Errorf("re-enabling: %+v", f)
	}
}
