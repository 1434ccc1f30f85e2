package rng

import (
	"math"
	"math/big"
	"testing"
)

func ulps(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / (math.Nextafter(math.Abs(b), math.Inf(1)) - math.Abs(b))
}

// The portable routines agree with the standard library to within 2 ulp.
func TestStableMathAccuracy(t *testing.T) {
	g := NewPhilox(3)
	worstLog, worstS, worstC := 0.0, 0.0, 0.0
	for i := 0; i < 200000; i++ {
		x := g.next()
		m := (uint64(x[0])<<32 | uint64(x[1])) >> 11
		u := float64(1<<53-m) * (1.0 / (1 << 53))
		if i%4 == 0 { // also tiny arguments
			u = math.Ldexp(u, -int(x[2]%40))
		}
		worstLog = math.Max(worstLog, ulps(stableLog(u), math.Log(u)))
		// Kernels on [−π/4, π/4] against the standard library, in ulps.
		tk := (float64(x[2])/(1<<32)*2 - 1) * (math.Pi / 4)
		worstS = math.Max(worstS, ulps(sinKernel(tk), math.Sin(tk)))
		worstC = math.Max(worstC, ulps(cosKernel(tk), math.Cos(tk)))
		// Whole turn: absolute error, allowing for the rounding of θ itself
		// in the reference (ulp(2π) = 2^-50).
		mb := (uint64(x[2])<<32 | uint64(x[3])) >> 11
		s, c := sincosTurn(mb)
		ws, wc := math.Sincos(2 * math.Pi * float64(mb) / (1 << 53))
		if math.Abs(s-ws) > 0x1p-48 || math.Abs(c-wc) > 0x1p-48 {
			t.Fatalf("sincosTurn(%d) = %g, %g; math.Sincos %g, %g", mb, s, c, ws, wc)
		}
	}
	t.Logf("worst vs math: log %.2f ulp, sin kernel %.2f ulp, cos kernel %.2f ulp", worstLog, worstS, worstC)
	if worstLog > 2 || worstS > 2 || worstC > 2 {
		t.Errorf("portable math too inaccurate: log %.2f ulp, sin %.2f, cos %.2f", worstLog, worstS, worstC)
	}
	if stableLog(1) != 0 {
		t.Errorf("log 1 = %g", stableLog(1))
	}
	for _, c := range []struct {
		m    uint64
		s, c float64
	}{{0, 0, 1}, {1 << 51, 1, 0}, {1 << 52, 0, -1}, {3 << 51, -1, 0}} {
		s, co := sincosTurn(c.m)
		if math.Abs(s-c.s) > 1e-16 || math.Abs(co-c.c) > 1e-16 {
			t.Errorf("sincosTurn(%d) = %g, %g want %g, %g", c.m, s, co, c.s, c.c)
		}
	}
}

// fma32 is a correctly rounded float32 fused multiply-add, including the
// double-rounding trap where a float64 FMA then float32 conversion is wrong.
func TestFMA32(t *testing.T) {
	// 8390656·16773121 = 2^47 + 2^11, so x·y = 2^-24 + 2^-60 and 1 + x·y lies
	// just above a float32 tie: it must round up to 1 + 2^-23.
	x, y := float32(8390656), float32(16773121*0x1p-71)
	if naive := float32(math.FMA(float64(x), float64(y), 1)); naive != 1 {
		t.Fatalf("test premise: naive float64 FMA gives %v, expected the double-rounded 1", naive)
	}
	if got, want := fma32(x, y, 1), float32(1+0x1p-23); got != want {
		t.Errorf("fma32 tie case = %v, want %v", got, want)
	}
	if got, want := fma32(-x, y, -1), float32(-1-0x1p-23); got != want {
		t.Errorf("fma32 negative tie case = %v, want %v", got, want)
	}
	// The mirrored case below 1.
	if got, want := fma32(x, -y, 1), fmaBig(x, -y, 1); got != want {
		t.Errorf("fma32(x, −y, 1) = %v, want %v", got, want)
	}
	// Float32 subnormal results.
	for _, c := range [][3]float32{{0x1p-70, 0x1p-70, 0x1p-149}, {0x1.8p-75, 0x1.000002p-65, -0x1p-140}, {3, 0x1p-150, 0x1p-149}} {
		if got, want := fma32(c[0], c[1], c[2]), fmaBig(c[0], c[1], c[2]); got != want {
			t.Errorf("fma32%v = %g, want %g", c, got, want)
		}
	}
	g := NewTorchCPU(1)
	for i := 0; i < 20000; i++ {
		a := float32(g.Float64()*4 - 2)
		b := float32(math.Ldexp(g.Float64()*4-2, -int(g.Uint32()%40)))
		c := float32(g.Float64()*4 - 2)
		want := fmaBig(a, b, c)
		if got := fma32(a, b, c); got != want {
			t.Fatalf("fma32(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
		if got := fma32Odd(a, b, c); got != want {
			t.Fatalf("fma32Odd(%v, %v, %v) = %v, want %v", a, b, c, got, want)
		}
	}
}

func fmaBig(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(200).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(200).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(200).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}
