//go:build ignore

// gen_kernel writes kernel_amd64.s: the 6×16 AVX2/FMA micro-kernel (the
// register tile is 12 YMM accumulators, 6 rows × 2×8 columns, one 16-wide
// row of the packed B panel in Y0/Y1 and broadcast A values in Y2/Y3), and
// the 6×32 AVX-512 one (12 ZMM accumulators, 6 rows × 2×16 columns: one row
// of each of two adjacent packed B panels in Z0/Z1). Both unroll the k loop
// four times and add the k terms of each element in order, one FMA each,
// so the two give the same bits.
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
	e("// Written out by gen_kernel.go (go generate); the 6×16 AVX2/FMA and 6×32 AVX-512 micro-kernels.")
	e("")
	e("//go:build amd64 && !purego")
	e("")
	e(`#include "textflag.h"`)
	e("")
	emitKernel(e, false)
	e("")
	emitKernel(e, true)
	e("")
	emitPackBT(e)
	e("")
	emitPackRows(e)
	e("")
	emitKernel512(e, false)
	e("")
	emitKernel512(e, true)
	if err := os.WriteFile("kernel_amd64.s", []byte(s.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// emitKernel writes one kernel. The packed one reads the A micro-panel
// (k-major, six values per k); the rows one reads six rows of A in place,
// lda floats apart, contiguous along k.
func emitKernel(e func(string, ...any), rows bool) {
	name, args, frame := "kernel6x16", "kc int, a *float32, b *float32, c *float32, ldc int, accumulate int", 48
	if rows {
		name, args, frame = "kernel6x16rows", "kc int, a *float32, lda int, b *float32, c *float32, ldc int, accumulate int", 56
	}
	e("// func %s(%s)", name, args)
	e("//")
	if rows {
		e("// C[6×16] (row stride ldc floats) = or += Σ_k a[r*lda+k] · b[k*16+j].")
		e("// Row r of A is at SI + r·lda·4: R10 = lda·4, R11 = 3·lda·4, R12 = 5·lda·4.")
	} else {
		e("// C[6×16] (row stride ldc floats) = or += Σ_k a[k*6+r] · b[k*16+j].")
	}
	e("// Accumulators: Y4..Y15 (row r in Y(4+2r), Y(5+2r)); B row in Y0, Y1;")
	e("// broadcast A values alternate in Y2, Y3.")
	e("TEXT ·%s(SB), NOSPLIT, $0-%d", name, frame)
	off := 0
	arg := func(n string) string { s := fmt.Sprintf("%s+%d(FP)", n, off); off += 8; return s }
	e("\tMOVQ %s, CX", arg("kc"))
	e("\tMOVQ %s, SI", arg("a"))
	if rows {
		e("\tMOVQ %s, R10", arg("lda"))
		e("\tSHLQ $2, R10")
		e("\tLEAQ (R10)(R10*2), R11")
		e("\tLEAQ (R10)(R10*4), R12")
	}
	e("\tMOVQ %s, DI", arg("b"))
	e("\tMOVQ %s, DX", arg("c"))
	e("\tMOVQ %s, R8", arg("ldc"))
	accArg := arg("accumulate")
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
	aAddr := func(u, r int) string {
		if !rows {
			return fmt.Sprintf("%d(SI)", u*24+4*r)
		}
		return fmt.Sprintf("%d(SI)%s", 4*u, [6]string{"", "(R10*1)", "(R10*2)", "(R11*1)", "(R10*4)", "(R12*1)"}[r])
	}
	step := func(u int) {
		bo := u * 64
		e("\tVMOVUPS %d(DI), Y0", bo)
		e("\tVMOVUPS %d(DI), Y1", bo+32)
		for r := range 6 {
			reg := 2 + r%2
			e("\tVBROADCASTSS %s, Y%d", aAddr(u, r), reg)
			e("\tVFMADD231PS Y%d, Y0, Y%d", reg, 4+2*r)
			e("\tVFMADD231PS Y%d, Y1, Y%d", reg, 5+2*r)
		}
	}
	aStep := 24
	if rows {
		aStep = 4
	}
	e("\tMOVQ CX, R9")
	e("\tSHRQ $2, R9")
	e("\tJZ %s_tail", name)
	e("%s_loop4:", name)
	if !rows {
		e("\tPREFETCHT0 384(SI)")
	}
	for u := range 4 {
		step(u)
	}
	e("\tADDQ $%d, SI", 4*aStep)
	e("\tADDQ $256, DI")
	e("\tDECQ R9")
	e("\tJNZ %s_loop4", name)
	e("%s_tail:", name)
	e("\tANDQ $3, CX")
	e("\tJZ %s_store", name)
	e("%s_loop1:", name)
	step(0)
	e("\tADDQ $%d, SI", aStep)
	e("\tADDQ $64, DI")
	e("\tDECQ CX")
	e("\tJNZ %s_loop1", name)
	e("%s_store:", name)
	e("\tMOVQ %s, AX", accArg)
	e("\tTESTQ AX, AX")
	e("\tJNZ %s_accum", name)
	for r := range 6 {
		e("\tVMOVUPS Y%d, (DX)", 4+2*r)
		e("\tVMOVUPS Y%d, 32(DX)", 5+2*r)
		if r < 5 {
			e("\tADDQ R8, DX")
		}
	}
	e("\tVZEROUPPER")
	e("\tRET")
	e("%s_accum:", name)
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
}

// emitPackBT writes packBT16: sixteen rows of B-transposed (each contiguous
// along k, ldb floats apart) interleaved into a k-major 16-wide panel, eight
// k at a time with two 8×8 in-register transposes.
func emitPackBT(e func(string, ...any)) {
	e("// func packBT16(groups int, src *float32, ldb int, dst *float32)")
	e("//")
	e("// dst[k*16+j] = src[j*ldb+k] for j < 16, k < 8·groups.")
	e("// Rows 0-7 from SI, rows 8-15 from BX, at offsets 0, ldb, 2ldb (R10*1, R10*2),")
	e("// 3ldb (R11), 4ldb (R10*4), 5ldb (R12), 6ldb (R11*2), 7ldb (R13) bytes/4.")
	e("TEXT ·packBT16(SB), NOSPLIT, $0-32")
	e("\tMOVQ groups+0(FP), CX")
	e("\tMOVQ src+8(FP), SI")
	e("\tMOVQ ldb+16(FP), R10")
	e("\tMOVQ dst+24(FP), DI")
	e("\tSHLQ $2, R10")
	e("\tLEAQ (R10)(R10*2), R11")
	e("\tLEAQ (R10)(R10*4), R12")
	e("\tLEAQ (R11)(R10*4), R13")
	e("\tLEAQ (SI)(R10*8), BX")
	e("\tTESTQ CX, CX")
	e("\tJZ packBT16_done")
	e("packBT16_loop:")
	rowAddr := [8]string{"", "(R10*1)", "(R10*2)", "(R11*1)", "(R10*4)", "(R12*1)", "(R11*2)", "(R13*1)"}
	for half, base := range []string{"SI", "BX"} {
		for r := range 8 {
			e("\tVMOVUPS (%s)%s, Y%d", base, rowAddr[r], r)
		}
		// t(8+i): unpack pairs of rows.
		for i := 0; i < 4; i++ {
			e("\tVUNPCKLPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 8+2*i)
			e("\tVUNPCKHPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 9+2*i)
		}
		// s0..s7 into Y0..Y7: s0=(t0,t2,44) s1=(t0,t2,EE) s2=(t1,t3,44) s3=(t1,t3,EE)
		// s4=(t4,t6,44) s5=(t4,t6,EE) s6=(t5,t7,44) s7=(t5,t7,EE); t_i is Y(8+i).
		sh := [][3]int{{8, 10, 0x44}, {8, 10, 0xEE}, {9, 11, 0x44}, {9, 11, 0xEE}, {12, 14, 0x44}, {12, 14, 0xEE}, {13, 15, 0x44}, {13, 15, 0xEE}}
		for i, x := range sh {
			e("\tVSHUFPS $0x%X, Y%d, Y%d, Y%d", x[2], x[1], x[0], i)
		}
		// out k: k<4: perm(s_k, s_(k+4), 0x20); k≥4: perm(s_(k-4), s_k, 0x31).
		for k := range 8 {
			lo, hi, imm := k, k+4, 0x20
			if k >= 4 {
				lo, hi, imm = k-4, k, 0x31
			}
			e("\tVPERM2F128 $0x%X, Y%d, Y%d, Y%d", imm, hi, lo, 8+k)
		}
		for k := range 8 {
			e("\tVMOVUPS Y%d, %d(DI)", 8+k, k*64+half*32)
		}
	}
	e("\tADDQ $32, SI")
	e("\tADDQ $32, BX")
	e("\tADDQ $512, DI")
	e("\tDECQ CX")
	e("\tJNZ packBT16_loop")
	e("packBT16_done:")
	e("\tVZEROUPPER")
	e("\tRET")
}

// emitKernel512 writes one 6×32 AVX-512F kernel over two adjacent packed B
// panels (the second kc·16 floats after the first). The packed variant reads
// the A micro-panel (k-major, six values per k); the rows one reads six rows
// of A in place, lda floats apart, contiguous along k.
func emitKernel512(e func(string, ...any), rows bool) {
	name, args, frame := "kernel6x32z", "kc int, a *float32, b *float32, c *float32, ldc int, accumulate int", 48
	if rows {
		name, args, frame = "kernel6x32zrows", "kc int, a *float32, lda int, b *float32, c *float32, ldc int, accumulate int", 56
	}
	e("// func %s(%s)", name, args)
	e("//")
	if rows {
		e("// C[6×32] (row stride ldc floats) = or += Σ_k a[r*lda+k] · B(k, j), where")
		e("// B(k, j) = b[k*16+j] for j < 16 and b[kc*16 + k*16 + j-16] after.")
		e("// Row r of A is at SI + r·lda·4: R10 = lda·4, R11 = 3·lda·4, R12 = 5·lda·4.")
	} else {
		e("// C[6×32] (row stride ldc floats) = or += Σ_k a[k*6+r] · B(k, j), where")
		e("// B(k, j) = b[k*16+j] for j < 16 and b[kc*16 + k*16 + j-16] after.")
	}
	e("// Accumulators: Z4..Z15 (row r in Z(4+2r), Z(5+2r)); B rows in Z0 (DI), Z1 (BX);")
	e("// broadcast A values alternate in Z2, Z3.")
	e("TEXT ·%s(SB), NOSPLIT, $0-%d", name, frame)
	off := 0
	arg := func(n string) string { s := fmt.Sprintf("%s+%d(FP)", n, off); off += 8; return s }
	e("\tMOVQ %s, CX", arg("kc"))
	e("\tMOVQ %s, SI", arg("a"))
	if rows {
		e("\tMOVQ %s, R10", arg("lda"))
		e("\tSHLQ $2, R10")
		e("\tLEAQ (R10)(R10*2), R11")
		e("\tLEAQ (R10)(R10*4), R12")
	}
	e("\tMOVQ %s, DI", arg("b"))
	e("\tMOVQ %s, DX", arg("c"))
	e("\tMOVQ %s, R8", arg("ldc"))
	accArg := arg("accumulate")
	e("\tSHLQ $2, R8")
	// BX = DI + kc·64 bytes: the second panel.
	e("\tMOVQ CX, BX")
	e("\tSHLQ $6, BX")
	e("\tADDQ DI, BX")
	for r := 4; r < 16; r++ {
		e("\tVPXORD Z%d, Z%d, Z%d", r, r, r)
	}
	e("\tMOVQ DX, AX")
	for r := range 6 {
		e("\tPREFETCHT0 (AX)")
		e("\tPREFETCHT0 64(AX)")
		e("\tPREFETCHT0 124(AX)")
		if r < 5 {
			e("\tADDQ R8, AX")
		}
	}
	aAddr := func(u, r int) string {
		if !rows {
			return fmt.Sprintf("%d(SI)", u*24+4*r)
		}
		return fmt.Sprintf("%d(SI)%s", 4*u, [6]string{"", "(R10*1)", "(R10*2)", "(R11*1)", "(R10*4)", "(R12*1)"}[r])
	}
	step := func(u int) {
		e("\tVMOVUPS %d(DI), Z0", u*64)
		e("\tVMOVUPS %d(BX), Z1", u*64)
		for r := range 6 {
			reg := 2 + r%2
			e("\tVBROADCASTSS %s, Z%d", aAddr(u, r), reg)
			e("\tVFMADD231PS Z%d, Z0, Z%d", reg, 4+2*r)
			e("\tVFMADD231PS Z%d, Z1, Z%d", reg, 5+2*r)
		}
	}
	aStep := 24
	if rows {
		aStep = 4
	}
	e("\tMOVQ CX, R9")
	e("\tSHRQ $2, R9")
	e("\tJZ %s_tail", name)
	e("%s_loop4:", name)
	if !rows {
		e("\tPREFETCHT0 384(SI)")
	}
	for u := range 4 {
		step(u)
	}
	e("\tADDQ $%d, SI", 4*aStep)
	e("\tADDQ $256, DI")
	e("\tADDQ $256, BX")
	e("\tDECQ R9")
	e("\tJNZ %s_loop4", name)
	e("%s_tail:", name)
	e("\tANDQ $3, CX")
	e("\tJZ %s_store", name)
	e("%s_loop1:", name)
	step(0)
	e("\tADDQ $%d, SI", aStep)
	e("\tADDQ $64, DI")
	e("\tADDQ $64, BX")
	e("\tDECQ CX")
	e("\tJNZ %s_loop1", name)
	e("%s_store:", name)
	e("\tMOVQ %s, AX", accArg)
	e("\tTESTQ AX, AX")
	e("\tJNZ %s_accum", name)
	for r := range 6 {
		e("\tVMOVUPS Z%d, (DX)", 4+2*r)
		e("\tVMOVUPS Z%d, 64(DX)", 5+2*r)
		if r < 5 {
			e("\tADDQ R8, DX")
		}
	}
	e("\tVZEROUPPER")
	e("\tRET")
	e("%s_accum:", name)
	for r := range 6 {
		e("\tVADDPS (DX), Z%d, Z%d", 4+2*r, 4+2*r)
		e("\tVADDPS 64(DX), Z%d, Z%d", 5+2*r, 5+2*r)
		e("\tVMOVUPS Z%d, (DX)", 4+2*r)
		e("\tVMOVUPS Z%d, 64(DX)", 5+2*r)
		if r < 5 {
			e("\tADDQ R8, DX")
		}
	}
	e("\tVZEROUPPER")
	e("\tRET")
}

// emitPackRows writes packRows16: a row-major B (rows ldb floats apart)
// scattered into k-major 16-wide panels, 64 bytes at a time (two YMM moves
// per row and panel), instead of one memmove call per 16 floats.
func emitPackRows(e func(string, ...any)) {
	e("// func packRows16(kc int, panels int, src *float32, ldb int, dst *float32)")
	e("//")
	e("// dst[p*kc*16 + k*16 + j] = src[k*ldb + p*16 + j] for k < kc, p < panels, j < 16.")
	e("TEXT ·packRows16(SB), NOSPLIT, $0-40")
	e("\tMOVQ kc+0(FP), CX")
	e("\tMOVQ panels+8(FP), R8")
	e("\tMOVQ src+16(FP), SI")
	e("\tMOVQ ldb+24(FP), R9")
	e("\tMOVQ dst+32(FP), DI")
	e("\tSHLQ $2, R9")
	e("\tMOVQ CX, R10")
	e("\tSHLQ $6, R10")
	e("\tTESTQ CX, CX")
	e("\tJZ packRows16_done")
	e("\tTESTQ R8, R8")
	e("\tJZ packRows16_done")
	e("packRows16_row:")
	e("\tMOVQ SI, AX")
	e("\tMOVQ DI, BX")
	e("\tMOVQ R8, DX")
	e("packRows16_panel:")
	e("\tVMOVUPS (AX), Y0")
	e("\tVMOVUPS 32(AX), Y1")
	e("\tVMOVUPS Y0, (BX)")
	e("\tVMOVUPS Y1, 32(BX)")
	e("\tADDQ $64, AX")
	e("\tADDQ R10, BX")
	e("\tDECQ DX")
	e("\tJNZ packRows16_panel")
	e("\tADDQ R9, SI")
	e("\tADDQ $64, DI")
	e("\tDECQ CX")
	e("\tJNZ packRows16_row")
	e("packRows16_done:")
	e("\tVZEROUPPER")
	e("\tRET")
}
