//go:build amd64 && !purego

package simplegofast

import (
	"unsafe"

	"github.com/x448/float16"
)

// cvtHalfF16C converts n float16 values (n a multiple of 32) with F16C's
// VCVTPH2PS (convert_amd64.s).
//
//go:noescape
func cvtHalfF16C(dst *float32, src *uint16, n int)

// cpuidECX1 is CPUID leaf 1's ECX (feature bits).
func cpuidECX1() uint32

// hasF16C: CPUID.1:ECX bit 29, with the AVX state the OS saves (F16C uses
// YMM registers; hasAVX2 implies the OS support).
var hasF16C = hasAVX2 && cpuidECX1()&(1<<29) != 0

// halfToFloat32 converts float16 values to float32, exactly.
func halfToFloat32(dst []float32, src []float16.Float16) {
	src = src[:len(dst)]
	n := len(dst) &^ 31
	if hasF16C && n > 0 {
		cvtHalfF16C(&dst[0], (*uint16)(unsafe.Pointer(&src[0])), n)
	} else {
		n = 0
	}
	halfToFloat32Go(dst[n:], src[n:])
}
