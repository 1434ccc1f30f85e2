//go:build amd64 && !purego

package simplegofast

import "math"

// erfAVX2 is the AVX2/FMA erf kernel of erf_amd64.s (n a multiple of 4).
//
//go:noescape
func erfAVX2(dst, src, ex2 *float32, n int, c *[23][4]float64)

var erfConsts = func() (c [23][4]float64) {
	var vals []float64
	vals = append(vals, erfP[:]...)
	vals = append(vals, erfQ[:]...)
	vals = append(vals, 1, math.Float64frombits(1<<63-1), math.Float64frombits(1<<63))
	for i, v := range vals {
		for j := range c[i] {
			c[i][j] = v
		}
	}
	return c
}()

// erfBlock sets dst[i] = erf(src[i]) given ex2[i] = exp(−src[i]²).
func erfBlock(dst, src, ex2 []float32) {
	n := len(dst) &^ 3
	if hasAVX2 && n > 0 {
		erfAVX2(&dst[0], &src[0], &ex2[0], n, &erfConsts)
	} else {
		n = 0
	}
	for i := n; i < len(dst); i++ {
		dst[i] = erfOne(src[i], ex2[i])
	}
}
