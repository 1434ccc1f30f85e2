package simplegofast

import (
	"testing"
)

func TestEnable(t *testing.T) {
	if err := Enable(); err != nil {
		t.Fatal(err)
	}
	if !Enabled() {
		t.Fatal("Enabled() is false after Enable()")
	}
	if err := Enable(); err != nil {
		t.Fatal("second Enable:", err)
	}
	Disable()
	if Enabled() {
		t.Fatal("Enabled() after Disable()")
	}
	if err := Enable(); err != nil {
		t.Fatal("Enable after Disable:", err)
	}
}
