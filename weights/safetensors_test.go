package weights_test

import (
	"testing"

	"github.com/ldm-project/ldm/internal/golden"
	"github.com/ldm-project/ldm/weights"
)

func TestReadsGoldenTensors(t *testing.T) {
	m := golden.Load(t)
	f, err := weights.Open(m.Dir + "/cases/vae_cases.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, shape, err := f.Float32("image")
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 4 || shape[1] != 3 || len(v) != 3*64*64 {
		t.Fatalf("image shape %v, %d values", shape, len(v))
	}
}
