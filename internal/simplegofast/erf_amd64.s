//go:build amd64 && !purego

#include "textflag.h"

// func erfAVX2(dst, src, ex2 *float32, n int, c *[23][4]float64)
//
// dst[i] = erf(src[i]) given ex2[i] = exp(−src[i]²), for i < n (n a
// multiple of 4), the branch-free algorithm of erf.go in float64 lanes.
// c: 0..7 P (highest degree first), 8..19 Q, 20 1.0, 21 the abs mask,
// 22 the sign mask, each repeated 4 times.
TEXT ·erfAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ex2+16(FP), DX
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), R8
	VMOVUPD 640(R8), Y15 // 1.0
	VMOVUPD 672(R8), Y14 // abs mask
	VMOVUPD 704(R8), Y13 // sign mask

loop:
	CMPQ CX, $4
	JLT  done
	VCVTPS2PD (SI), Y0    // x
	VANDPD  Y14, Y0, Y1   // a = |x|
	VMULPD  Y1, Y1, Y2    // u = a²
	VMOVUPD 0(R8), Y3     // p
	VFMADD213PD 32(R8), Y2, Y3
	VFMADD213PD 64(R8), Y2, Y3
	VFMADD213PD 96(R8), Y2, Y3
	VFMADD213PD 128(R8), Y2, Y3
	VFMADD213PD 160(R8), Y2, Y3
	VFMADD213PD 192(R8), Y2, Y3
	VFMADD213PD 224(R8), Y2, Y3
	VMULPD  Y1, Y3, Y3    // p·a
	VMAXPD  Y15, Y1, Y4   // max(a, 1) (1 for NaN)
	VDIVPD  Y4, Y15, Y4   // s = 1/max(a, 1)
	VMOVUPD 256(R8), Y5   // q
	VFMADD213PD 288(R8), Y4, Y5
	VFMADD213PD 320(R8), Y4, Y5
	VFMADD213PD 352(R8), Y4, Y5
	VFMADD213PD 384(R8), Y4, Y5
	VFMADD213PD 416(R8), Y4, Y5
	VFMADD213PD 448(R8), Y4, Y5
	VFMADD213PD 480(R8), Y4, Y5
	VFMADD213PD 512(R8), Y4, Y5
	VFMADD213PD 544(R8), Y4, Y5
	VFMADD213PD 576(R8), Y4, Y5
	VFMADD213PD 608(R8), Y4, Y5
	VCVTPS2PD (DX), Y6    // e^(−x²)
	VFNMADD213PD Y15, Y6, Y5 // 1 − e·q
	VCMPPD  $1, Y15, Y1, Y7  // a < 1
	VBLENDVPD Y7, Y3, Y5, Y5 // a < 1 ? p : q
	VANDPD  Y13, Y0, Y8   // sign of x
	VORPD   Y8, Y5, Y5
	VCVTPD2PSY Y5, X5
	VMOVUPS X5, (DI)
	ADDQ    $16, SI
	ADDQ    $16, DX
	ADDQ    $16, DI
	SUBQ    $4, CX
	JMP     loop

done:
	VZEROUPPER
	RET
