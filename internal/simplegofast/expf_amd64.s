//go:build amd64 && !purego

#include "textflag.h"

// func expAVX2(dst, src *float32, n int, c *[13][8]float32)
//
// dst[i] = exp(src[i]) for i < n (n a multiple of 8), the algorithm of
// expf.go. c holds the constants, each repeated 8 times: 0 expLo, 1 expHi,
// 2 log2e, 3 −ln2Hi, 4 −ln2Lo, 5..10 the coefficients of r⁷..r², 11 1.0,
// 12 the int32 127.
TEXT ·expAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8
	VMOVUPS 0(R8), Y15
	VMOVUPS 32(R8), Y14
	VMOVUPS 64(R8), Y13
	VMOVUPS 96(R8), Y12
	VMOVUPS 128(R8), Y11
	VMOVUPS 160(R8), Y10
	VMOVUPS 352(R8), Y9
	VMOVUPS 384(R8), Y8

loop:
	CMPQ CX, $8
	JLT  done
	VMOVUPS (SI), Y0
	VCMPPS  $3, Y0, Y0, Y7 // NaN lanes
	VMAXPS  Y15, Y0, Y1
	VMINPS  Y14, Y1, Y1    // x clamped
	VMULPS  Y13, Y1, Y2
	VROUNDPS $0, Y2, Y2    // n
	VFMADD231PS Y12, Y2, Y1 // r = x − n·ln2Hi
	VFMADD231PS Y11, Y2, Y1 // r −= n·ln2Lo
	VMOVAPS Y10, Y3
	VFMADD213PS 192(R8), Y1, Y3
	VFMADD213PS 224(R8), Y1, Y3
	VFMADD213PS 256(R8), Y1, Y3
	VFMADD213PS 288(R8), Y1, Y3
	VFMADD213PS 320(R8), Y1, Y3
	VFMADD213PS Y9, Y1, Y3
	VFMADD213PS Y9, Y1, Y3 // p = e^r
	VCVTPS2DQ Y2, Y4
	VPSRAD  $1, Y4, Y5     // n1 = n>>1
	VPSUBD  Y5, Y4, Y4     // n2 = n − n1
	VPADDD  Y8, Y5, Y5
	VPADDD  Y8, Y4, Y4
	VPSLLD  $23, Y5, Y5    // 2^n1
	VPSLLD  $23, Y4, Y4    // 2^n2
	VMULPS  Y5, Y3, Y3
	VMULPS  Y4, Y3, Y3
	VBLENDVPS Y7, Y0, Y3, Y3 // NaN in, NaN out
	VMOVUPS Y3, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     loop

done:
	VZEROUPPER
	RET
