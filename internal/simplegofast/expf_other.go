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

// divVS sets dst[i] = a[i] / v.
func divVS(dst, a []float32, v float32) {
	a = a[:len(dst)]
	for i := range dst {
		dst[i] = a[i] / v
	}
}

// divVV sets dst[i] = a[i] / b[i].
func divVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] / b[i]
	}
}

func maxRow(x []float32, init float32) float32 { return maxRowGo(x, init) }
