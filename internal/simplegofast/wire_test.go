package simplegofast_test

import (
	"testing"

	"github.com/ldm-project/ldm/internal/simplegofast"
	"github.com/ldm-project/ldm/nn"
)

// TestNNWiring checks nn/fastgemm.go: nn.NewBackend("go") installs the fast
// DotGeneral, and LDM_FAST_GEMM=0 takes it out.
func TestNNWiring(t *testing.T) {
	simplegofast.Disable()
	if _, err := nn.NewBackend("go"); err != nil {
		t.Fatal(err)
	}
	if !simplegofast.Enabled() {
		t.Fatal("nn.NewBackend(\"go\") did not enable the fast DotGeneral")
	}
	t.Setenv(nn.EnvFastGEMM, "0")
	if _, err := nn.NewBackend("go"); err != nil {
		t.Fatal(err)
	}
	if simplegofast.Enabled() {
		t.Fatalf("%s=0 left the fast DotGeneral enabled", nn.EnvFastGEMM)
	}
	if err := simplegofast.Enable(); err != nil {
		t.Fatal(err)
	}
}
