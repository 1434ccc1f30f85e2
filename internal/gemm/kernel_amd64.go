//go:build amd64 && !purego

package gemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate go run gen_kernel.go

// kernel6x16 is the AVX2/FMA micro-kernel of kernel_amd64.s: the 6×16 tile
// at c (row stride ldc floats) is set to (accumulate == 0) or incremented by
// (accumulate != 0) the product of the packed A micro-panel a (kc×6) and
// the packed B micro-panel b (kc×16). kc ≥ 0.
//
//go:noescape
func kernel6x16(kc int, a, b, c *float32, ldc int, accumulate int)

// kernel6x16rows is kernel6x16 reading A in place: row r of the 6×kc
// block at a + r·lda, contiguous along k.
//
//go:noescape
func kernel6x16rows(kc int, a *float32, lda int, b, c *float32, ldc int, accumulate int)

// packBT16 interleaves 16 rows of B-transposed, 8·groups values each,
// into a k-major panel: dst[k*16+j] = src[j*ldb+k].
//
//go:noescape
func packBT16(groups int, src *float32, ldb int, dst *float32)

// kernel6x32z is the AVX-512F micro-kernel: the 6×32 tile at c set to or
// incremented by the product of the packed A micro-panel a (kc×6) and two
// adjacent packed B panels at b (kc×16 each, the second kc·16 floats after
// the first).
//
//go:noescape
func kernel6x32z(kc int, a, b, c *float32, ldc int, accumulate int)

// kernel6x32zrows is kernel6x32z reading A in place, as kernel6x16rows.
//
//go:noescape
func kernel6x32zrows(kc int, a *float32, lda int, b, c *float32, ldc int, accumulate int)

// packRows16 scatters kc rows of a row-major B (ldb floats apart) into
// panels k-major 16-wide panels: dst[p*kc*16+k*16+j] = src[k*ldb+p*16+j].
//
//go:noescape
func packRows16(kc, panels int, src *float32, ldb int, dst *float32)

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		archPackRows = avx2PackRows
		archKernel = avx2Kernel
		archRowsKernel = avx2RowsKernel
		archPackBT = avx2PackBT
		archKernelName = "avx2-fma-6x16"
		// x/sys/cpu reports AVX-512F only when the OS saves the ZMM and
		// opmask state too.
		if cpu.X86.HasAVX512F {
			archWide = avx512Kernel
			archWideRows = avx512RowsKernel
			archWideName = "avx512-6x32"
		}
	}
}

// avx512Kernel adapts kernel6x32z to the microKernel signature (b covering
// both panels), bounds checked like avx2Kernel.
func avx512Kernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	_ = a[kc*mr-1]
	_ = b[2*kc*nr-1]
	_ = c[(mr-1)*ldc+2*nr-1]
	acc := 0
	if accumulate {
		acc = 1
	}
	kernel6x32z(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, acc)
}

// avx512RowsKernel adapts kernel6x32zrows to the rowsKernel signature.
func avx512RowsKernel(kc int, a []float32, lda int, b, c []float32, ldc int, accumulate bool) {
	_ = a[(mr-1)*lda+kc-1]
	_ = b[2*kc*nr-1]
	_ = c[(mr-1)*ldc+2*nr-1]
	acc := 0
	if accumulate {
		acc = 1
	}
	kernel6x32zrows(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc, acc)
}

// avx2RowsKernel adapts kernel6x16rows to the rowsKernel signature, with
// the same bounds checks as avx2Kernel.
func avx2RowsKernel(kc int, a []float32, lda int, b, c []float32, ldc int, accumulate bool) {
	_ = a[(mr-1)*lda+kc-1]
	_ = b[kc*nr-1]
	_ = c[(mr-1)*ldc+nr-1]
	acc := 0
	if accumulate {
		acc = 1
	}
	kernel6x16rows(kc, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc, acc)
}

// avx2Kernel adapts kernel6x16 to the microKernel signature. The callers
// have sliced a, b and c to the exact extents the kernel touches, so the
// bounds are checked before any pointer reaches assembly.
func avx2Kernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	_ = a[kc*mr-1]
	_ = b[kc*nr-1]
	_ = c[(mr-1)*ldc+nr-1]
	acc := 0
	if accumulate {
		acc = 1
	}
	kernel6x16(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, acc)
}

// avx2PackBT is packBT16 on slices, bounds checked, with the k tail in Go.
func avx2PackBT(kc int, src []float32, ldb int, dst []float32) {
	_ = src[(nr-1)*ldb+kc-1]
	_ = dst[kc*nr-1]
	g := kc / 8
	if g > 0 {
		packBT16(g, unsafe.SliceData(src), ldb, unsafe.SliceData(dst))
	}
	for kk := g * 8; kk < kc; kk++ {
		q := dst[kk*nr : kk*nr+nr : kk*nr+nr]
		for j := range q {
			q[j] = src[j*ldb+kk]
		}
	}
}

// avx2PackRows is packRows16 on slices, bounds checked.
func avx2PackRows(kc, panels int, src []float32, ldb int, dst []float32) {
	if kc <= 0 || panels <= 0 {
		return
	}
	_ = src[(kc-1)*ldb+panels*nr-1]
	_ = dst[panels*kc*nr-1]
	packRows16(kc, panels, unsafe.SliceData(src), ldb, unsafe.SliceData(dst))
}
