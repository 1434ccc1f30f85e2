package nn

import (
	"github.com/gomlx/gomlx/backends"
)

// EnvFastGEMM switches the fast float32 matrix product of the pure-Go
// backend (internal/simplegofast, internal/gemm): "0" keeps GoMLX's own
// DotGeneral (for comparisons); anything else, or unset, uses the fast one.
const EnvFastGEMM = "LDM_FAST_GEMM"

// The fast DotGeneral is installed when NewBackend hands out a pure-Go
// backend. simplegofast checks itself first (GoMLX version, layouts of the
// simplego internals it reads, a self-test against GoMLX's product) and
// leaves GoMLX's executor in place, logging why, if anything is off.
func init() {
	prev := wrap
	wrap = func(b backends.Backend) backends.Backend {
		if b != nil && isGoName(b) {
			_ = FastPathStatus() // on failure simplegofast logged why; GoMLX's product stays
		}
		return prev(b)
	}
}
