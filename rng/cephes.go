package rng

import "math"

// Single-precision logarithm and sine/cosine after Cephes logf/sinf/cosf as
// vectorised in Julien Pommier's sse_mathfun / avx_mathfun, which PyTorch's
// AVX2 normal kernel calls. PyTorch's x86-64 wheels are built by GCC with
// -mfma and GCC's default floating-point contraction, which turns each vector
// multiply whose only use is an add/subtract into one fused multiply-add; the
// code below reproduces exactly that: fma32 where GCC fuses, and otherwise
// separately rounded float32 operations (explicit float32 conversions stop Go
// from fusing on its own).

const (
	cephesSqrtHalf = float32(0.707106781186547524)
	logP0          = float32(7.0376836292e-2)
	logP1          = float32(-1.1514610310e-1)
	logP2          = float32(1.1676998740e-1)
	logP3          = float32(-1.2420140846e-1)
	logP4          = float32(+1.4249322787e-1)
	logP5          = float32(-1.6668057665e-1)
	logP6          = float32(+2.0000714765e-1)
	logP7          = float32(-2.4999993993e-1)
	logP8          = float32(+3.3333331174e-1)
	logQ1          = float32(-2.12194440e-4)
	logQ2          = float32(0.693359375)
)

// cephesLogf is log for x > 0 (callers pass x in (0, 1]).
func cephesLogf(x float32) float32 {
	if x <= 0 {
		return float32(math.NaN())
	}
	if x < 0x1p-126 {
		x = 0x1p-126
	}
	bits := math.Float32bits(x)
	e := float32(int32(bits>>23) - 0x7f)
	e = e + 1
	m := math.Float32frombits(bits&^0x7f800000 | 0x3f000000) // mantissa in [0.5, 1)
	var t float32
	if m < cephesSqrtHalf {
		t = m
		e = e - 1
	}
	m = m - 1
	m = m + t

	z := float32(m * m)
	y := logP0
	y = fma32(y, m, logP1)
	y = fma32(y, m, logP2)
	y = fma32(y, m, logP3)
	y = fma32(y, m, logP4)
	y = fma32(y, m, logP5)
	y = fma32(y, m, logP6)
	y = fma32(y, m, logP7)
	y = fma32(y, m, logP8)
	y = float32(y * m)
	y = fma32(y, z, float32(e*logQ1))
	y = fma32(-z, 0.5, y)
	m = m + y
	m = fma32(e, logQ2, m)
	return m
}

const (
	minusDP1 = float32(-0.78515625)
	minusDP2 = float32(-2.4187564849853515625e-4)
	minusDP3 = float32(-3.77489497744594108e-8)
	sinP0    = float32(-1.9515295891e-4)
	sinP1    = float32(8.3321608736e-3)
	sinP2    = float32(-1.6666654611e-1)
	cosP0    = float32(2.443315711809948e-005)
	cosP1    = float32(-1.388731625493765e-003)
	cosP2    = float32(4.166664568298827e-002)
	fourOPi  = float32(1.27323954473516)
)

// cephesSincosf returns sin x, cos x (|x| < 2^24·π/4).
func cephesSincosf(x float32) (sin, cos float32) {
	bits := math.Float32bits(x)
	signSin := bits & 0x80000000
	x = math.Float32frombits(bits &^ 0x80000000)

	j := int32(float32(x * fourOPi)) // truncation
	j = (j + 1) &^ 1
	y := float32(j)
	swapSin := uint32(j&4) << 29
	polyMask := j&2 == 0
	signSin ^= swapSin
	signCos := uint32((^(j - 2))&4) << 29

	x = fma32(y, minusDP1, x)
	x = fma32(y, minusDP2, x)
	x = fma32(y, minusDP3, x)

	z := float32(x * x)
	c := cosP0
	c = fma32(c, z, cosP1)
	c = fma32(c, z, cosP2)
	c = float32(c * z)
	c = fma32(c, z, -float32(z*0.5))
	c = c + 1

	s := sinP0
	s = fma32(s, z, sinP1)
	s = fma32(s, z, sinP2)
	s = float32(s * z)
	s = fma32(s, x, x)

	// Select as the vector code does: sin takes the sine polynomial where
	// polyMask holds, cos the other one.
	var ys1, ys2 float32 // andnot(mask, c), and(mask, s)
	if polyMask {
		ys2 = s
	} else {
		ys1 = c
	}
	s = s - ys2
	c = c - ys1
	sv := ys1 + ys2
	cv := c + s
	return math.Float32frombits(math.Float32bits(sv) ^ signSin),
		math.Float32frombits(math.Float32bits(cv) ^ signCos)
}

// fma32 returns x*y+z rounded once to float32, as the FMA instructions that
// GCC contracts the vector code into do. The product of two float32 values is
// exact in float64, so s = x*y+z rounded to float64 carries one rounding;
// rounding s to float32 is then already correct unless s sits exactly on a
// float32 rounding midpoint or is below 2^-126 (a float32 subnormal), which
// fma32Odd settles.
func fma32(x, y, z float32) float32 {
	s := float64(float64(x)*float64(y)) + float64(z)
	if b := math.Float64bits(s); b&(1<<29-1) == 1<<28 || b&(1<<63-1) < 0x3810000000000000 {
		return fma32Odd(x, y, z)
	}
	return float32(s)
}

// fma32Odd rounds x*y+z to float32 through round-to-odd in float64: with the
// exact product p, s = p+z rounded and its exact error e (TwoSum), if e ≠ 0
// and s is even, s steps one ulp toward the exact value. A single rounding
// of that to float32 is correct since 53 ≥ 24+2.
func fma32Odd(x, y, z float32) float32 {
	p, c := float64(float64(x)*float64(y)), float64(z)
	s := p + c
	bb := s - p
	e := (p - (s - bb)) + (c - bb)
	b := math.Float64bits(s)
	if e != 0 && b&1 == 0 {
		if (e > 0) == (s > 0) {
			b++ // away from zero
		} else {
			b-- // toward zero
		}
	}
	return float32(math.Float64frombits(b))
}
