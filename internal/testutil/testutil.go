// Package testutil holds helpers shared by the packages' tests.
package testutil

import (
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/ldm-project/ldm/nn"
)

// GoBackend returns the pure-Go backend or fails the test.
func GoBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := nn.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
