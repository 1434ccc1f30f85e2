package rng

import "math"

// Platform-independent float64 log and sin/cos for the Philox sampler.
//
// Go may fuse a*b+c into one FMA on some architectures (arm64, ppc64le,
// s390x, riscv64, amd64 with GOAMD64=v3), and math.Log has assembly on some
// of them, so the standard library can differ in the last bit between
// platforms. These routines use only +, −, ×, ÷ with every product
// explicitly rounded (float64(...) conversions forbid fusion), so their
// results are the same bits everywhere. Both are accurate to about 1 ulp.

// fdlibm's log polynomial (e_log.c).
const (
	ln2Hi = 6.93147180369123816490e-01 // 0x3fe62e42fee00000
	ln2Lo = 1.90821492927058770002e-10 // 0x3dea39ef35793c76
	lg1   = 6.666666666666735130e-01
	lg2   = 3.999999999940941908e-01
	lg3   = 2.857142874366239149e-01
	lg4   = 2.222219843214978396e-01
	lg5   = 1.818357216161805012e-01
	lg6   = 1.531383769920937332e-01
	lg7   = 1.479819860511658591e-01
)

// stableLog returns ln x for finite x > 0 (normal numbers; the Philox
// sampler only passes x in [2^-53, 1]).
func stableLog(x float64) float64 {
	b := math.Float64bits(x)
	k := int(b>>52) - 1023
	f1 := math.Float64frombits(b&(1<<52-1) | 1023<<52) // [1, 2)
	if f1 > math.Sqrt2 {
		f1 = float64(f1 * 0.5)
		k++
	}
	f := f1 - 1
	kf := float64(k)
	s := f / (2 + f)
	s2 := float64(s * s)
	s4 := float64(s2 * s2)
	t1 := float64(s2 * (lg1 + float64(s4*(lg3+float64(s4*(lg5+float64(s4*lg7)))))))
	t2 := float64(s4 * (lg2 + float64(s4*(lg4+float64(s4*lg6)))))
	r := t1 + t2
	hfsq := float64(float64(0.5*f) * f)
	return float64(kf*ln2Hi) - ((hfsq - (float64(s*(hfsq+r)) + float64(kf*ln2Lo))) - f)
}

// fdlibm's sin/cos kernels on [−π/4, π/4] (k_sin.c, k_cos.c).
const (
	sinS1 = -1.66666666666666324348e-01
	sinS2 = 8.33333333332248946124e-03
	sinS3 = -1.98412698298579493134e-04
	sinS4 = 2.75573137070700676789e-06
	sinS5 = -2.50507602534068634195e-08
	sinS6 = 1.58969099521155010221e-10
	cosC1 = 4.16666666666666019037e-02
	cosC2 = -1.38888888888741095749e-03
	cosC3 = 2.48015872894767294178e-05
	cosC4 = -2.75573143513906633035e-07
	cosC5 = 2.08757232129817482790e-09
	cosC6 = -1.13596475577881948265e-11
)

func sinKernel(x float64) float64 {
	z := float64(x * x)
	r := sinS2 + float64(z*(sinS3+float64(z*(sinS4+float64(z*(sinS5+float64(z*sinS6)))))))
	v := float64(z * x)
	return x + float64(v*(sinS1+float64(z*r)))
}

func cosKernel(x float64) float64 {
	z := float64(x * x)
	r := cosC1 + float64(z*(cosC2+float64(z*(cosC3+float64(z*(cosC4+float64(z*(cosC5+float64(z*cosC6)))))))))
	hz := float64(0.5 * z)
	w := 1 - hz
	return w + (((1 - w) - hz) + float64(float64(z*z)*r))
}

// sincosTurn returns sin and cos of 2π·m/2^53 for an integer 0 ≤ m < 2^53.
// The octant is taken from the top three bits of m, so the argument
// reduction is exact; only the in-octant angle g·π/4 (|g| ≤ 1) is rounded.
func sincosTurn(m uint64) (sin, cos float64) {
	const fracBits = 50
	oct := m >> fracBits                                               // 0..7
	g := float64(float64(m&(1<<fracBits-1)) * (1.0 / (1 << fracBits))) // [0, 1), exact
	q := oct >> 1
	if oct&1 != 0 { // upper half of the octant pair: measure from the next axis
		g = g - 1 // exact
		q++
	}
	t := float64(g * (math.Pi / 4))
	s, c := sinKernel(t), cosKernel(t)
	switch q & 3 {
	case 0:
		return s, c
	case 1:
		return c, -s
	case 2:
		return -s, -c
	default:
		return -c, s
	}
}
