//go:build !amd64 || purego

package simplegofast

// expFloat32 sets dst[i] = exp(src[i]) (len(src) ≥ len(dst)); dst may be src.
func expFloat32(dst, src []float32) { expGo(dst, src) }
