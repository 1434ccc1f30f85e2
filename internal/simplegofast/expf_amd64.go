//go:build amd64 && !purego

package simplegofast

import (
	"math"

	"golang.org/x/sys/cpu"
)

// expAVX2 is the AVX2/FMA exp kernel of expf_amd64.s (n a multiple of 8).
//
//go:noescape
func expAVX2(dst, src *float32, n int, c *[13][8]float32)

var expConsts = func() (c [13][8]float32) {
	vals := [13]float32{expLo, expHi, log2e, -ln2Hi, -ln2Lo, expC7, expC6, expC5, expC4, expC3, expC2, 1, math.Float32frombits(127)}
	for i, v := range vals {
		for j := range c[i] {
			c[i][j] = v
		}
	}
	return c
}()

var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// expFloat32 sets dst[i] = exp(src[i]) (len(src) ≥ len(dst)); dst may be src.
func expFloat32(dst, src []float32) {
	src = src[:len(dst)]
	n := len(dst) &^ 7
	if hasAVX2 && n > 0 {
		expAVX2(&dst[0], &src[0], n, &expConsts)
	} else {
		n = 0
	}
	expGo(dst[n:], src[n:])
}
