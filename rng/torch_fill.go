package rng

import "math"

// boxMuller16 turns 16 uniforms in [0,1) into 16 normals in place, as
// PyTorch's normal_fill_16_AVX2 does: lanes j and j+8 form a pair,
// u1 = 1 − d[j] (so log never sees 0), u2 = d[j+8],
// r = sqrt(−2·log u1), θ = float32(2π)·u2, d[j] = r·cos θ, d[j+8] = r·sin θ,
// all in float32 with the Cephes approximations of cephes.go.
func boxMuller16(d []float32) {
	_ = d[15]
	const twoPi = float32(2 * math.Pi)
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(-2 * cephesLogf(u1)))) // sqrt of a float32 via float64 is correctly rounded
		theta := float32(twoPi * u2)
		s, c := cephesSincosf(theta)
		d[j] = float32(radius * c)
		d[j+8] = float32(radius * s)
	}
}
