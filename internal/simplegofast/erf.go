package simplegofast

import "math"

// float32 erf for GELU, written for this package:
//
//	|x| < 1:     erf(x) = x·P(x²)
//	1 ≤ |x| < 4: erf(x) = ±(1 − e^(−x²)·Q(1/|x|))
//	|x| ≥ 4:     ±1 (erf(4) = 1 − 1.5e-8 rounds to 1 in float32)
//
// P and Q are Chebyshev fits (made with mpmath.chebyfit, highest degree
// first) of erf(x)/x on u = x² ∈ [0, 1] (error 3.4e-11) and of
// erfc(x)·e^(x²) on t = 1/x ∈ [1/4, 1] (error 5.7e-11), evaluated in
// float64; e^(−x²) comes from the float32 exp kernel (≤ 1 ulp), whose error
// is scaled down by erfc(x) ≤ 0.16. The result is within about 1 ulp of
// float32(math.Erf(float64(x))) (see TestErfAccuracy).
var erfP = [...]float64{-9.6670445714869964152e-6, 0.00011265959025606608973, -0.00084840804055351062944, 0.0052210318078580227973, -0.026865430727670242894, 0.1128378249523684454, -0.37612638468028710398, 1.1283791670615434152}

var erfQ = [...]float64{0.028486298958643835136, -0.22922980151553568537, 0.8356866671657935441, -1.8141960052186221523, 2.5750778931587959997, -2.4278657457948090032, 1.3948094029884271856, -0.2585984943758684535, -0.23574984202229502782, -0.0053794885587314221769, 0.56455348786801031493, -0.000010796443761245623103}

// erfFloat32 sets dst[i] = erf(src[i]); dst may be src.
func erfFloat32(dst, src []float32) {
	var e [256]float32
	for len(dst) > 0 {
		n := min(len(dst), len(e))
		x, y, t := src[:n], dst[:n], e[:n]
		for i, v := range x {
			v64 := float64(v)
			t[i] = float32(-v64 * v64)
		}
		expFloat32(t, t)
		erfBlock(y, x, t)
		dst, src = dst[n:], src[n:]
	}
}

// erfOne is erf(x) given ex2 = exp(−x²). Both forms are computed and one
// is picked with a mask: with the sign of activations and |x| < 1 random,
// branches would mispredict and serialise the long polynomial chains. For
// |x| ≥ 4, e^(−x²)·Q ≤ 1.6e-8 leaves 1 after rounding to float32 (Q is
// evaluated a little outside its interval there, harmlessly); ±Inf gives
// ±1 and NaN gives NaN.
func erfOne(x, ex2 float32) float32 {
	a := math.Abs(float64(x))
	u := a * a
	p := erfP[0]
	for _, c := range erfP[1:] {
		p = p*u + c
	}
	p *= a
	s := 1 / max(a, 1)
	q := erfQ[0]
	for _, c := range erfQ[1:] {
		q = q*s + c
	}
	q = 1 - float64(ex2)*q
	var m uint64
	if a < 1 {
		m = ^uint64(0)
	}
	r := math.Float64frombits(math.Float64bits(p)&m | math.Float64bits(q)&^m)
	return float32(math.Copysign(r, float64(x)))
}
