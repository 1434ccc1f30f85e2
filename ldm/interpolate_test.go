package ldm

import (
	"context"
	"math"
	"testing"
)

func TestInterpolationEndsAreThePlainGenerations(t *testing.T) {
	p := loadTiny(t)
	ctx := context.Background()
	a := Request{Prompt: "a red apple", Steps: 2, Seed: 3, Width: 64, Height: 64}
	b := Request{Prompt: "a blue car", Steps: 2, Seed: 11, Width: 64, Height: 64}
	gen := func(r Request, in *Interpolation) Result {
		t.Helper()
		out, err := p.Generate(ctx, r, Options{Interpolate: in})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	plainA, plainB := gen(a, nil), gen(b, nil)
	at0 := gen(a, &Interpolation{Prompt: b.Prompt, Seed: b.Seed, Alpha: 0})
	at1 := gen(a, &Interpolation{Prompt: b.Prompt, Seed: b.Seed, Alpha: 1})
	mid := gen(a, &Interpolation{Prompt: b.Prompt, Seed: b.Seed, Alpha: 0.5})
	if d := maxPixelDiff(plainA, at0); d != 0 {
		t.Errorf("α = 0 differs from the first prompt's image by %d levels", d)
	}
	// α = 1 is the second prompt and seed up to float rounding in the slerp and lerp.
	if d := maxPixelDiff(plainB, at1); d > 2 {
		t.Errorf("α = 1 differs from the second prompt's image by %d levels", d)
	}
	if maxPixelDiff(mid, plainA) == 0 || maxPixelDiff(mid, plainB) == 0 {
		t.Error("α = 0.5 gave one of the ends")
	}
	if _, err := p.Generate(ctx, a, Options{Interpolate: &Interpolation{Prompt: "x", Alpha: 1.5}}); err == nil {
		t.Error("α = 1.5 accepted")
	}
}

func TestSlerpKeepsTheNormOfOrthogonalUnitVectors(t *testing.T) {
	a, b := []float32{1, 0}, []float32{0, 1}
	Slerp(0.5, a, b)
	if n := math.Hypot(float64(a[0]), float64(a[1])); math.Abs(n-1) > 1e-6 || math.Abs(float64(a[0]-a[1])) > 1e-6 {
		t.Errorf("slerp halfway = %v (norm %g), want (√½, √½)", a, n)
	}
	c, d := []float32{1, 2}, []float32{2, 4} // parallel: a lerp
	Slerp(0.25, c, d)
	if c[0] != 1.25 || c[1] != 2.5 {
		t.Errorf("parallel slerp = %v, want the lerp (1.25, 2.5)", c)
	}
}
