package gemm

import "os"

// Register tile of the micro-kernels: mr rows of A by nr columns of B.
const (
	mr = 6
	nr = 16
)

// microKernel sets (or, with accumulate, increments) the mr×nr tile c (row
// stride ldc) to the product of the packed micro-panels a (kc×mr, k-major)
// and b (kc×nr, k-major). kc ≥ 1; a, b and c cover exactly that extent.
type microKernel func(kc int, a, b, c []float32, ldc int, accumulate bool)

// rowsKernel is a microKernel reading A unpacked: row r of the mr×kc block
// is a[r*lda : r*lda+kc].
type rowsKernel func(kc int, a []float32, lda int, b, c []float32, ldc int, accumulate bool)

// packBTFunc packs one column panel of a B stored transposed (column j of
// the panel contiguous along k at src[j*ldb:]): dst[k*nr+j] = src[j*ldb+k]
// for k < kc, j < nr.
type packBTFunc func(kc int, src []float32, ldb int, dst []float32)

// packRowsFunc packs panels full column panels of a row-major B (row k at
// src[k*ldb:]): dst[p*kc*nr+k*nr+j] = src[k*ldb+p*nr+j].
type packRowsFunc func(kc, panels int, src []float32, ldb int, dst []float32)

var (
	// archPackBT is the assembly packBTFunc, nil when there is none.
	archPackBT packBTFunc

	// archPackRows is the assembly packRowsFunc, nil when there is none.
	archPackRows packRowsFunc

	// archRowsKernel is the assembly rowsKernel, nil when there is none.
	archRowsKernel rowsKernel

	// archKernel is the assembly kernel for this CPU, chosen at init time;
	// nil when there is none (other architectures, no AVX2/FMA, purego).
	archKernel     microKernel
	archKernelName string

	// archWide and archWideRows are the AVX-512 kernels of an mr×2nr tile
	// over two adjacent packed B panels (b covers 2·kc·nr values: the second
	// panel kc·nr after the first), packed and in-place A; nil when the CPU
	// (or the OS) has no AVX-512F. They add the k terms of each element in
	// the same order as archKernel, so results are the same bits.
	archWide     microKernel
	archWideRows rowsKernel
	archWideName string

	// kernelLevel caps the kernels used: levelBest, levelAVX2 (no AVX-512)
	// or levelGeneric (pure Go). Set from EnvKernel at init; tests and
	// benchmarks change it to compare.
	kernelLevel = levelBest
)

// Kernel levels, best first.
const (
	levelBest = iota
	levelAVX2
	levelGeneric
)

// EnvKernel caps the micro-kernel: "avx2" leaves the AVX-512 kernels out,
// "generic" uses the pure-Go one (for comparisons and for CPUs where the
// faster ones misbehave). Unset or anything else: the best this CPU has.
const EnvKernel = "LDM_GEMM_KERNEL"

func init() {
	switch os.Getenv(EnvKernel) {
	case "avx2":
		kernelLevel = levelAVX2
	case "generic":
		kernelLevel = levelGeneric
	}
}

// activePackRows returns the assembly row-major packer, or nil.
func activePackRows() packRowsFunc {
	if kernelLevel >= levelGeneric {
		return nil
	}
	return archPackRows
}

// activePackBT returns the assembly panel packer, or nil.
func activePackBT() packBTFunc {
	if kernelLevel >= levelGeneric {
		return nil
	}
	return archPackBT
}

// kernels is the set of micro-kernels a product uses. rows is nil when A
// must always be packed; wide and wideRows are nil without AVX-512.
type kernels struct {
	packed   microKernel
	rows     rowsKernel
	wide     microKernel
	wideRows rowsKernel
	name     string
}

// activeKernels returns the micro-kernels to use under kernelLevel.
func activeKernels() kernels {
	if archKernel == nil || kernelLevel >= levelGeneric {
		return kernels{packed: genericKernel, name: "generic-go"}
	}
	k := kernels{packed: archKernel, rows: archRowsKernel, name: archKernelName}
	if archWide != nil && kernelLevel == levelBest {
		k.wide, k.wideRows, k.name = archWide, archWideRows, archWideName
	}
	return k
}

// KernelName says which micro-kernels products use: "avx512-6x32" (with
// the AVX2 6×16 one at the edges), "avx2-fma-6x16" or "generic-go".
func KernelName() string {
	return activeKernels().name
}

// genericKernel is the portable micro-kernel: plain Go over the same packed
// layout, two rows by eight columns at a time in locals.
func genericKernel(kc int, a, b, c []float32, ldc int, accumulate bool) {
	a = a[:kc*mr]
	b = b[:kc*nr]
	_ = c[(mr-1)*ldc+nr-1]
	for r := 0; r < mr; r += 2 {
		for j := 0; j < nr; j += 8 {
			var s00, s01, s02, s03, s04, s05, s06, s07 float32
			var s10, s11, s12, s13, s14, s15, s16, s17 float32
			for k := range kc {
				a0, a1 := a[k*mr+r], a[k*mr+r+1]
				bb := b[k*nr+j : k*nr+j+8 : k*nr+j+8]
				s00 += a0 * bb[0]
				s01 += a0 * bb[1]
				s02 += a0 * bb[2]
				s03 += a0 * bb[3]
				s04 += a0 * bb[4]
				s05 += a0 * bb[5]
				s06 += a0 * bb[6]
				s07 += a0 * bb[7]
				s10 += a1 * bb[0]
				s11 += a1 * bb[1]
				s12 += a1 * bb[2]
				s13 += a1 * bb[3]
				s14 += a1 * bb[4]
				s15 += a1 * bb[5]
				s16 += a1 * bb[6]
				s17 += a1 * bb[7]
			}
			c0 := c[r*ldc+j : r*ldc+j+8 : r*ldc+j+8]
			c1 := c[(r+1)*ldc+j : (r+1)*ldc+j+8 : (r+1)*ldc+j+8]
			if !accumulate {
				clear(c0)
				clear(c1)
			}
			c0[0] += s00
			c0[1] += s01
			c0[2] += s02
			c0[3] += s03
			c0[4] += s04
			c0[5] += s05
			c0[6] += s06
			c0[7] += s07
			c1[0] += s10
			c1[1] += s11
			c1[2] += s12
			c1[3] += s13
			c1[4] += s14
			c1[5] += s15
			c1[6] += s16
			c1[7] += s17
		}
	}
}
