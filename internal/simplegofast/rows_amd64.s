//go:build amd64 && !purego

#include "textflag.h"

// func divVSAVX2(dst, a *float32, n int, v float32)
//
// dst[i] = a[i] / v for i < n (n a multiple of 8); IEEE division, the
// same results as the scalar loop.
TEXT ·divVSAVX2(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS v+24(FP), Y1

divvs:
	CMPQ CX, $8
	JLT  divvsdone
	VMOVUPS (SI), Y0
	VDIVPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     divvs

divvsdone:
	VZEROUPPER
	RET

// func divVVAVX2(dst, a, b *float32, n int)
//
// dst[i] = a[i] / b[i] for i < n (n a multiple of 8).
TEXT ·divVVAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

divvv:
	CMPQ CX, $8
	JLT  divvvdone
	VMOVUPS (SI), Y0
	VMOVUPS (DX), Y1
	VDIVPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     divvv

divvvdone:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int, acc *[16]float32) (nan bool)
//
// acc[j] = max(acc[j], x[i]) over i ≡ j (mod 16), i < n (n a multiple of
// 16), with VMAXPS (which does not propagate NaN, and may return either
// zero for ±0): nan reports whether any x[i] is NaN.
TEXT ·maxAVX2(SB), NOSPLIT, $0-25
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ acc+16(FP), DI
	VMOVUPS 0(DI), Y0
	VMOVUPS 32(DI), Y1
	VXORPS  Y4, Y4, Y4

maxloop:
	CMPQ CX, $16
	JLT  maxdone
	VMOVUPS (SI), Y2
	VMOVUPS 32(SI), Y3
	VMAXPS  Y2, Y0, Y0
	VMAXPS  Y3, Y1, Y1
	VCMPPS  $3, Y2, Y2, Y5
	VCMPPS  $3, Y3, Y3, Y6
	VORPS   Y5, Y4, Y4
	VORPS   Y6, Y4, Y4
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     maxloop

maxdone:
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVMSKPS Y4, AX
	TESTL   AX, AX
	SETNE   nan+24(FP)
	VZEROUPPER
	RET
