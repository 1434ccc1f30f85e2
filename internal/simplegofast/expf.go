package simplegofast

import "math"

// Vectorisable float32 exp, written for this package.
//
// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (Cody–Waite:
// ln 2 split into a 9-bit high part, so n·ln2Hi is exact, and a low part),
// |r| ≤ ln2/2 ≈ 0.347. e^r is the degree-7 Taylor polynomial (truncation
// error r⁸/8! ≤ 5.3e-9 relative, well below float32's 6e-8 half ulp). 2^n
// is applied as two powers of two, 2^(n>>1) and 2^(n−n>>1), each a normal
// float32 for every n in [−150, 129], so results that overflow become +Inf
// and tiny ones denormals or 0 with a single rounding. x is clamped to
// [expLo, expHi] first (below, exp rounds to 0; above, to +Inf); NaN stays
// NaN. The AVX2 kernel (expf_amd64.s) computes the same steps with FMAs.
const (
	expLo    = -104.0
	expHi    = 89.0
	log2e    = 1.44269504088896340736
	ln2Hi    = 0.693359375 // 355/512
	ln2Lo    = -2.12194440e-4
	expC2    = 1.0 / 2
	expC3    = 1.0 / 6
	expC4    = 1.0 / 24
	expC5    = 1.0 / 120
	expC6    = 1.0 / 720
	expC7    = 1.0 / 5040
	roundMag = 12582912.0 // 1.5·2^23: adding and subtracting it rounds to an integer
)

// expf32 is the scalar form of the kernel (tails, and CPUs without AVX2).
func expf32(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expLo), expHi)
	t := x * float32(log2e)
	n := (t + roundMag) - roundMag
	r := x - n*float32(ln2Hi)
	r = r - n*float32(ln2Lo)
	p := float32(expC7)
	p = p*r + float32(expC6)
	p = p*r + float32(expC5)
	p = p*r + float32(expC4)
	p = p*r + float32(expC3)
	p = p*r + float32(expC2)
	p = p*r + 1
	p = p*r + 1
	ni := int32(n)
	n1 := ni >> 1
	n2 := ni - n1
	s1 := math.Float32frombits(uint32(n1+127) << 23)
	s2 := math.Float32frombits(uint32(n2+127) << 23)
	return p * s1 * s2
}

// expGo computes dst[i] = exp(src[i]) with expf32; dst may be src.
func expGo(dst, src []float32) {
	src = src[:len(dst)]
	for i, x := range src {
		dst[i] = expf32(x)
	}
}
