//go:build ignore

// gen_kernel writes kernel_amd64.s, the 6×16 AVX2/FMA micro-kernel: the
// register tile is 12 YMM accumulators (6 rows × 2×8 columns), one 16-wide
// row of the packed B panel in Y0/Y1 and broadcast A values in Y2/Y3; the k
// loop is unrolled four times.
//
//	go generate ./internal/gemm
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	var s strings.Builder
	e := func(format string, args ...any) { fmt.Fprintf(&s, format+"\n", args...) }
	e("// Written out by gen_kernel.go (go generate); the 6×16 AVX2/FMA micro-kernel.")
	e("")
	e("//go:build amd64 && !purego")
	e("")
	e(`#include "textflag.h"`)
	e("")
	e("// func kernel6x16(kc int, a *float32, b *float32, c *float32, ldc int, accumulate int)")
	e("//")
	e("// C[6×16] (row stride ldc floats) = or += Σ_k a[k*6+r] · b[k*16+j].")
	e("// Accumulators: Y4..Y15 (row r in Y(4+2r), Y(5+2r)); B row in Y0, Y1;")
	e("// broadcast A values alternate in Y2, Y3.")
	e("TEXT ·kernel6x16(SB), NOSPLIT, $0-48")
	e("\tMOVQ kc+0(FP), CX")
	e("\tMOVQ a+8(FP), SI")
	e("\tMOVQ b+16(FP), DI")
	e("\tMOVQ c+24(FP), DX")
	e("\tMOVQ ldc+32(FP), R8")
	e("\tSHLQ $2, R8")
	for r := 4; r < 16; r++ {
		e("\tVXORPS Y%d, Y%d, Y%d", r, r, r)
	}
	// Prefetch the C tile: it is read (accumulate) or written after the loop.
	e("\tMOVQ DX, AX")
	for r := range 6 {
		e("\tPREFETCHT0 (AX)")
		e("\tPREFETCHT0 60(AX)")
		if r < 5 {
			e("\tADDQ R8, AX")
		}
	}
	step := func(u int) {
		bo, ao := u*64, u*24
		e("\tVMOVUPS %d(DI), Y0", bo)
		e("\tVMOVUPS %d(DI), Y1", bo+32)
		for r := range 6 {
			reg := 2 + r%2
			e("\tVBROADCASTSS %d(SI), Y%d", ao+4*r, reg)
			e("\tVFMADD231PS Y%d, Y0, Y%d", reg, 4+2*r)
			e("\tVFMADD231PS Y%d, Y1, Y%d", reg, 5+2*r)
		}
	}
	e("\tMOVQ CX, R9")
	e("\tSHRQ $2, R9")
	e("\tJZ tail")
	e("loop4:")
	e("\tPREFETCHT0 384(SI)")
	for u := range 4 {
		step(u)
	}
	e("\tADDQ $96, SI")
	e("\tADDQ $256, DI")
	e("\tDECQ R9")
	e("\tJNZ loop4")
	e("tail:")
	e("\tANDQ $3, CX")
	e("\tJZ store")
	e("loop1:")
	step(0)
	e("\tADDQ $24, SI")
	e("\tADDQ $64, DI")
	e("\tDECQ CX")
	e("\tJNZ loop1")
	e("store:")
	e("\tMOVQ accumulate+40(FP), AX")
	e("\tTESTQ AX, AX")
	e("\tJNZ accum")
	for r := range 6 {
		e("\tVMOVUPS Y%d, (DX)", 4+2*r)
		e("\tVMOVUPS Y%d, 32(DX)", 5+2*r)
		if r < 5 {
			e("\tADDQ R8, DX")
		}
	}
	e("\tVZEROUPPER")
	e("\tRET")
	e("accum:")
	for r := range 6 {
		e("\tVADDPS (DX), Y%d, Y%d", 4+2*r, 4+2*r)
		e("\tVADDPS 32(DX), Y%d, Y%d", 5+2*r, 5+2*r)
		e("\tVMOVUPS Y%d, (DX)", 4+2*r)
		e("\tVMOVUPS Y%d, 32(DX)", 5+2*r)
		if r < 5 {
			e("\tADDQ R8, DX")
		}
	}
	e("\tVZEROUPPER")
	e("\tRET")
	if err := os.WriteFile("kernel_amd64.s", []byte(s.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
