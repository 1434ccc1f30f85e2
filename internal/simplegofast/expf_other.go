//go:build !amd64 || purego

package simplegofast

// expFloat32 sets dst[i] = exp(src[i]) (len(src) ≥ len(dst)); dst may be src.
func expFloat32(dst, src []float32) { expGo(dst, src) }

// erfBlock sets dst[i] = erf(src[i]) given ex2[i] = exp(−src[i]²).
func erfBlock(dst, src, ex2 []float32) {
	for i := range dst {
		dst[i] = erfOne(src[i], ex2[i])
	}
}
