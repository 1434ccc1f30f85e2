//go:build amd64 && !purego

package simplegofast

import "math"

// AVX2 row kernels of rows_amd64.s (see there).
//
//go:noescape
func divVSAVX2(dst, a *float32, n int, v float32)

//go:noescape
func divVVAVX2(dst, a, b *float32, n int)

//go:noescape
func maxAVX2(x *float32, n int, acc *[16]float32) (nan bool)

// divVS sets dst[i] = a[i] / v.
func divVS(dst, a []float32, v float32) {
	a = a[:len(dst)]
	n := len(dst) &^ 7
	if hasAVX2 && n > 0 {
		divVSAVX2(&dst[0], &a[0], n, v)
	} else {
		n = 0
	}
	for i := n; i < len(dst); i++ {
		dst[i] = a[i] / v
	}
}

// divVV sets dst[i] = a[i] / b[i].
func divVV(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	n := len(dst) &^ 7
	if hasAVX2 && n > 0 {
		divVVAVX2(&dst[0], &a[0], &b[0], n)
	} else {
		n = 0
	}
	for i := n; i < len(dst); i++ {
		dst[i] = a[i] / b[i]
	}
}

// maxRow is max(init, x...) with Go's max semantics (NaN wins, +0 above
// −0): VMAXPS over the bulk, Go's max for the lanes and the tail; a NaN,
// or a zero maximum (where VMAXPS may have picked −0), is redone in Go.
func maxRow(x []float32, init float32) float32 {
	n := len(x) &^ 15
	if !hasAVX2 || n == 0 {
		return maxRowGo(x, init)
	}
	var acc [16]float32
	for j := range acc {
		acc[j] = init
	}
	if maxAVX2(&x[0], n, &acc) {
		return float32(math.NaN())
	}
	m := init
	for _, v := range acc {
		m = max(m, v)
	}
	for _, v := range x[n:] {
		m = max(m, v)
	}
	if m == 0 || m != m {
		return maxRowGo(x, init)
	}
	return m
}
